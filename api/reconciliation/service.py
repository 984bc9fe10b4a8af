"""Stripe ↔ local reconciliation: compare the local mirror with Stripe, record every discrepancy,
and correct the mirror from Stripe (the source of truth for billing objects).

Corrections reuse the webhook handlers (api/webhook/handlers.py), which apply a Stripe object to
the mirror through api/stripe/mirror.py and invoice_mirror.py: an object is re-read from Stripe at
resolution time and applied as if a webhook had just delivered it, under the same per-customer
lock webhook processing takes, so the two never interleave on one customer's rows."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.catalog.models import Price
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.customer.models import Customer, CustomerStatus
from api.db import utcnow
from api.errors import Invalid, NotFound, ProviderError
from api.invoice.models import Invoice
from api.reconciliation.models import (
    Discrepancy,
    DiscrepancyKind,
    ObjectType,
    ReconciliationRun,
    ReconciliationScope,
    ReconciliationStatus,
)
from api.stripe.gateway import StripeGateway
from api.stripe.snapshots import (
    RemoteObject,
    StripeSnapshot,
    fetch_customer,
    fetch_invoice,
    fetch_snapshot,
    fetch_subscription,
)
from api.subscription.models import Subscription, SubscriptionItem
from api.webhook.handlers import (
    EventData,
    NotYetKnown,
    customer_changed,
    customer_deleted,
    invoice_changed,
    subscription_changed,
)
from api.webhook.service import WEBHOOK_LOCK_SEED

log = logging.getLogger("ledgerline.reconciliation")

RUN_SORT = SortKey("reconciliation_run:STARTED_AT_DESC", ReconciliationRun.started_at, ReconciliationRun.id, True)
DISCREPANCY_SORT = SortKey("discrepancy:CREATED_AT_ASC", Discrepancy.created_at, Discrepancy.id, False)
MAX_ERROR_LENGTH = 2000
SYSTEM_ACTOR = Actor.system("reconciliation")
OBJECT_ORDER = {ObjectType.CUSTOMER: 0, ObjectType.SUBSCRIPTION: 1, ObjectType.INVOICE: 2}


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).replace(microsecond=0).isoformat() if value is not None else None


# --- local facts (the same fields and vocabulary as api/stripe/snapshots.py) ----------------------


@dataclass(frozen=True, slots=True)
class LocalObject:
    local_id: uuid.UUID
    stripe_id: str
    stripe_customer_id: str | None
    facts: dict[str, Any]
    ignore_missing_in_stripe: bool = False  # e.g. a customer already closed locally


async def _local_customers(
    session: AsyncSession, customer_id: uuid.UUID | None, remote_ids: Sequence[str]
) -> list[LocalObject]:
    stmt = select(Customer).where(Customer.stripe_customer_id.is_not(None))
    if customer_id is not None:
        stmt = stmt.where(or_(Customer.id == customer_id, Customer.stripe_customer_id.in_(remote_ids)))
    found = []
    for c in (await session.execute(stmt)).scalars():
        assert c.stripe_customer_id is not None
        facts = {"name": c.name, "email": c.email, "phone": c.phone}
        found.append(
            LocalObject(c.id, c.stripe_customer_id, c.stripe_customer_id, facts, c.status is CustomerStatus.CANCELED)
        )
    return found


async def _local_subscriptions(
    session: AsyncSession, customer_id: uuid.UUID | None, remote_ids: Sequence[str]
) -> list[LocalObject]:
    stmt = (
        select(Subscription, Customer.stripe_customer_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(Subscription.stripe_subscription_id.is_not(None))
    )
    if customer_id is not None:
        stmt = stmt.where(
            or_(Subscription.customer_id == customer_id, Subscription.stripe_subscription_id.in_(remote_ids))
        )
    rows = list((await session.execute(stmt)).all())
    items: dict[uuid.UUID, list[tuple[int, str | None]]] = defaultdict(list)
    if rows:
        item_rows = await session.execute(
            select(SubscriptionItem.subscription_id, SubscriptionItem.quantity, Price.stripe_price_id)
            .join(Price, Price.id == SubscriptionItem.price_id)
            .where(SubscriptionItem.subscription_id.in_([s.id for s, _ in rows]))
        )
        for sub_id, quantity, stripe_price in item_rows.all():
            items[sub_id].append((quantity, stripe_price))
    found = []
    for sub, stripe_customer in rows:
        assert sub.stripe_subscription_id is not None
        prices = sorted(p or "" for _, p in items[sub.id])
        facts = {
            "status": sub.status.value,
            "quantity": sum(q for q, _ in items[sub.id]),
            "price": prices[0] if len(prices) == 1 else prices,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "current_period_end": iso(sub.current_period_end),
            "trial_end": iso(sub.trial_end),
        }
        found.append(LocalObject(sub.id, sub.stripe_subscription_id, stripe_customer, facts))
    return found


async def _local_invoices(
    session: AsyncSession, customer_id: uuid.UUID | None, remote_ids: Sequence[str]
) -> list[LocalObject]:
    stmt = (
        select(Invoice, Customer.stripe_customer_id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.stripe_invoice_id.is_not(None))
    )
    if customer_id is not None:
        stmt = stmt.where(or_(Invoice.customer_id == customer_id, Invoice.stripe_invoice_id.in_(remote_ids)))
    found = []
    for inv, stripe_customer in (await session.execute(stmt)).all():
        assert inv.stripe_invoice_id is not None
        facts = {
            "status": inv.status.value,
            "amount_due": inv.amount_due,
            "amount_paid": inv.amount_paid,
            "amount_refunded": inv.amount_refunded,
        }
        found.append(LocalObject(inv.id, inv.stripe_invoice_id, stripe_customer, facts))
    return found


def _field_differs(object_type: ObjectType, name: str, local: Any, remote: Any) -> bool:
    if object_type is ObjectType.CUSTOMER and name == "name" and not remote:
        return False  # Stripe has no name: the local one is kept (webhooks never clear it either)
    return bool(local != remote)


def compare(
    run: ReconciliationRun,
    object_type: ObjectType,
    local: list[LocalObject],
    remote: dict[str, RemoteObject],
) -> tuple[int, list[Discrepancy]]:
    """(objects checked, discrepancies) for one object type."""
    found: list[Discrepancy] = []
    by_stripe_id = {o.stripe_id: o for o in local}

    def add(kind: DiscrepancyKind, stripe_id: str, **values: Any) -> None:
        found.append(
            Discrepancy(
                id=uuid.uuid4(),
                run_id=run.id,
                object_type=object_type,
                kind=kind,
                stripe_id=stripe_id,
                created_at=utcnow(),
                **values,
            )
        )

    for stripe_id, theirs in remote.items():
        mine = by_stripe_id.get(stripe_id)
        if mine is None:
            add(DiscrepancyKind.MISSING_LOCALLY, stripe_id, stripe_customer_id=theirs.stripe_customer_id)
            continue
        for name, remote_value in theirs.facts.items():
            local_value = mine.facts.get(name)
            if _field_differs(object_type, name, local_value, remote_value):
                add(
                    DiscrepancyKind.FIELD_MISMATCH,
                    stripe_id,
                    local_id=mine.local_id,
                    stripe_customer_id=theirs.stripe_customer_id,
                    field=name,
                    local_value=local_value,
                    stripe_value=remote_value,
                )
    for mine in local:
        if mine.stripe_id not in remote and not mine.ignore_missing_in_stripe:
            add(
                DiscrepancyKind.MISSING_IN_STRIPE,
                mine.stripe_id,
                local_id=mine.local_id,
                stripe_customer_id=mine.stripe_customer_id,
            )
    return len(set(by_stripe_id) | set(remote)), found


# --- runs ------------------------------------------------------------------------------------------------


async def start_run(session: AsyncSession, actor: Actor, customer_id: uuid.UUID | None) -> ReconciliationRun:
    """A RUNNING run (for all customers, or one)."""
    if customer_id is not None and await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist", field="customer")
    run = ReconciliationRun(
        id=uuid.uuid4(),
        scope=ReconciliationScope.CUSTOMER if customer_id is not None else ReconciliationScope.ALL,
        customer_id=customer_id,
        status=ReconciliationStatus.RUNNING,
        started_at=utcnow(),
        requested_by=actor.subject,
    )
    session.add(run)
    await session.flush()
    return run


async def execute_run(session: AsyncSession, gateway: StripeGateway, run: ReconciliationRun) -> ReconciliationRun:
    """Read Stripe, compare with the mirror, record the discrepancies, complete the run.
    Runs only a RUNNING run (a job that runs twice does the work once)."""
    if run.status is not ReconciliationStatus.RUNNING:
        return run
    stripe_customer_id: str | None = None
    if run.customer_id is not None:
        customer = await session.get(Customer, run.customer_id)
        assert customer is not None
        stripe_customer_id = customer.stripe_customer_id
        if stripe_customer_id is None:  # never mirrored to Stripe: nothing to compare
            return await _complete(session, run, 0, [])
    snapshot: StripeSnapshot = await fetch_snapshot(gateway, stripe_customer_id)
    checked = 0
    found: list[Discrepancy] = []
    for object_type, loader, remote in (
        (ObjectType.CUSTOMER, _local_customers, snapshot.customers),
        (ObjectType.SUBSCRIPTION, _local_subscriptions, snapshot.subscriptions),
        (ObjectType.INVOICE, _local_invoices, snapshot.invoices),
    ):
        local = await loader(session, run.customer_id, list(remote))
        n, discrepancies = compare(run, object_type, local, remote)
        checked += n
        found.extend(discrepancies)
    return await _complete(session, run, checked, found)


async def _complete(
    session: AsyncSession, run: ReconciliationRun, checked: int, found: list[Discrepancy]
) -> ReconciliationRun:
    session.add_all(found)
    run.status = ReconciliationStatus.COMPLETED
    run.finished_at = utcnow()
    run.objects_checked = checked
    run.discrepancy_count = len(found)
    await session.flush()
    log.info("reconciliation %s: %d objects checked, %d discrepancies", run.id, checked, len(found))
    return run


async def fail_run(session: AsyncSession, run_id: uuid.UUID, error: str) -> None:
    run = await session.get(ReconciliationRun, run_id, with_for_update=True)
    if run is not None and run.status is ReconciliationStatus.RUNNING:
        run.status = ReconciliationStatus.FAILED
        run.finished_at = utcnow()
        run.error = error[:MAX_ERROR_LENGTH]
        await session.flush()


def run_snapshot(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "scope": run.scope.value,
        "customer_id": str(run.customer_id) if run.customer_id else None,
        "status": run.status.value,
        "objects_checked": run.objects_checked,
        "discrepancy_count": run.discrepancy_count,
    }


async def reconcile(
    session: AsyncSession, gateway: StripeGateway, customer_id: uuid.UUID | None, actor: Actor = SYSTEM_ACTOR
) -> ReconciliationRun:
    """Compare now (in the caller's transaction) and return the completed run."""
    run = await start_run(session, actor, customer_id)
    return await execute_run(session, gateway, run)


async def request_reconciliation(
    session: AsyncSession, gateway: StripeGateway, actor: Actor, customer_id: uuid.UUID | None
) -> ReconciliationRun:
    """The `reconcile` mutation: one customer is compared now; all customers get a RUNNING run
    that a worker job completes (the caller enqueues it after commit). Audited."""
    run = await start_run(session, actor, customer_id)
    if customer_id is not None:
        await execute_run(session, gateway, run)
    await record_audit(session, actor, "reconcile", "ReconciliationRun", str(run.id), after=run_snapshot(run))
    return run


# --- resolving -----------------------------------------------------------------------------------------------


class Action:
    UPDATE_FROM_STRIPE = "UPDATE_FROM_STRIPE"
    CREATE_FROM_STRIPE = "CREATE_FROM_STRIPE"
    CLOSE_LOCALLY = "CLOSE_LOCALLY"  # a customer deleted in Stripe: marked CANCELED
    NEEDS_REVIEW = "NEEDS_REVIEW"  # a subscription/invoice Stripe does not know: left for a person


@dataclass(frozen=True, slots=True)
class Resolution:
    discrepancy: Discrepancy
    action: str
    applied: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ResolveResult:
    run: ReconciliationRun
    applied: bool
    resolutions: list[Resolution]


def planned_action(d: Discrepancy) -> str:
    if d.kind is DiscrepancyKind.MISSING_LOCALLY:
        return Action.CREATE_FROM_STRIPE
    if d.kind is DiscrepancyKind.MISSING_IN_STRIPE:
        return Action.CLOSE_LOCALLY if d.object_type is ObjectType.CUSTOMER else Action.NEEDS_REVIEW
    return Action.UPDATE_FROM_STRIPE


async def _apply_time(session: AsyncSession, object_type: ObjectType, stripe_id: str) -> datetime:
    """The `created` to apply a freshly read object with: now, and newer than what the row last
    applied (the handlers skip older state; what was just read from Stripe is the newest)."""
    column = {
        ObjectType.CUSTOMER: (Customer.stripe_updated_at, Customer.stripe_customer_id),
        ObjectType.SUBSCRIPTION: (Subscription.stripe_updated_at, Subscription.stripe_subscription_id),
        ObjectType.INVOICE: (Invoice.stripe_updated_at, Invoice.stripe_invoice_id),
    }[object_type]
    stored = (await session.execute(select(column[0]).where(column[1] == stripe_id))).scalar_one_or_none()
    now = utcnow()
    return max(now, stored + timedelta(seconds=1)) if stored is not None else now


async def _fetch(gateway: StripeGateway, object_type: ObjectType, stripe_id: str) -> RemoteObject | None:
    if object_type is ObjectType.CUSTOMER:
        return await fetch_customer(gateway, stripe_id)
    if object_type is ObjectType.SUBSCRIPTION:
        return await fetch_subscription(gateway, stripe_id)
    return await fetch_invoice(gateway, stripe_id)


async def _lock_customer(session: AsyncSession, stripe_customer_id: str) -> None:
    """The lock webhook processing takes for the same Stripe customer."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(stripe_customer_id, WEBHOOK_LOCK_SEED)))
    )


async def _apply(
    session: AsyncSession, object_type: ObjectType, stripe_id: str, action: str, remote: RemoteObject | None
) -> str:
    """Correct one object's mirror from what Stripe holds now; returns what was done."""
    created = await _apply_time(session, object_type, stripe_id)
    if remote is None:
        if object_type is ObjectType.CUSTOMER:
            await customer_deleted(session, EventData({"id": stripe_id, "object": "customer"}, created))
            return "the customer no longer exists in Stripe: marked CANCELED locally"
        raise NotYetKnown(f"{stripe_id} does not exist in Stripe: left for review")
    data = EventData(remote.payload, created)
    if object_type is ObjectType.CUSTOMER:
        await customer_changed(session, data)
    elif object_type is ObjectType.SUBSCRIPTION:
        await subscription_changed(session, data)
    else:
        await invoice_changed(session, data)
        invoice = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == stripe_id))).scalar_one()
        # Stripe's refunded total (the mirror's own refund sum never decreases)
        invoice.amount_refunded = int(remote.facts["amount_refunded"])
        await session.flush()
    return "created from Stripe" if action == Action.CREATE_FROM_STRIPE else "updated from Stripe"


