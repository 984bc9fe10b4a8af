"""The `revenue` report: a range of UTC days in one currency, as a series of periods.

Closed days come from the stored daily snapshots (`revenue_day`); a closed day that is not stored
yet is computed on the spot (not stored: the nightly job and `ledgerline revenue recompute` store);
today is always computed live. Each period's figures are derived from its days as the README's
"Revenue analytics" section defines them."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Product
from api.common.daterange import DateRange
from api.errors import Invalid
from api.revenue.daily import (
    ADDITIVE,
    COHORT,
    PLAN,
    SIGNUPS,
    TIER,
    Closing,
    DayFigures,
    compute_days,
    instant,
    load_closing,
    load_days,
)
from api.revenue.history import round_half_up

MAX_RANGE_DAYS = 3 * 366 + 1


class Granularity(enum.StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"  # ISO weeks, Monday to Sunday
    MONTH = "MONTH"


@dataclass(frozen=True, slots=True)
class Movement:
    mrr: int
    customers: int


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    name: str
    mrr: int
    customers: int


@dataclass(slots=True)
class Period:
    """Figures of days first..last: the closing state of `last`, the opening state (the closing
    state of the day before `first`) and the sum of the days' movements and counters."""

    first: date
    last: date
    opening: Closing
    closing: Closing
    totals: dict[str, int]
    plans: list[Segment] = field(default_factory=list)
    tiers: list[Segment] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return instant(self.first)

    @property
    def end(self) -> datetime:
        return instant(self.last + timedelta(days=1))

    def movement(self, name: str) -> Movement:
        return Movement(self.totals[f"{name}_mrr"], self.totals[f"{name}_customers"])

    @property
    def net_new_mrr(self) -> int:
        t = self.totals
        return t["new_mrr"] + t["expansion_mrr"] + t["reactivation_mrr"] - t["contraction_mrr"] - t["churned_mrr"]

    @property
    def arr(self) -> int:
        return 12 * self.closing.mrr

    @property
    def arpu(self) -> int | None:
        return _rounded(Fraction(self.closing.mrr, self.closing.customers)) if self.closing.customers else None

    @property
    def customer_churn_rate(self) -> float | None:
        return _ratio(self.totals["churned_customers"], self.opening.customers)

    @property
    def gross_revenue_churn_rate(self) -> float | None:
        return _ratio(self.totals["churned_mrr"] + self.totals["contraction_mrr"], self.opening.mrr)

    @property
    def net_revenue_retention(self) -> float | None:
        t = self.totals
        kept = self.opening.mrr + t["expansion_mrr"] - t["contraction_mrr"] - t["churned_mrr"]
        return _ratio(kept, self.opening.mrr)

    @property
    def ltv(self) -> int | None:
        """ARPU ÷ customer churn rate = MRR x opening customers ÷ (customers x churned customers)."""
        churned, opening = self.totals["churned_customers"], self.opening.customers
        if not churned or not opening or not self.closing.customers:
            return None
        return _rounded(Fraction(self.closing.mrr, self.closing.customers) * Fraction(opening, churned))

    @property
    def charge_success_rate(self) -> float | None:
        t = self.totals
        return _ratio(t["charges_succeeded"], t["charges_succeeded"] + t["charges_failed"])

    @property
    def charge_failure_rate(self) -> float | None:
        t = self.totals
        return _ratio(t["charges_failed"], t["charges_succeeded"] + t["charges_failed"])

    @property
    def refund_rate(self) -> float | None:
        return _ratio(self.totals["refunded_amount"], self.totals["charges_succeeded_amount"])

    @property
    def trial_conversion_rate(self) -> float | None:
        return _ratio(self.totals["trials_converted"], self.totals["trials_ended"])


@dataclass(frozen=True, slots=True)
class CohortCell:
    months_since_signup: int
    customers: int
    mrr: int
    rate: float | None


@dataclass(frozen=True, slots=True)
class Cohort:
    month: str
    customers: int
    retention: list[CohortCell]


@dataclass(frozen=True, slots=True)
class RevenueReport:
    currency: str
    granularity: Granularity
    start: datetime
    end: datetime
    as_of: datetime
    summary: Period
    series: list[Period]
    cohorts: list[Cohort]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _rounded(value: Fraction) -> int:
    return round_half_up(value)


# --- the range -----------------------------------------------------------------------------------


def check_currency(currency: str) -> str:
    code = currency.strip().lower()
    if not re.fullmatch(r"[a-z]{3}", code):
        raise Invalid("`currency` must be an ISO 4217 code such as `usd`", field="currency")
    return code


def report_days(window: DateRange, now: datetime) -> tuple[date, date]:
    """The UTC days the range covers: from `from`'s day to the day of the last instant before `to`
    (today at most)."""
    if window.start is None:
        raise Invalid("`range` needs `from` or a `preset`", field="range.from")
    today = now.astimezone(UTC).date()
    first = window.start.astimezone(UTC).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(UTC).date() if window.end is not None else today
    last = min(last, today)
    if first > today:
        raise Invalid("`range.from` is in the future", field="range.from")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise Invalid(f"`range` covers more than {MAX_RANGE_DAYS} days", field="range")
    return first, last


