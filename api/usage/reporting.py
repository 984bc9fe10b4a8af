"""Reporting closed usage buckets to Stripe as billing meter events.

A bucket is reported once its hour has closed (plus a grace for late events) and the customer
has a live subscription to a metered price of that meter. What is sent depends on the Stripe
meter's formula, which follows the Ledgerline aggregation:
- SUM and COUNT → Stripe `sum`: each event carries what the bucket added since the last report
  (a late event reports its difference under the next revision);
- MAX and UNIQUE_COUNT → Stripe `last`: the period-to-date aggregate as of the bucket's end;
- LATEST → Stripe `last`: the bucket's latest value.

Never twice: the event (identifier `<bucket>-r<revision>`, value) is recorded on the bucket before
the call. After a crash or a failure the same event is sent again, and Stripe's identifier dedup
makes it count once; only when it has landed does the bucket move to the next revision.
Failures are retried with exponential backoff; the per-bucket status is in the schema."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import driver_connection
from api.errors import LedgerlineError, Rejected
from api.stripe.gateway import StripeGateway
from api.usage.ingest import MAX_AGE
from api.usage.models import MeterAggregation
from api.usage.periods import UsageWindow, decimal_text, usage_in_windows

log = logging.getLogger("ledgerline.usage")

CLOSE_GRACE = timedelta(minutes=5)  # an hour is reported this long after it ends
LEASE = timedelta(minutes=5)  # a reporter's claim on a bucket while it talks to Stripe
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
BATCH = 500
MAX_ERROR_LENGTH = 2000
TOO_OLD = "not retried: the hour is older than the 35 days Stripe accepts meter events for"

STRIPE_FORMULA: dict[MeterAggregation, str] = {
    MeterAggregation.SUM: "sum",
    MeterAggregation.COUNT: "sum",  # a bucket sends its count as one event's value
    MeterAggregation.MAX: "last",
    MeterAggregation.UNIQUE_COUNT: "last",
    MeterAggregation.LATEST: "last",
}

# A customer's live subscriptions (`s`) to metered prices (`p`): what makes usage of a meter billed.
# A WHERE clause follows; add conditions with AND.
LIVE_METERED_SUBSCRIPTIONS = """subscription s JOIN subscription_item i ON i.subscription_id = s.id
    JOIN price p ON p.id = i.price_id
    WHERE p.usage_type = 'METERED' AND s.status IN ('ACTIVE', 'TRIALING', 'PAST_DUE')"""

_DUE = f"""
SELECT b.customer_id, b.meter_id, b.bucket_start, b.aggregation, b.value, b.reported_value, b.report_revision,
       b.sending_identifier, b.sending_value, b.sending_total, b.report_attempts,
       c.stripe_customer_id, m.stripe_event_name,
       (SELECT s.current_period_start FROM {LIVE_METERED_SUBSCRIPTIONS}
           AND s.customer_id = b.customer_id AND p.meter_id = b.meter_id
         ORDER BY s.current_period_start DESC LIMIT 1) AS period_start
FROM usage_bucket b
JOIN customer c ON c.id = b.customer_id
JOIN meter m ON m.id = b.meter_id
WHERE b.bucket_start <= $1
  AND ((b.report_status = 'PENDING' AND (b.next_report_at IS NULL OR b.next_report_at <= $2))
       OR (b.report_status = 'FAILED' AND b.next_report_at <= $2))  -- FAILED without a time: given up