async def _resolve(session: AsyncSession, gateway: StripeGateway, run_id: uuid.UUID, *, apply: bool) -> ResolveResult:
    run = await session.get(ReconciliationRun, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"reconciliation run {run_id} does not exist", field="run")
    if run.status is not ReconciliationStatus.COMPLETED:
        raise Invalid(f"the run is {run.status.value}: only a COMPLETED run can be resolved", field="run")
    open_ = list(
        (
            await session.execute(
                select(Discrepancy)
                .where(Discrepancy.run_id == run_id, Discrepancy.resolved_at.is_(None))
                .order_by(Discrepancy.created_at, Discrepancy.id)
                .with_for_update()
            )
        ).scalars()
    )
    groups: dict[tuple[ObjectType, str], list[Discrepancy]] = defaultdict(list)
    for d in open_:
        groups[(d.object_type, d.stripe_id)].append(d)
    # customers first (a subscription or invoice may need its customer created), then by the
    # Stripe customer, so two resolutions take the customers' locks in the same order
    ordered = sorted(groups.items(), key=lambda kv: (OBJECT_ORDER[kv[0][0]], kv[1][0].stripe_customer_id or ""))
    resolutions: list[Resolution] = []
    for (object_type, stripe_id), items in ordered:
        action = planned_action(items[0])
        if not apply or action == Action.NEEDS_REVIEW:
            note = "Stripe does not know this object: review it" if action == Action.NEEDS_REVIEW else None
            resolutions.extend(Resolution(d, action, False, note) for d in items)
            continue
        if items[0].stripe_customer_id:
            await _lock_customer(session, items[0].stripe_customer_id)
        # a Stripe failure here propagates: the transaction rolls back, nothing is half-resolved
        remote = await _fetch(gateway, object_type, stripe_id)
        try:
            async with session.begin_nested():
                note = await _apply(session, object_type, stripe_id, action, remote)
        except (NotYetKnown, ProviderError) as exc:  # e.g. its customer or price is not local
            resolutions.extend(Resolution(d, action, False, str(exc)) for d in items)
            continue
        now = utcnow()
        for d in items:
            d.resolved_at, d.resolution = now, f"{action}: {note}"[:500]
            resolutions.append(Resolution(d, action, True, note))
    await session.flush()
    return ResolveResult(run, apply, resolutions)