def period_bounds(first: date, last: date, granularity: Granularity) -> list[tuple[date, date]]:
    """Consecutive periods covering first..last, cut at day, ISO week or calendar month bounds."""
    bounds: list[tuple[date, date]] = []
    start = first
    while start <= last:
        if granularity is Granularity.DAY:
            end = start
        elif granularity is Granularity.WEEK:
            end = start + timedelta(days=6 - start.weekday())
        else:
            next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
            end = next_month - timedelta(days=1)
        end = min(end, last)
        bounds.append((start, end))
        start = end + timedelta(days=1)
    return bounds


def month_ends(first: date, last: date) -> list[date]:
    """The last day of each month from first's month to last's (last itself for its own month)."""
    ends = []
    month = first.replace(day=1)
    while month <= last:
        next_month = (month + timedelta(days=32)).replace(day=1)
        ends.append(min(next_month - timedelta(days=1), last))
        month = next_month
    return ends


# --- gathering the days ----------------------------------------------------------------------------


async def gather_days(
    session: AsyncSession, currency: str, first: date, last: date, cell_days: set[date], now: datetime
) -> dict[date, DayFigures]:
    """Days first..last (first < today): stored where they are, computed where not (today always)."""
    today = now.astimezone(UTC).date()
    if last == today:
        cell_days = cell_days | {today - timedelta(days=1)}
    closed_last = min(last, today - timedelta(days=1))
    days = await load_days(session, currency, first, closed_last, cell_days) if first <= closed_last else {}
    missing = [d for d in _days(first, closed_last) if d not in days]
    if missing:
        start = missing[0]
        opening = await load_closing(session, currency, start - timedelta(days=1))
        for figures in await compute_days(session, currency, start, closed_last, opening):
            days[figures.day] = figures
    if last == today:
        # today starts from yesterday's closing state (in `days`, with its cells: see cell_days)
        (figures,) = await compute_days(session, currency, today, today, days[today - timedelta(days=1)].closing, now)
        days[today] = figures
    return days


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def plan_names(session: AsyncSession, plan_ids: set[str]) -> dict[str, str]:
    ids = [i for i in plan_ids if len(i) == 36]
    if not ids:
        return {}
    rows = await session.execute(select(Product.id, Product.name).where(Product.id.in_(ids)))
    return {str(row.id): row.name for row in rows}


def segments(closing: Closing, dimension: str, names: dict[str, str]) -> list[Segment]:
    found = [
        Segment(key, names.get(key, key), mrr, customers)
        for (dim, key), (mrr, customers) in closing.cells.items()
        if dim == dimension
    ]
    return sorted(found, key=lambda s: (-s.mrr, s.key))


def make_period(days: dict[date, DayFigures], opening: Closing, first: date, last: date) -> Period:
    totals = dict.fromkeys(ADDITIVE, 0)
    for day in _days(first, last):
        figures = days[day]
        for name in ADDITIVE:
            totals[name] += getattr(figures, name)
    return Period(first, last, opening, days[last].closing, totals)


def build_cohorts(days: dict[date, DayFigures], ends: list[date]) -> list[Cohort]:
    """Cohort sizes are the signups counted at the range's last day (a month's cell stops growing
    when the month ends)."""
    signups = days[ends[-1]].closing.cells
    cohorts = []
    for index, end in enumerate(ends):
        month = f"{end.year:04d}-{end.month:02d}"
        size = signups.get((SIGNUPS, month), [0, 0])[1]
        cells = []
        for k, later in enumerate(ends[index:]):
            mrr, customers = days[later].closing.cells.get((COHORT, month), [0, 0])
            cells.append(CohortCell(k, customers, mrr, _ratio(customers, size)))
        cohorts.append(Cohort(month, size, cells))
    return cohorts


async def revenue_report(
    session: AsyncSession,
    window: DateRange,
    granularity: Granularity,
    currency: str,
    now: datetime | None = None,
) -> RevenueReport:
    now = now or datetime.now(UTC)
    currency = check_currency(currency)
    first, last = report_days(window, now)
    bounds = period_bounds(first, last, granularity)
    ends = month_ends(first, last)
    opening_day = first - timedelta(days=1)
    cell_days = {end for _, end in bounds} | set(ends) | {last}
    days = await gather_days(session, currency, opening_day, last, cell_days, now)
    names = await plan_names(session, {key for d in cell_days for (dim, key) in days[d].closing.cells if dim == PLAN})
    series = []
    opening = days[opening_day].closing
    for start, end in bounds:
        period = make_period(days, opening, start, end)
        period.plans = segments(period.closing, PLAN, names)
        period.tiers = segments(period.closing, TIER, names)
        series.append(period)
        opening = period.closing
    summary = make_period(days, days[opening_day].closing, first, last)
    summary.plans = series[-1].plans
    summary.tiers = series[-1].tiers
    cohorts = build_cohorts(days, ends)
    as_of = min(figures.computed_at for figures in days.values())
    return RevenueReport(
        currency, granularity, instant(first), instant(last + timedelta(days=1)), as_of, summary, series, cohorts
    )
