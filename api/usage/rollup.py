"""Roll-up: new usage events → hourly buckets per customer and meter, each meter with its own
aggregation, counted exactly once.

Exactly once: a watermark row (`usage_rollup_state`) says which event ids are in the buckets; the
buckets and the watermark move in one transaction, so a worker killed mid-roll-up leaves both as
they were and the next run starts from the same place. Event ids are handed out before their
insert commits, so an id can become visible after a larger one; the upper bound of each run is
read behind the ingest fence (see `api.usage.ingest.INGEST_FENCE_LOCK`), when no insert is in
flight, so no event below the watermark can appear later.

Quota thresholds crossed by the new usage raise their alerts in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.db import driver_connection
from api.usage.ingest import INGEST_FENCE_LOCK
from api.usage.periods import EVENT_HOUR, Pair, decimal_text, usage_in_windows
from api.usage.quotas import crossed_thresholds, customer_quotas
from api.usage.reporting import LIVE_METERED_SUBSCRIPTIONS

CHUNK_EVENTS = 2_000_000  # event ids per transaction: bounds a catch-up's transaction size
WORK_MEM = "256MB"

# The new events of every meter, aggregated per hour in one pass (a hash aggregate: no sort of the
# events) into a temporary table; each meter's aggregation is picked per hour afterwards, so the
# events are not joined to their meters. LATEST takes the value of the newest event by (time, id),
# found with max() over ARRAY[epoch, id, value] (arrays compare element by element) instead of an
# ordered aggregate; UNIQUE_COUNT gets its value when the buckets are written (see _WRITE).
_STAGE = f"""
CREATE TEMPORARY TABLE usage_rollup_fresh ON COMMIT DROP AS
SELECT a.meter_id, a.customer_id, a.hour, m.aggregation, a.events,
       CASE m.aggregation WHEN 'SUM' THEN a.total WHEN 'COUNT' THEN a.events WHEN 'MAX' THEN a.top
                          WHEN 'LATEST' THEN a.newest[3] ELSE 0 END AS value,
       CASE WHEN a.newest IS NULL THEN a.latest_at ELSE to_timestamp(a.newest[1]::double precision) END AS latest_at,
       CASE WHEN a.newest IS NULL THEN a.latest_id ELSE a.newest[2]::bigint END AS latest_id