def _audit_after(result: ResolveResult) -> dict[str, Any]:
    return {
        "apply": result.applied,
        "resolved": sum(1 for r in result.resolutions if r.applied),
        "unresolved": sum(1 for r in result.resolutions if not r.applied),
        "changes": [
            {
                "discrepancy": str(r.discrepancy.id),
                "object": r.discrepancy.object_type.value,
                "stripe_id": r.discrepancy.stripe_id,
                "field": r.discrepancy.field,
                "from": r.discrepancy.local_value,
                "to": r.discrepancy.stripe_value,
                "action": r.action,
                "applied": r.applied,
            }
            for r in result.resolutions[:100]
        ],
    }


async def resolve_discrepancies(
    session: AsyncSession, gateway: StripeGateway, actor: Actor, run_id: uuid.UUID, *, apply: bool
) -> ResolveResult:
    """apply=True: correct the local mirror from Stripe and mark the discrepancies resolved;
    apply=False: a dry run that only says what would change. Audited either way."""
    result = await _resolve(session, gateway, run_id, apply=apply)
    await record_audit(
        session, actor, "resolveDiscrepancies", "ReconciliationRun", str(run_id), after=_audit_after(result)
    )
    return result


async def resync_customer(
    session: AsyncSession, gateway: StripeGateway, actor: Actor, customer_id: uuid.UUID
) -> ResolveResult:
    """Reconcile one customer and apply every correction, in one transaction. Audited."""
    run = await reconcile(session, gateway, customer_id, actor)
    result = await _resolve(session, gateway, run.id, apply=True)
    await record_audit(
        session,
        actor,
        "resyncCustomer",
        "Customer",
        str(customer_id),
        after={"run": str(run.id), **_audit_after(result)},
    )
    return result


