"""The Stripe webhook inbox: store each event once, process it with its type's handler, retry
failures with backoff, list and reprocess.

Receiving only stores (INSERT … ON CONFLICT DO NOTHING on the Stripe event id) and enqueues;
processing happens in a worker job, one transaction per event, the event row locked (FOR UPDATE)
so two runs of the same event never interleave. A handler's failure is rolled back to a savepoint
and recorded on the event (error, attempts, next attempt); the transaction still commits."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.audit.record import Actor, record_audit
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.customer.models import Customer
from api.db import utcnow
from api.errors import NotFound
from api.settings import Settings
from api.stripe.webhooks import EventEnvelope, stripe_customer_of
from api.webhook.handlers import HANDLERS, EventData, NotYetKnown, event_time
from api.webhook.models import WebhookEvent, WebhookStatus

log = logging.getLogger("ledgerline.webhooks")

SORT_KEY = SortKey("webhook_event:RECEIVED_AT_DESC", WebhookEvent.received_at, WebhookEvent.id, True)
MAX_ERROR_LENGTH = 2000
MAX_BACKOFF = timedelta(hours=1)
WEBHOOK_LOCK_SEED = 0x5745_4248  # seeds the advisory-lock hash of webhook processing


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 30.0

    def delay(self, attempts: int) -> timedelta:
        """After the n-th failed attempt: base, twice that, four times … capped at one hour."""
        return min(timedelta(seconds=self.base_delay_seconds * 2 ** (attempts - 1)), MAX_BACKOFF)

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.webhook_max_attempts, settings.webhook_retry_base_seconds)


# --- receiving -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: uuid.UUID
    duplicate: bool
    status: WebhookStatus


async def store_event(session: AsyncSession, env: EventEnvelope, payload: dict[str, Any]) -> Stored:
    """The event once under its Stripe id; a repeated delivery finds the stored one."""
    customer_id = None
    if env.stripe_customer_id is not None:
        customer_id = (
            await session.execute(select(Customer.id).where(Customer.stripe_customer_id == env.stripe_customer_id))
        ).scalar_one_or_none()
    inserted = (
        await session.execute(
            insert(WebhookEvent)
            .values(
                id=uuid.uuid4(),
                stripe_event_id=env.id,
                type=env.type,
                customer_id=customer_id,
                payload=payload,
                status=WebhookStatus.RECEIVED,
                attempts=0,
                stripe_created_at=event_time(env.created),
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[WebhookEvent.stripe_event_id])
            .returning(WebhookEvent.id)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        return Stored(inserted, duplicate=False, status=WebhookStatus.RECEIVED)
    existing_id, status = (
        await session.execute(
            select(WebhookEvent.id, WebhookEvent.status).where(WebhookEvent.stripe_event_id == env.id)
        )
    ).one()
    return Stored(existing_id, duplicate=True, status=status)


# --- processing -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Processed:
    event: WebhookEvent
    ran: bool  # False: already done, nothing was run
    retry_in: timedelta | None = None  # a retry is due after this long


def _error_text(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


async def process_event(
    session: AsyncSession, event_id: uuid.UUID, policy: RetryPolicy, *, manual: bool = False
) -> Processed | None:
    """Run the event's handler once. A job (`manual=False`) skips events already processed,
    ignored or out of attempts; a reprocess (`manual=True`) always runs and schedules no retry."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        return None
    if not manual and (
        event.status in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED)
        or (event.status is WebhookStatus.FAILED and event.next_attempt_at is None)
    ):
        return Processed(event, ran=False)
    now = utcnow()
    handler = HANDLERS.get(event.type)
    if handler is None:
        event.status = WebhookStatus.IGNORED
        event.processed_at, event.next_attempt_at, event.last_error = now, None, None
        await session.flush()
        return Processed(event, ran=True)
    event.attempts += 1
    # one event per Stripe customer at a time: its events touch the same rows (customer,
    # subscription, invoices), and two new-invoice events must not both insert the invoice
    obj = event.payload["data"]["object"]
    lock_key = stripe_customer_of(obj) or str(obj.get("id") or event.stripe_event_id)
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(lock_key, WEBHOOK_LOCK_SEED))))
    try:
        async with session.begin_nested():
            previous = event.payload["data"].get("previous_attributes")
            data = EventData(obj, event.stripe_created_at, previous if isinstance(previous, dict) else None)
            applied = await handler(session, data)
    except Exception as exc:
        event.status = WebhookStatus.FAILED
        event.last_error = _error_text(exc)
        retry_in = policy.delay(event.attempts) if not manual and event.attempts < policy.max_attempts else None
        event.next_attempt_at = now + retry_in if retry_in is not None else None
        level = logging.INFO if isinstance(exc, NotYetKnown) else logging.WARNING
        log.log(
            level,
            "webhook %s (%s) failed, attempt %d: %s",
            event.stripe_event_id,
            event.type,
            event.attempts,
            event.last_error,
            exc_info=not isinstance(exc, NotYetKnown),
        )
        await session.flush()
        if retry_in is None:
            await _alert_failed_for_good(session, event)
        return Processed(event, ran=True, retry_in=retry_in)
    event.status = WebhookStatus.PROCESSED
    event.processed_at, event.next_attempt_at, event.last_error = now, None, None
    if event.customer_id is None and applied.customer_id is not None:
        event.customer_id = applied.customer_id
    if applied.stale:
        event.last_error = "older than the state already applied: nothing changed"
    await session.flush()
    return Processed(event, ran=True)


