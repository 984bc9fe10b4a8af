"""The facts behind each health component, for a batch of customers at once: a handful of
set-based statements per batch whatever its size (README, "Customer health")."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from api.dunning.models import CLOSED_STATUSES
from api.health.scoring import ENGAGEMENT_DAYS, SUPPORT_ACTIONS, SUPPORT_DAYS, HealthFacts, QuotaUse
from api.usage.periods import UsageWindow, usage_in_windows
from api.usage.quotas import quotas_in_force

LIVE_STATUSES = "('ACTIVE', 'TRIALING', 'PAST_DUE')"
WATERMARK = "(SELECT last_event_id FROM usage_rollup_state WHERE id = 1)"

# successful audit entries about the customers ($1): on the customer itself, one of its
# subscriptions or one of its invoices, in [$2, $3)
_CUSTOMER_AUDIT = """
SELECT t.customer_id, a.occurred_at, a.action
FROM (SELECT 'Customer'::text AS type, c::text AS id, c AS customer_id FROM unnest($1::uuid[]) AS c
      UNION ALL
      SELECT 'Subscription', s.id::text, s.customer_id FROM subscription s WHERE s.customer_id = ANY($1::uuid[])
      UNION ALL
      SELECT 'Invoice', i.id::text, i.customer_id FROM invoice i WHERE i.customer_id = ANY($1::uuid[])) AS t
JOIN audit_entry a ON a.target_type = t.type AND a.target_id = t.id
WHERE a.outcome = 'SUCCESS' AND a.occurred_at >= $2 AND a.occurred_at < $3
"""

_ACTIVE_DAYS_SQL = f"""
SELECT x.customer_id, count(DISTINCT x.day) AS days FROM (
  SELECT b.customer_id, (b.bucket_start AT TIME ZONE 'UTC')::date AS day FROM usage_bucket b
  WHERE b.customer_id = ANY($1::uuid[]) AND b.bucket_start >= $2 AND b.bucket_start < $3 AND b.event_count > 0
  UNION ALL
  SELECT e.customer_id, (e.occurred_at AT TIME ZONE 'UTC')::date FROM usage_event e
  WHERE e.id > {WATERMARK} AND e.customer_id = ANY($1::uuid[]) AND e.occurred_at >= $2 AND e.occurred_at < $3
  UNION ALL
  SELECT a.customer_id, (a.occurred_at AT TIME ZONE 'UTC')::date FROM ({_CUSTOMER_AUDIT}) AS a
) AS x GROUP BY x.customer_id
"""

_SUPPORT_SQL = f"""
SELECT a.customer_id, count(*) AS actions FROM ({_CUSTOMER_AUDIT}) AS a
WHERE a.action = ANY($4::text[]) GROUP BY a.customer_id
"""

_PAYMENT_SQL = """
SELECT x.customer_id, sum(x.failed) AS failed, sum(x.dunning) AS dunning, sum(x.overdue) AS overdue FROM (
  SELECT p.customer_id, 1 AS failed, 0 AS dunning, 0 AS overdue FROM payment p
  WHERE p.customer_id = ANY($1::uuid[]) AND p.status = 'FAILED' AND p.created_at >= $2 AND p.created_at < $3
  UNION ALL
  SELECT d.customer_id, 0, 1, 0 FROM dunning_case d
  WHERE d.customer_id = ANY($1::uuid[]) AND d.status <> ALL($4::text[])
  UNION ALL
  SELECT i.customer_id, 0, 0, 1 FROM invoice i
  WHERE i.customer_id = ANY($1::uuid[]) AND i.status = 'OPEN' AND i.due_date < $3
) AS x GROUP BY x.customer_id
"""

_ADOPTION_SQL = f"""
WITH plan_meter AS (
  SELECT s.customer_id, m.meter_id, date_trunc('hour', min(s.current_period_start), 'UTC') AS since
  FROM subscription s
  JOIN subscription_item i ON i.subscription_id = s.id
  JOIN price p ON p.id = i.price_id
  CROSS JOIN LATERAL (
    SELECT p.meter_id WHERE p.usage_type = 'METERED' AND p.meter_id IS NOT NULL
    UNION SELECT q.meter_id FROM usage_quota q WHERE q.price_id = p.id
  ) AS m(meter_id)
  WHERE s.customer_id = ANY($1::uuid[]) AND s.status IN {LIVE_STATUSES}
  GROUP BY 1, 2
), fresh AS (
  SELECT DISTINCT pm.customer_id, pm.meter_id FROM plan_meter pm
  JOIN usage_event e ON e.customer_id = pm.customer_id AND e.meter_id = pm.meter_id
  WHERE e.id > {WATERMARK} AND date_trunc('hour', e.occurred_at, 'UTC') >= pm.since AND e.occurred_at < $2
)
SELECT pm.customer_id, count(*) AS meters,
  count(*) FILTER (WHERE f.meter_id IS NOT NULL OR EXISTS (
      SELECT 1 FROM usage_bucket b WHERE b.customer_id = pm.customer_id AND b.meter_id = pm.meter_id
        AND b.bucket_start >= pm.since AND b.bucket_start < $2 AND b.event_count > 0)) AS in_use