FROM (
    SELECT e.meter_id, e.customer_id, {EVENT_HOUR} AS hour,
           sum(e.value) AS total, count(*) AS events, max(e.value) AS top,
           max(e.occurred_at) AS latest_at, max(e.id) AS latest_id,
           max(ARRAY[extract(epoch FROM e.occurred_at), e.id::numeric, e.value])
               FILTER (WHERE e.meter_id = ANY (ARRAY(SELECT id FROM meter WHERE aggregation = 'LATEST'))) AS newest
    FROM usage_event e
    WHERE e.id > $1 AND e.id <= $2
    GROUP BY 1, 2, 3
) AS a JOIN meter m ON m.id = a.meter_id
"""

# The staged hours into the buckets, in one statement and in key order. UNIQUE_COUNT first stores
# the distinct values each hour has not seen yet; their number is what the hour adds. An hour
# that has a bucket takes the new events in, each by its meter's aggregation, and is reported
# again (the difference, under a new revision); the other hours get a bucket. No conflict
# handling on the buckets: the roll-up is their only writer, and roll-ups never overlap (each
# holds the watermark row).
_WRITE = f"""
WITH new_values AS (
    INSERT INTO usage_bucket_value (customer_id, meter_id, bucket_start, value)
    SELECT DISTINCT e.customer_id, e.meter_id, {EVENT_HOUR}, e.properties ->> m.unique_property
    FROM usage_event e JOIN meter m ON m.id = e.meter_id
    WHERE e.id > $1 AND e.id <= $2 AND m.aggregation = 'UNIQUE_COUNT'
      AND e.properties ->> m.unique_property IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING meter_id, customer_id, bucket_start AS hour
), distinct_counts AS (
    SELECT meter_id, customer_id, hour, count(*) AS n FROM new_values GROUP BY 1, 2, 3
)
MERGE INTO usage_bucket AS b
USING (
    SELECT f.meter_id, f.customer_id, f.hour, f.aggregation, f.events, f.latest_at, f.latest_id,
           CASE WHEN f.aggregation = 'UNIQUE_COUNT' THEN coalesce(d.n, 0) ELSE f.value END AS value
    FROM usage_rollup_fresh AS f LEFT JOIN distinct_counts AS d USING (meter_id, customer_id, hour)
    ORDER BY f.meter_id, f.customer_id, f.hour
) AS f
ON b.meter_id = f.meter_id AND b.customer_id = f.customer_id AND b.bucket_start = f.hour
WHEN MATCHED THEN UPDATE SET
    value = CASE b.aggregation
        WHEN 'SUM' THEN b.value + f.value
        WHEN 'COUNT' THEN b.value + f.value
        WHEN 'MAX' THEN GREATEST(b.value, f.value)
        WHEN 'UNIQUE_COUNT' THEN b.value + f.value  -- values new to the hour
        WHEN 'LATEST' THEN CASE WHEN (f.latest_at, f.latest_id) > (b.latest_at, b.latest_event_id)
                                THEN f.value ELSE b.value END
        ELSE b.value
    END,
    event_count = b.event_count + f.events,
    latest_event_id = CASE WHEN (f.latest_at, f.latest_id) > (b.latest_at, b.latest_event_id)
                           THEN f.latest_id ELSE b.latest_event_id END,
    latest_at = GREATEST(b.latest_at, f.latest_at),
    updated_at = now(),
    report_status = 'PENDING',
    report_attempts = 0,
    next_report_at = NULL
WHEN NOT MATCHED THEN INSERT
    (meter_id, customer_id, bucket_start, aggregation, value, event_count, latest_at, latest_event_id, updated_at)
    VALUES (f.meter_id, f.customer_id, f.hour, f.aggregation, f.value, f.events, f.latest_at, f.latest_id, now())
"""

# MAX and UNIQUE_COUNT send period-to-date figures, of which Stripe keeps the latest by time: an
# event that lands in an hour before a pair's newest reported hour changes what that newer hour
# should have said, so it is reported again (its own hour is re-reported by _WRITE's update).
# Only pairs a live subscription bills: the reporter settles the others without sending anything.
_RESEND_NEWEST = f"""
UPDATE usage_bucket AS b SET report_status = 'PENDING', report_attempts = 0, next_report_at = NULL
FROM (
    SELECT f.meter_id, f.customer_id, min(f.hour) AS earliest
    FROM usage_rollup_fresh AS f WHERE f.aggregation IN ('MAX', 'UNIQUE_COUNT')
    GROUP BY f.meter_id, f.customer_id
) AS late
CROSS JOIN LATERAL (  -- walks the pair's hours back from the newest, down to the late one at most
    SELECT x.bucket_start FROM usage_bucket AS x
    WHERE x.meter_id = late.meter_id AND x.customer_id = late.customer_id AND x.bucket_start > late.earliest
      AND x.report_status = 'REPORTED'
    ORDER BY x.bucket_start DESC LIMIT 1
) AS newest
WHERE b.meter_id = late.meter_id AND b.customer_id = late.customer_id AND b.bucket_start = newest.bucket_start
  AND EXISTS (
      SELECT 1 FROM {LIVE_METERED_SUBSCRIPTIONS} AND s.customer_id = late.customer_id AND p.meter_id = late.meter_id
  )
