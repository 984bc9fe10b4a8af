"""Quotas: how much of a meter a plan (price) includes per billing period, soft (alerts at 80%
and 100%) or hard (ingest also rejects what would go over). A customer's quota for a meter comes
from its live subscriptions' prices; with several, the largest limit applies."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from api.usage.models import MeterAggregation, QuotaKind
from api.usage.periods import UsageWindow

THRESHOLDS = (80, 100)  # percent of the limit that raise an alert, once per period each


@dataclass(frozen=True, slots=True)
class CustomerQuota:
    customer_id: uuid.UUID
    meter_id: uuid.UUID
    meter_key: str
    aggregation: MeterAggregation
    limit: Decimal
    kind: QuotaKind
    period_start: datetime
    period_end: datetime

    def covers(self, at: datetime) -> bool:
        return self.period_start <= at < self.period_end

    def window(self) -> UsageWindow:
        """This period's usage of the meter, as the usage reads compute it."""
        return UsageWindow(self.customer_id, self.meter_id, self.aggregation, self.period_start, self.period_end)


# the quota in force per (customer, meter): from the live subscriptions' prices, the largest limit
_QUOTAS_SQL = """
SELECT DISTINCT ON (s.customer_id, q.meter_id)
       s.customer_id, q.meter_id, m.key AS meter_key, m.aggregation, q.quota_limit, q.kind,
       s.current_period_start, s.current_period_end
FROM subscription s
JOIN subscription_item i ON i.subscription_id = s.id
JOIN usage_quota q ON q.price_id = i.price_id
JOIN meter m ON m.id = q.meter_id
{scope}
WHERE s.status IN ('ACTIVE', 'TRIALING', 'PAST_DUE') AND {condition}
ORDER BY s.customer_id, q.meter_id, q.quota_limit DESC
"""
_OF_PAIRS = _QUOTAS_SQL.format(
    scope="JOIN unnest($1::uuid[], $2::uuid[]) AS p(c, m) ON p.c = s.customer_id AND p.m = q.meter_id",
    condition="($3::text IS NULL OR q.kind = $3::text)",
)
_OF_CUSTOMERS = _QUOTAS_SQL.format(scope="", condition="s.customer_id = ANY($1::uuid[])")


def _quota(r: asyncpg.Record) -> CustomerQuota:
    return CustomerQuota(
        customer_id=r["customer_id"],
        meter_id=r["meter_id"],
        meter_key=r["meter_key"],
        aggregation=MeterAggregation(r["aggregation"]),
        limit=Decimal(r["quota_limit"]),
        kind=QuotaKind(r["kind"]),
        period_start=r["current_period_start"],
        period_end=r["current_period_end"],
    )


async def customer_quotas(
    conn: asyncpg.Connection, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]], kind: QuotaKind | None = None
) -> dict[tuple[uuid.UUID, uuid.UUID], CustomerQuota]:
    """The quota in force for each (customer, meter) pair that has one."""
    wanted = list(set(pairs))
    if not wanted:
        return {}
    kind_value = kind.value if kind is not None else None
    rows = await conn.fetch(_OF_PAIRS, [c for c, _ in wanted], [m for _, m in wanted], kind_value)
    return {(r["customer_id"], r["meter_id"]): _quota(r) for r in rows}


async def quotas_in_force(conn: asyncpg.Connection, customer_ids: Sequence[uuid.UUID]) -> list[CustomerQuota]:
    """Every quota of the customers' live plans (one per customer and meter), in one statement."""
    return [_quota(r) for r in await conn.fetch(_OF_CUSTOMERS, list(set(customer_ids)))]


def crossed_thresholds(used: Decimal, limit: Decimal) -> list[int]:
    if limit <= 0:
        return list(THRESHOLDS)
    return [t for t in THRESHOLDS if used * 100 >= limit * t]