FROM plan_meter pm LEFT JOIN fresh f ON f.customer_id = pm.customer_id AND f.meter_id = pm.meter_id
GROUP BY pm.customer_id
"""


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


async def _counts(conn: asyncpg.Connection, sql: str, *args: object) -> dict[uuid.UUID, asyncpg.Record]:
    return {row["customer_id"]: row for row in await conn.fetch(sql, *args)}


async def quota_uses(
    conn: asyncpg.Connection, customer_ids: Sequence[uuid.UUID], as_of: datetime
) -> dict[uuid.UUID, list[QuotaUse]]:
    """Each quota in force: usage in [period start, as_of) and over the same span one period
    length earlier (one statement per aggregation and window set)."""
    quotas = await quotas_in_force(conn, customer_ids)
    current, previous = [], []
    for q in quotas:
        length = q.period_end - q.period_start
        elapsed = min(max(as_of - q.period_start, timedelta(0)), length)
        current.append(UsageWindow(q.customer_id, q.meter_id, q.aggregation, q.period_start, q.period_start + elapsed))
        earlier = q.period_start - length
        previous.append(UsageWindow(q.customer_id, q.meter_id, q.aggregation, earlier, earlier + elapsed))
    used = await usage_in_windows(conn, current)
    before = await usage_in_windows(conn, previous)
    uses: dict[uuid.UUID, list[QuotaUse]] = {}
    for q, window, now_value, then_value in zip(quotas, current, used, before, strict=True):
        length = q.period_end - q.period_start
        uses.setdefault(q.customer_id, []).append(
            QuotaUse(q.meter_key, q.aggregation, q.limit, now_value, then_value, window.end - window.start, length)
        )
    for items in uses.values():
        items.sort(key=lambda u: u.meter_key)
    return uses


async def gather_facts(
    conn: asyncpg.Connection, customer_ids: Sequence[uuid.UUID], as_of: datetime
) -> dict[uuid.UUID, HealthFacts]:
    """The facts of each customer at `as_of`. Engagement counts the 30 closed UTC days before
    as_of's day; support and failed payments the 90 days before as_of."""
    ids = list(customer_ids)
    today = as_of.astimezone(UTC).date()
    engagement = (day_start(today - timedelta(days=ENGAGEMENT_DAYS)), day_start(today))
    support_from = as_of - timedelta(days=SUPPORT_DAYS)
    quotas = await quota_uses(conn, ids, as_of)
    active = await _counts(conn, _ACTIVE_DAYS_SQL, ids, *engagement)
    support = await _counts(conn, _SUPPORT_SQL, ids, support_from, as_of, list(SUPPORT_ACTIONS))
    payment = await _counts(conn, _PAYMENT_SQL, ids, support_from, as_of, [s.value for s in CLOSED_STATUSES])
    adoption = await _counts(conn, _ADOPTION_SQL, ids, as_of)
    facts: dict[uuid.UUID, HealthFacts] = {}
    for customer_id in ids:
        f = HealthFacts(quotas=quotas.get(customer_id, []))
        if (row := active.get(customer_id)) is not None:
            f.active_days = int(row["days"])
        if (row := support.get(customer_id)) is not None:
            f.support_actions = int(row["actions"])
        if (row := payment.get(customer_id)) is not None:
            f.failed_payments, f.open_dunning_cases, f.overdue_invoices = (
                int(row["failed"]),
                int(row["dunning"]),
                int(row["overdue"]),
            )
        if (row := adoption.get(customer_id)) is not None:
            f.plan_meters, f.meters_in_use = int(row["meters"]), int(row["in_use"])
        facts[customer_id] = f
    return facts