"""

_WRITTEN = """
SELECT customer_id, meter_id, count(*) AS buckets, sum(events) AS events
FROM usage_rollup_fresh GROUP BY customer_id, meter_id
"""


@dataclass(slots=True)
class RollupResult:
    events: int = 0  # events rolled up by this run
    buckets: int = 0  # buckets written (created or updated)
    watermark: int = 0  # the last event id in the buckets after this run
    alerts: list[uuid.UUID] = field(default_factory=list)


async def fenced_upper_bound(conn: asyncpg.Connection) -> int:
    """The largest event id below which every insert has finished (committed or rolled back)."""
    await conn.execute("SELECT pg_advisory_lock($1)", INGEST_FENCE_LOCK)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM usage_event"))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", INGEST_FENCE_LOCK)


async def _roll_chunk(session: AsyncSession, upper: int, result: RollupResult) -> bool:
    """One transaction's worth; False when there was nothing left below `upper`."""
    conn = await driver_connection(session)
    watermark = int(await conn.fetchval("SELECT last_event_id FROM usage_rollup_state WHERE id = 1 FOR UPDATE"))
    result.watermark = watermark
    if watermark >= upper:
        return False
    high = min(upper, watermark + CHUNK_EVENTS)
    # the aggregation of a large catch-up sorts and hashes in memory rather than on disk
    await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    await conn.execute(_STAGE, watermark, high)
    await conn.execute(_WRITE, watermark, high)
    await conn.execute(_RESEND_NEWEST)
    rows = await conn.fetch(_WRITTEN)
    result.events += sum(int(r["events"]) for r in rows)
    result.buckets += sum(int(r["buckets"]) for r in rows)
    # the watermark first: usage reads add the events above it to the buckets
    await conn.execute("UPDATE usage_rollup_state SET last_event_id = $1, updated_at = now() WHERE id = 1", high)
    result.watermark = high
    result.alerts.extend(await raise_quota_alerts(session, {(r["customer_id"], r["meter_id"]) for r in rows}))
    return high < upper


async def roll_up(session_factory: async_sessionmaker[AsyncSession]) -> RollupResult:
    """Rolls every event visible now into the buckets (several transactions when far behind)."""
    result = RollupResult()
    async with session_factory() as session:
        upper = await fenced_upper_bound(await driver_connection(session, transactional=False))
    more = True
    while more:
        async with session_factory() as session, session.begin():
            more = await _roll_chunk(session, upper, result)
    return result


async def raise_quota_alerts(session: AsyncSession, pairs: Iterable[Pair]) -> list[uuid.UUID]:
    """An alert per quota threshold (80%, 100%) a customer's usage has reached this period, once
    per threshold and period whatever the number of roll-ups that see it."""
    conn = await driver_connection(session)
    quotas = list((await customer_quotas(conn, pairs)).values())
    if not quotas:
        return []
    windows = [q.window() for q in quotas]
    raised: list[uuid.UUID] = []
    for quota, used in zip(quotas, await usage_in_windows(conn, windows), strict=True):
        for threshold in crossed_thresholds(used, quota.limit):
            details: dict[str, Any] = {
                "meter": quota.meter_key,
                "used": decimal_text(used),
                "limit": decimal_text(quota.limit),
                "threshold": threshold,
                "quotaKind": quota.kind.value,
                "periodStart": quota.period_start.isoformat(),
                "periodEnd": quota.period_end.isoformat(),
            }
            alert = await raise_alert(
                session,
                NewAlert(
                    kind=AlertKind.QUOTA_THRESHOLD,
                    severity=AlertSeverity.CRITICAL if threshold >= 100 else AlertSeverity.WARNING,
                    message=f"{threshold}% of the {quota.kind.value.lower()} quota of meter {quota.meter_key!r} "
                    f"used this period ({details['used']} of {details['limit']})",
                    dedup_key=f"quota:{quota.customer_id}:{quota.meter_id}:{_period_key(quota.period_start)}:{threshold}",
                    customer_id=quota.customer_id,
                    details=details,
                ),
            )
            if alert is not None:
                raised.append(alert.id)
    return raised


def _period_key(start: datetime) -> str:
    return start.strftime("%Y%m%dT%H%M%S")