async def _alert_failed_for_good(session: AsyncSession, event: WebhookEvent) -> None:
    """An event that failed with no retry left (out of attempts, or a manual reprocess that failed)
    needs someone: one alert per event, however often it is reprocessed and fails again."""
    await raise_alert(
        session,
        NewAlert(
            kind=AlertKind.WEBHOOK_FAILURE,
            severity=AlertSeverity.CRITICAL,
            message=f"Stripe event {event.stripe_event_id} ({event.type}) failed after "
            f"{event.attempts} attempt{'s' if event.attempts != 1 else ''}: {(event.last_error or '')[:300]}",
            dedup_key=f"webhook_failure:{event.id}",
            customer_id=event.customer_id,
            details={
                "webhook_event_id": str(event.id),
                "stripe_event_id": event.stripe_event_id,
                "type": event.type,
                "attempts": event.attempts,
                "last_error": event.last_error,
            },
        ),
    )


def event_snapshot(event: WebhookEvent) -> dict[str, Any]:
    return {
        "stripe_event_id": event.stripe_event_id,
        "type": event.type,
        "status": event.status.value,
        "attempts": event.attempts,
        "last_error": event.last_error,
    }


async def reprocess_event(
    session: AsyncSession, actor: Actor, event_id: uuid.UUID, policy: RetryPolicy
) -> WebhookEvent:
    """Run one stored event again now, whatever its status (handlers are idempotent and never
    apply older state over newer), and audit it in the same transaction."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        raise NotFound(f"webhook event {event_id} does not exist", field="id")
    before = event_snapshot(event)
    processed = await process_event(session, event_id, policy, manual=True)
    assert processed is not None
    await record_audit(
        session,
        actor,
        "reprocessWebhookEvent",
        "WebhookEvent",
        str(event_id),
        before=before,
        after=event_snapshot(processed.event),
    )
    return processed.event


async def due_events(session: AsyncSession, *, received_before: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Events whose job was lost (never enqueued, or a worker died): received and still waiting,
    or failed with a retry already past due."""
    rows = await session.execute(
        select(WebhookEvent.id)
        .where(
            or_(
                and_(WebhookEvent.status == WebhookStatus.RECEIVED, WebhookEvent.received_at < received_before),
                and_(WebhookEvent.status == WebhookStatus.FAILED, WebhookEvent.next_attempt_at < received_before),
            )
        )
        .order_by(WebhookEvent.received_at)
        .limit(limit)
    )
    return list(rows.scalars())


# --- listing --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEventFilter:
    types: tuple[str, ...] = ()
    statuses: tuple[WebhookStatus, ...] = ()
    customer_id: uuid.UUID | None = None
    received: DateRange = field(default_factory=DateRange)


def _conditions(flt: WebhookEventFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.received.clause(WebhookEvent.received_at)]
    if flt.types:
        # `invoice.*` matches every invoice event, as in Stripe's own filters
        parts = [WebhookEvent.type.startswith(t[:-1]) if t.endswith("*") else WebhookEvent.type == t for t in flt.types]
        conditions.append(or_(*parts))
    if flt.statuses:
        conditions.append(WebhookEvent.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(WebhookEvent.customer_id == flt.customer_id)
    return conditions


async def list_webhook_events(session: AsyncSession, flt: WebhookEventFilter, page: PageArgs) -> Page[WebhookEvent]:
    return await fetch_page(session, select(WebhookEvent).where(*_conditions(flt)), SORT_KEY, page)


async def count_webhook_events(session: AsyncSession, flt: WebhookEventFilter) -> int:
    return await count_where(session, WebhookEvent, _conditions(flt))