ORDER BY b.bucket_start
LIMIT $3
FOR UPDATE OF b SKIP LOCKED
"""

# a bucket by its primary key; the statements below take their own values from $4 on
_KEY = "meter_id = $1 AND customer_id = $2 AND bucket_start = $3"


@dataclass(frozen=True, slots=True)
class MeterEventToSend:
    customer_id: uuid.UUID
    meter_id: uuid.UUID
    bucket_start: datetime
    revision: int  # the bucket's report this event is (1 for the first)
    identifier: str
    event_name: str
    stripe_customer_id: str
    value: Decimal
    total: Decimal
    attempts: int


@dataclass(slots=True)
class ReportResult:
    reported: int = 0
    failed: int = 0
    not_billed: int = 0
    unchanged: int = 0


def meter_event_identifier(customer_id: uuid.UUID, meter_id: uuid.UUID, bucket_start: datetime, revision: int) -> str:
    """Deterministic per bucket and revision (Stripe caps identifiers at 100 characters)."""
    digest = hashlib.sha256(f"{customer_id}:{meter_id}:{bucket_start.isoformat()}".encode()).hexdigest()[:32]
    return f"llu_{digest}_r{revision}"


def event_time(bucket_start: datetime, revision: int) -> datetime:
    """When a bucket's meter event says it happened: in the hour's last minute, one second later
    for each revision (the 59th and later share the last second). For `last` meters Stripe keeps
    the latest event by time, so a bucket's re-report must not tie with its earlier report; a
    resent event (same revision) keeps its time."""
    return bucket_start + timedelta(hours=1) - timedelta(seconds=60) + timedelta(seconds=min(revision, 59))


def retry_delay(attempts: int) -> timedelta:
    delay: timedelta = RETRY_BASE * 2 ** max(attempts - 1, 0)
    return min(delay, RETRY_CAP)


async def _value_to_send(conn: asyncpg.Connection, row: asyncpg.Record) -> tuple[Decimal, Decimal]:
    """(the event's value, what Stripe holds for the bucket once it lands)."""
    aggregation = MeterAggregation(row["aggregation"])
    value = Decimal(row["value"])
    reported = Decimal(row["reported_value"] or 0)
    if STRIPE_FORMULA[aggregation] == "sum":
        return value - reported, value
    if aggregation is MeterAggregation.LATEST:
        return value, value
    bucket_end = row["bucket_start"] + timedelta(hours=1)
    start = row["period_start"] if row["period_start"] and row["period_start"] < bucket_end else row["bucket_start"]
    window = UsageWindow(row["customer_id"], row["meter_id"], aggregation, start, bucket_end)
    (to_date,) = await usage_in_windows(conn, [window])
    return to_date, to_date


def _nothing_new(row: asyncpg.Record, value: Decimal, total: Decimal) -> bool:
    """Stripe already holds what this bucket would send: for `sum` a zero difference, for `last`
    the same figure (a re-report after a late event that changed nothing Stripe bills)."""
    if STRIPE_FORMULA[row["aggregation"]] == "sum":
        return value == 0
    return row["reported_value"] is not None and total == Decimal(row["reported_value"])


async def _claim(session: AsyncSession, now: datetime, result: ReportResult) -> tuple[int, list[MeterEventToSend]]:
    """Picks due buckets, settles those with nothing to send, and records (or keeps) the event of
    the others with a lease, in one short transaction."""
    conn = await driver_connection(session)
    rows = await conn.fetch(_DUE, now - timedelta(hours=1) - CLOSE_GRACE, now, BATCH)
    claimed: list[MeterEventToSend] = []
    for row in rows:
        key = (row["meter_id"], row["customer_id"], row["bucket_start"])
        billed = row["stripe_customer_id"] and row["stripe_event_name"] and row["period_start"] is not None
        if not billed and row["sending_identifier"] is None:
            await conn.execute(f"UPDATE usage_bucket SET report_status = 'NOT_BILLED' WHERE {_KEY}", *key)
            result.not_billed += 1
            continue
        if row["sending_identifier"] is None:
            value, total = await _value_to_send(conn, row)
            if _nothing_new(row, value, total):
                await conn.execute(
                    f"UPDATE usage_bucket SET report_status = 'REPORTED', report_error = NULL WHERE {_KEY}", *key
                )
                result.unchanged += 1
                continue
            identifier = meter_event_identifier(
                row["customer_id"], row["meter_id"], row["bucket_start"], row["report_revision"] + 1
            )
            await conn.execute(
                f"""UPDATE usage_bucket SET sending_identifier = $4, sending_value = $5, sending_total = $6,
                    next_report_at = $7 WHERE {_KEY}""",
                *key,
                identifier,
                value,
                total,
                now + LEASE,
            )
        else:
            identifier, value, total = row["sending_identifier"], row["sending_value"], row["sending_total"]
            await conn.execute(f"UPDATE usage_bucket SET next_report_at = $4 WHERE {_KEY}", *key, now + LEASE)
        claimed.append(
            MeterEventToSend(
                row["customer_id"],
                row["meter_id"],
                row["bucket_start"],
                revision=row["report_revision"] + 1,  # what is in flight, whether new or resent
                identifier=identifier,
                event_name=row["stripe_event_name"],
                stripe_customer_id=row["stripe_customer_id"],
                value=Decimal(value),
                total=Decimal(total),
                attempts=row["report_attempts"],
            )
        )
    return len(rows), claimed


def _already_sent(exc: LedgerlineError) -> bool:
    """Stripe refuses a second event with the same identifier: the first one landed."""
    return isinstance(exc, Rejected) and "already exists with identifier" in exc.message


async def _send(gateway: StripeGateway, event: MeterEventToSend, now: datetime) -> str | None:
    """None when Stripe has the event, else the error."""
    timestamp = event_time(event.bucket_start, event.revision)
    if timestamp < now - MAX_AGE + timedelta(minutes=1):
        return TOO_OLD
    try:
        await gateway.create_meter_event(
            {
                "event_name": event.event_name,
                "identifier": event.identifier,
                "timestamp": int(timestamp.timestamp()),
                "payload": {
                    "stripe_customer_id": event.stripe_customer_id,
                    "value": decimal_text(event.value),
                },
            }
        )
    except LedgerlineError as exc:
        if _already_sent(exc):
            return None
        return exc.message[:MAX_ERROR_LENGTH]
    return None


async def _settle(session: AsyncSession, event: MeterEventToSend, error: str | None, now: datetime) -> None:
    conn = await driver_connection(session)
    key = (event.meter_id, event.customer_id, event.bucket_start)
    if error is None:
        await conn.execute(
            f"""UPDATE usage_bucket SET report_status = 'REPORTED', reported_value = sending_total,
                report_revision = report_revision + 1, reported_at = $4, report_error = NULL,
                report_attempts = 0, next_report_at = NULL,
                sending_identifier = NULL, sending_value = NULL, sending_total = NULL
                WHERE {_KEY} AND sending_identifier = $5""",
            *key,
            now,
            event.identifier,
        )
        return
    gave_up = error == TOO_OLD
    await conn.execute(
        f"""UPDATE usage_bucket SET report_status = 'FAILED', report_error = $4,
            report_attempts = report_attempts + 1, next_report_at = $5 WHERE {_KEY}""",
        *key,
        error,
        None if gave_up else now + retry_delay(event.attempts + 1),
    )


async def report_usage(
    session_factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, now: datetime
) -> ReportResult:
    """Reports every due bucket, BATCH at a time."""
    result = ReportResult()
    while True:
        async with session_factory() as session, session.begin():
            picked, claimed = await _claim(session, now, result)
        for event in claimed:
            error = await _send(gateway, event, now)
            async with session_factory() as session, session.begin():
                await _settle(session, event, error, now)
            if error is None:
                result.reported += 1
            else:
                result.failed += 1
                log.warning("usage bucket %s not reported: %s", event.identifier, error)
        if picked < BATCH:
            return result