# --- listing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscrepancyFilter:
    run_id: uuid.UUID | None = None
    object_types: tuple[ObjectType, ...] = ()
    resolved: bool | None = None


def _conditions(flt: DiscrepancyFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.run_id is not None:
        conditions.append(Discrepancy.run_id == flt.run_id)
    if flt.object_types:
        conditions.append(Discrepancy.object_type.in_(flt.object_types))
    if flt.resolved is not None:
        conditions.append(Discrepancy.resolved_at.is_not(None) if flt.resolved else Discrepancy.resolved_at.is_(None))
    return conditions


async def list_runs(session: AsyncSession, page: PageArgs) -> Page[ReconciliationRun]:
    return await fetch_page(session, select(ReconciliationRun), RUN_SORT, page)


async def count_runs(session: AsyncSession) -> int:
    return await count_where(session, ReconciliationRun, [])


async def list_discrepancies(session: AsyncSession, flt: DiscrepancyFilter, page: PageArgs) -> Page[Discrepancy]:
    return await fetch_page(session, select(Discrepancy).where(*_conditions(flt)), DISCREPANCY_SORT, page)


async def count_discrepancies(session: AsyncSession, flt: DiscrepancyFilter) -> int:
    return await count_where(session, Discrepancy, _conditions(flt))


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise NotFound(f"reconciliation run {run_id} does not exist", field="run")
    return run


# --- the worker job ------------------------------------------------------------------------------------------------

RECONCILE_JOB = "run_reconciliation"


def reconcile_job_id(run_id: uuid.UUID) -> str:
    return f"reconciliation-run:{run_id}"
