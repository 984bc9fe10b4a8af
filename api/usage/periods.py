"""Usage over a range, with each meter's aggregation: the one place that knows how to combine
rolled-up hourly buckets with the events the roll-up has not reached yet.

Ranges are counted in whole UTC hours: an hour belongs to [start, end) when it starts there
(`start` is first floored to its hour). The rolled-up buckets cover events up to the watermark;
newer events are aggregated on the fly, so reads and quota checks never lag the roll-up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from api.usage.models import MeterAggregation


def decimal_text(value: Decimal) -> str:
    """`12.5`, `3`, `10`: never `1E+1`."""
    return format(value.normalize(), "f")


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


# An event's hour: the same as date_trunc('hour', e.occurred_at, 'UTC'), computed without a time
# zone lookup per event (hours counted from an origin at a UTC midnight)
EVENT_HOUR = "date_bin('1 hour', e.occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')"

# how the hourly rows of one meter combine (rows carry value, event_count, latest_at, latest_event_id)
COMBINE: dict[MeterAggregation, str] = {
    MeterAggregation.SUM: "sum(r.value)",
    MeterAggregation.COUNT: "sum(r.value)",
    MeterAggregation.MAX: "max(r.value)",
    MeterAggregation.LATEST: "(array_agg(r.value ORDER BY r.latest_at DESC, r.latest_event_id DESC))[1]",
    MeterAggregation.UNIQUE_COUNT: "count(DISTINCT r.unique_value)",
}


def hourly_rows(scope: str, *, unique: bool, per_customer: bool = True) -> str:
    """Hourly rows of the meter(s) in `scope` — a FROM item `q` with columns (key, c, m, lo, hi):
    c the customer id (ignored when not `per_customer`: every customer), m the meter id, [lo, hi)
    the hours — buckets first, then the events above the watermark (one row each). For
    UNIQUE_COUNT the rows are the distinct values instead (`unique_value`), the meter's property
    read from each event."""
    b_customer = "AND b.customer_id = q.c" if per_customer else ""
    v_customer = "AND v.customer_id = q.c" if per_customer else ""
    e_customer = "AND e.customer_id = q.c" if per_customer else ""
    if unique:
        return f"""
        SELECT q.key, v.customer_id, v.bucket_start AS hour, v.value AS unique_value, NULL::numeric AS value,
               0::bigint AS event_count, NULL::timestamptz AS latest_at, 0::bigint AS latest_event_id
        FROM {scope} JOIN usage_bucket_value v
          ON v.meter_id = q.m {v_customer} AND v.bucket_start >= q.lo AND v.bucket_start < q.hi
        UNION ALL
        SELECT q.key, e.customer_id, {EVENT_HOUR}, e.properties ->> mt.unique_property,
               NULL, 0, NULL, 0
        FROM {scope} JOIN meter mt ON mt.id = q.m JOIN usage_event e
          ON e.meter_id = q.m {e_customer}
         AND e.id > (SELECT last_event_id FROM usage_rollup_state WHERE id = 1)
         AND {EVENT_HOUR} >= q.lo AND {EVENT_HOUR} < q.hi"""
    return f"""
        SELECT q.key, b.customer_id, b.bucket_start AS hour, NULL::text AS unique_value,
               b.value, b.event_count, b.latest_at, b.latest_event_id
        FROM {scope} JOIN usage_bucket b
          ON b.meter_id = q.m {b_customer} AND b.bucket_start >= q.lo AND b.bucket_start < q.hi
        UNION ALL
        SELECT q.key, e.customer_id, {EVENT_HOUR}, NULL, e.value, 1, e.occurred_at, e.id
        FROM {scope} JOIN usage_event e
          ON e.meter_id = q.m {e_customer}
         AND e.id > (SELECT last_event_id FROM usage_rollup_state WHERE id = 1)
         AND {EVENT_HOUR} >= q.lo AND {EVENT_HOUR} < q.hi"""


PAIRS_SCOPE = "unnest($1::int[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[]) AS q(key, c, m, lo, hi)"


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """One question: a customer's (or, with customer_id None, everyone's) usage of one meter in
    [start, end)."""

    customer_id: uuid.UUID | None
    meter_id: uuid.UUID
    aggregation: MeterAggregation
    start: datetime
    end: datetime


async def usage_in_windows(conn: asyncpg.Connection, windows: Sequence[UsageWindow]) -> list[Decimal]:
    """The aggregate of each window, in order (0 when nothing was recorded), in one statement per
    aggregation present."""
    values = [Decimal(0)] * len(windows)
    by_aggregation: dict[MeterAggregation, list[int]] = {}
    for index, window in enumerate(windows):
        by_aggregation.setdefault(window.aggregation, []).append(index)
    for aggregation, indexes in by_aggregation.items():
        unique = aggregation is MeterAggregation.UNIQUE_COUNT
        sql = (
            f"SELECT r.key, {COMBINE[aggregation]} AS total "
            f"FROM ({hourly_rows(PAIRS_SCOPE, unique=unique)}) AS r GROUP BY r.key"
        )
        rows = await conn.fetch(sql, *_window_arrays([(i, windows[i]) for i in indexes]))
        for row in rows:
            if row["total"] is not None:
                values[row["key"]] = Decimal(row["total"])
    return values


def _window_arrays(indexed: Sequence[tuple[int, UsageWindow]]) -> list[list[Any]]:
    return [
        [i for i, _ in indexed],
        [w.customer_id for _, w in indexed],
        [w.meter_id for _, w in indexed],
        [floor_hour(w.start) for _, w in indexed],
        [w.end for _, w in indexed],
    ]


class QuotaWindow(Protocol):
    @property
    def customer_id(self) -> uuid.UUID: ...
    @property
    def meter_id(self) -> uuid.UUID: ...
    @property
    def aggregation(self) -> MeterAggregation: ...
    @property
    def period_start(self) -> datetime: ...
    @property
    def period_end(self) -> datetime: ...
    def window(self) -> UsageWindow: ...


@dataclass(slots=True)
class PeriodUsage:
    """A customer's usage of a meter so far this period, kept current while a batch is checked
    against a hard quota."""

    aggregation: MeterAggregation
    value: Decimal
    latest_at: datetime | None = None
    seen: set[str] = field(default_factory=set)  # UNIQUE_COUNT: values already counted

    def _after(self, value: Decimal, occurred_at: datetime, unique: Any) -> Decimal:
        match self.aggregation:
            case MeterAggregation.SUM | MeterAggregation.COUNT:
                return self.value + value
            case MeterAggregation.MAX:
                return max(self.value, value)
            case MeterAggregation.LATEST:
                return value if self.latest_at is None or occurred_at >= self.latest_at else self.value
            case MeterAggregation.UNIQUE_COUNT:
                return self.value if str(unique) in self.seen else self.value + 1

    def would_exceed(self, value: Decimal, occurred_at: datetime, unique: Any, limit: Decimal) -> bool:
        return self._after(value, occurred_at, unique) > limit

    def add(self, value: Decimal, occurred_at: datetime, unique: Any) -> None:
        self.value = self._after(value, occurred_at, unique)
        if self.latest_at is None or occurred_at >= self.latest_at:
            self.latest_at = occurred_at
        if self.aggregation is MeterAggregation.UNIQUE_COUNT:
            self.seen.add(str(unique))


Pair = tuple[uuid.UUID, uuid.UUID]  # (customer id, meter id)


async def period_usage(
    conn: asyncpg.Connection,
    quotas: Sequence[QuotaWindow],
    unique_candidates: dict[Pair, set[str]] | None = None,
) -> dict[Pair, PeriodUsage]:
    """Usage this period of each (customer, meter) under a quota; for UNIQUE_COUNT meters also
    which of `unique_candidates` were already counted this period."""
    totals = await usage_in_windows(conn, [q.window() for q in quotas])
    usage = {
        (q.customer_id, q.meter_id): PeriodUsage(q.aggregation, total) for q, total in zip(quotas, totals, strict=True)
    }
    for q in quotas:
        candidates = (unique_candidates or {}).get((q.customer_id, q.meter_id))
        if q.aggregation is MeterAggregation.UNIQUE_COUNT and candidates:
            usage[(q.customer_id, q.meter_id)].seen = await _seen_values(conn, q, candidates)
    return usage


async def _seen_values(conn: asyncpg.Connection, q: QuotaWindow, candidates: set[str]) -> set[str]:
    sql = f"""SELECT DISTINCT r.unique_value FROM ({hourly_rows(PAIRS_SCOPE, unique=True)}) AS r
              WHERE r.unique_value = ANY($6::text[])"""
    rows = await conn.fetch(
        sql, [0], [q.customer_id], [q.meter_id], [floor_hour(q.period_start)], [q.period_end], list(candidates)
    )
    return {r["unique_value"] for r in rows}
