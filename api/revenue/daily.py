"""One day of revenue in one currency, computed from the MRR history and the payment tables.

A day is a UTC calendar day. "The state at instant t" takes every history row effective before t,
and a discount whose end is before t as ended. The state at the end of day D is the state at D+1
00:00 (or now, for today). Movements are classified per customer by comparing the customer's
MRR (summed over their subscriptions in the currency) at the start and at the end of the day.

Totals are sums of per-customer contributions, so a day's closing state is the previous day's
closing state minus what the customers touched that day contributed before, plus what they
contribute after: only those customers are read. The first day of a computation starts from a
stored snapshot or from the whole history.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.customer.models import Customer
from api.db import utcnow
from api.revenue.models import RevenueDay, RevenueDaySegment
from api.subscription.models import SubscriptionStatus

PLAN, TIER, COHORT = "PLAN", "TIER", "COHORT"
# customers who signed up in a month (cohort sizes): the cell's `customers`, its MRR always 0
SIGNUPS = "SIGNUPS"
TRIALING = SubscriptionStatus.TRIALING.value
CONVERTED_STATUSES = frozenset({SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value})
NO_PLAN = "none"

Cell = tuple[str, str]  # (dimension, key)


def instant(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def cohort_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


# --- customers and their state ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    tier: str
    cohort: str | None  # signup month, when the customer bills in the currency being computed


@dataclass(slots=True)
class CustomerState:
    """A customer's MRR at one instant: in total, per plan, and whether a subscription is trialing."""

    mrr: int = 0
    trialing: bool = False
    plans: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Closing:
    """The state at the end of a day: totals and cells (mrr, paying customers)."""

    mrr: int = 0
    customers: int = 0
    trialing_customers: int = 0
    cells: dict[Cell, list[int]] = field(default_factory=dict)

    def copy(self) -> Closing:
        return Closing(self.mrr, self.customers, self.trialing_customers, {k: list(v) for k, v in self.cells.items()})

    def add(self, state: CustomerState, info: CustomerInfo, sign: int) -> None:
        """Add (sign 1) or take out (sign -1) one customer's contribution."""
        self.mrr += sign * state.mrr
        self.trialing_customers += sign * int(state.trialing)
        if state.mrr <= 0:
            return
        self.customers += sign
        cells: list[tuple[Cell, int]] = [((TIER, info.tier), state.mrr)]
        if info.cohort is not None:
            cells.append(((COHORT, info.cohort), state.mrr))
        cells.extend(((PLAN, plan), amount) for plan, amount in state.plans.items() if amount > 0)
        for cell, amount in cells:
            totals = self.cells.setdefault(cell, [0, 0])
            totals[0] += sign * amount
            totals[1] += sign
            if totals == [0, 0]:
                del self.cells[cell]


@dataclass(slots=True)
class DayFigures:
    """What `revenue_day` and `revenue_day_segment` store for one day and currency."""

    day: date
    currency: str
    closing: Closing
    new_mrr: int = 0
    new_customers: int = 0
    expansion_mrr: int = 0
    expansion_customers: int = 0
    contraction_mrr: int = 0
    contraction_customers: int = 0
    churned_mrr: int = 0
    churned_customers: int = 0
    reactivation_mrr: int = 0
    reactivation_customers: int = 0
    trials_started: int = 0
    trials_ended: int = 0
    trials_converted: int = 0
    charges_succeeded: int = 0
    charges_succeeded_amount: int = 0
    charges_failed: int = 0
    charges_failed_amount: int = 0
    refunds: int = 0
    refunded_amount: int = 0
    recovered_invoices: int = 0
    recovered_amount: int = 0
    computed_at: datetime = field(default_factory=utcnow)


# counters that add up over days (everything but the closing state, the day and the currency)
ADDITIVE = tuple(f.name for f in fields(DayFigures) if f.name not in ("day", "currency", "closing", "computed_at"))
PAYMENT_FIELDS = (
    "charges_succeeded",
    "charges_succeeded_amount",
    "charges_failed",
    "charges_failed_amount",
    "refunds",
    "refunded_amount",
    "recovered_invoices",
    "recovered_amount",
)

_STATE_SQL = """
SELECT DISTINCT ON (h.subscription_id)
       h.subscription_id, h.customer_id, h.status, h.product_id,
       CASE WHEN h.discount_ends_at < :at THEN h.undiscounted_mrr ELSE h.mrr END AS mrr
FROM subscription_mrr_change h
WHERE h.currency = :currency AND h.effective_at < :at {customers}
ORDER BY h.subscription_id, h.effective_at DESC, h.id DESC
"""


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    customer_id: uuid.UUID
    status: str
    plan: str
    mrr: int


async def subscription_states(
    session: AsyncSession, currency: str, at: datetime, customers: list[uuid.UUID] | None
) -> dict[uuid.UUID, SubscriptionState]:
    """Each subscription's state at instant `at` (of the given customers, or of all)."""
    sql = _STATE_SQL.format(customers="AND h.customer_id = ANY(:customers)" if customers is not None else "")
    statement = text(sql)
    params: dict[str, Any] = {"currency": currency, "at": at}
    if customers is not None:
        statement = statement.bindparams(bindparam("customers", type_=ARRAY(UUID(as_uuid=True))))
        params["customers"] = customers
    rows = (await session.execute(statement, params)).all()
    return {
        row.subscription_id: SubscriptionState(
            row.customer_id, row.status, str(row.product_id) if row.product_id else NO_PLAN, row.mrr
        )
        for row in rows
    }


def customer_states(subscriptions: Iterable[SubscriptionState]) -> dict[uuid.UUID, CustomerState]:
    states: dict[uuid.UUID, CustomerState] = defaultdict(CustomerState)
    for sub in subscriptions:
        state = states[sub.customer_id]
        state.mrr += sub.mrr
        state.trialing = state.trialing or sub.status == TRIALING
        if sub.mrr:
            state.plans[sub.plan] = state.plans.get(sub.plan, 0) + sub.mrr
    return states


async def customer_infos(
    session: AsyncSession, currency: str, customers: list[uuid.UUID] | None
) -> dict[uuid.UUID, CustomerInfo]:
    """Tier and signup cohort of revenue-bearing customers: internal (staff) accounts are left out."""
    query = select(Customer.id, Customer.tier, Customer.created_at, Customer.currency).where(
        Customer.internal_team.is_(False)
    )
    if customers is not None:
        query = query.where(Customer.id.in_(customers))
    return {
        row.id: CustomerInfo(row.tier.value, cohort_key(row.created_at) if row.currency == currency else None)
        for row in (await session.execute(query)).all()
    }


async def full_closing(session: AsyncSession, currency: str, at: datetime) -> Closing:
    """The state at instant `at` from the whole history."""
    infos = await customer_infos(session, currency, None)
    states = customer_states((await subscription_states(session, currency, at, None)).values())
    closing = Closing()
    for customer_id, state in states.items():
        info = infos.get(customer_id)
        if info is not None:
            closing.add(state, info, 1)
    signups = await session.execute(
        text(
            """
            SELECT to_char(date_trunc('month', created_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS month, count(*) AS n
            FROM customer WHERE NOT internal_team AND currency = :currency AND created_at < :at GROUP BY 1
            """
        ),
        {"currency": currency, "at": at},
    )
    for row in signups:
        closing.cells[(SIGNUPS, row.month)] = [0, int(row.n)]
    return closing


async def signups_by_day(session: AsyncSession, currency: str, start: datetime, end: datetime) -> dict[date, int]:
    """Revenue-bearing customers billing in `currency` created each day in [start, end)."""
    rows = await session.execute(
        text(
            """
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM customer
            WHERE NOT internal_team AND currency = :currency AND created_at >= :start AND created_at < :end
            GROUP BY 1
            """
        ),
        {"currency": currency, "start": start, "end": end},
    )
    return {row.day: int(row.n) for row in rows}


# --- one day ------------------------------------------------------------------------------------


async def touched_customers(session: AsyncSession, currency: str, start: datetime, end: datetime) -> list[uuid.UUID]:
    """Customers whose MRR history has a row, or a discount ending, in [start, end)."""
    rows = await session.execute(
        text(
            """
            SELECT customer_id FROM subscription_mrr_change
            WHERE currency = :currency AND effective_at >= :start AND effective_at < :end
            UNION
            SELECT customer_id FROM subscription_mrr_change
            WHERE currency = :currency AND discount_ends_at >= :start AND discount_ends_at < :end
            """
        ),
        {"currency": currency, "start": start, "end": end},
    )
    return [row.customer_id for row in rows]


async def paid_before(
    session: AsyncSession, currency: str, customers: list[uuid.UUID], before: datetime
) -> set[uuid.UUID]:
    """Customers who had MRR > 0 at some instant before `before` (a row counting MRR while it was
    in force, or a discount ending while its row was in force and the undiscounted MRR > 0)."""
    if not customers:
        return set()
    statement = text(
        """
        SELECT DISTINCT customer_id FROM (
            SELECT h.customer_id, h.effective_at, h.mrr, h.undiscounted_mrr, h.discount_ends_at,
                   LEAD(h.effective_at) OVER (PARTITION BY h.subscription_id ORDER BY h.effective_at, h.id) AS next_at
            FROM subscription_mrr_change h
            WHERE h.currency = :currency AND h.customer_id = ANY(:customers) AND h.effective_at < :before
        ) r
        WHERE (r.mrr > 0 AND (r.next_at IS NULL OR r.next_at > r.effective_at))
           OR (r.undiscounted_mrr > 0 AND r.discount_ends_at < COALESCE(r.next_at, :before)
               AND r.discount_ends_at >= r.effective_at)
        """
    ).bindparams(bindparam("customers", type_=ARRAY(UUID(as_uuid=True))))
    rows = await session.execute(statement, {"currency": currency, "customers": customers, "before": before})
    return {row.customer_id for row in rows}


def classify(figures: DayFigures, before: int, after: int, paid_earlier: bool) -> None:
    """One customer's movement over the day."""
    if before == after:
        return
    if before == 0:
        if paid_earlier:
            figures.reactivation_mrr += after
            figures.reactivation_customers += 1
        else:
            figures.new_mrr += after
            figures.new_customers += 1
    elif after == 0:
        figures.churned_mrr += before
        figures.churned_customers += 1
    elif after > before:
        figures.expansion_mrr += after - before
        figures.expansion_customers += 1
    else:
        figures.contraction_mrr += before - after
        figures.contraction_customers += 1


def count_trials(
    figures: DayFigures, before: dict[uuid.UUID, SubscriptionState], after: dict[uuid.UUID, SubscriptionState]
) -> None:
    for sub_id, now in after.items():
        was = before.get(sub_id)
        was_trialing = was is not None and was.status == TRIALING
        if now.status == TRIALING and not was_trialing:
            figures.trials_started += 1
        elif was_trialing and now.status != TRIALING:
            figures.trials_ended += 1
            figures.trials_converted += int(now.status in CONVERTED_STATUSES)


async def compute_day(
    session: AsyncSession, currency: str, day: date, opening: Closing, until: datetime | None = None
) -> DayFigures:
    """Day `day` from the state at its start (`opening`); `until` stops it early (today: now)."""
    start = instant(day)
    end = min(instant(day + timedelta(days=1)), until) if until is not None else instant(day + timedelta(days=1))
    figures = DayFigures(day=day, currency=currency, closing=opening.copy())
    touched = await touched_customers(session, currency, start, end)
    if not touched:
        return figures
    infos = await customer_infos(session, currency, touched)
    touched = [c for c in touched if c in infos]
    subs_before = await subscription_states(session, currency, start, touched)
    subs_after = await subscription_states(session, currency, end, touched)
    before, after = customer_states(subs_before.values()), customer_states(subs_after.values())
    earlier = await paid_before(session, currency, [c for c in touched if before[c].mrr == 0], start)
    for customer_id in touched:
        info = infos[customer_id]
        figures.closing.add(before[customer_id], info, -1)
        figures.closing.add(after[customer_id], info, 1)
        classify(figures, before[customer_id].mrr, after[customer_id].mrr, customer_id in earlier)
    count_trials(figures, subs_before, subs_after)
    return figures


# --- payment health -----------------------------------------------------------------------------

_PAYMENT_HEALTH_SQL = """
SELECT (p.created_at AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE p.status = 'SUCCEEDED') AS charges_succeeded,
       coalesce(sum(p.amount) FILTER (WHERE p.status = 'SUCCEEDED'), 0) AS charges_succeeded_amount,
       count(*) FILTER (WHERE p.status = 'FAILED') AS charges_failed,
       coalesce(sum(p.amount) FILTER (WHERE p.status = 'FAILED'), 0) AS charges_failed_amount
FROM payment p JOIN customer c ON c.id = p.customer_id
WHERE p.currency = :currency AND p.created_at >= :start AND p.created_at < :end AND NOT c.internal_team
GROUP BY 1
"""
_REFUNDS_SQL = """
SELECT (r.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS refunds,
       coalesce(sum(r.amount), 0) AS refunded_amount
FROM refund r JOIN invoice i ON i.id = r.invoice_id JOIN customer c ON c.id = i.customer_id
WHERE r.currency = :currency AND r.status = 'SUCCEEDED' AND r.created_at >= :start AND r.created_at < :end
  AND NOT c.internal_team
GROUP BY 1
"""
_RECOVERED_SQL = """
SELECT (i.paid_at AT TIME ZONE 'UTC')::date AS day, count(*) AS recovered_invoices,
       coalesce(sum(i.amount_paid), 0) AS recovered_amount
FROM invoice i JOIN customer c ON c.id = i.customer_id
WHERE i.currency = :currency AND i.status = 'PAID' AND i.paid_at >= :start AND i.paid_at < :end
  AND NOT c.internal_team
  AND (i.attempt_count > 1 OR EXISTS (
        SELECT 1 FROM payment f WHERE f.invoice_id = i.id AND f.status = 'FAILED' AND f.created_at < i.paid_at))
GROUP BY 1
"""


async def payment_health(
    session: AsyncSession, currency: str, start: datetime, end: datetime
) -> dict[date, dict[str, int]]:
    """Charges, refunds and dunning recoveries per day in [start, end)."""
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    params = {"currency": currency, "start": start, "end": end}
    for sql in (_PAYMENT_HEALTH_SQL, _REFUNDS_SQL, _RECOVERED_SQL):
        for row in (await session.execute(text(sql), params)).mappings():
            by_day[row["day"]].update({k: int(v) for k, v in row.items() if k != "day"})
    return by_day


# --- ranges of days -----------------------------------------------------------------------------


async def compute_days(
    session: AsyncSession,
    currency: str,
    first: date,
    last: date,
    opening: Closing | None = None,
    until: datetime | None = None,
) -> list[DayFigures]:
    """Days first..last, each from the previous one's closing state; the first from `opening`
    (the state at the start of `first`) or, when None, from the whole history."""
    closing = opening if opening is not None else await full_closing(session, currency, instant(first))
    end = instant(last + timedelta(days=1))
    stop = min(end, until) if until else end
    health = await payment_health(session, currency, instant(first), stop)
    signups = await signups_by_day(session, currency, instant(first), stop)
    computed: list[DayFigures] = []
    for day in days_between(first, last):
        figures = await compute_day(session, currency, day, closing, until)
        for name, value in health.get(day, {}).items():
            setattr(figures, name, value)
        if day in signups:
            figures.closing.cells.setdefault((SIGNUPS, cohort_key(instant(day))), [0, 0])[1] += signups[day]
        computed.append(figures)
        closing = figures.closing
    return computed


async def known_currencies(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        text("SELECT currency FROM price UNION SELECT DISTINCT currency FROM subscription_mrr_change ORDER BY 1")
    )
    return [row.currency for row in rows]


# --- snapshots ------------------------------------------------------------------------------------


async def save_days(session: AsyncSession, computed: list[DayFigures]) -> None:
    """Store (or replace) the days' rows and cells."""
    if not computed:
        return
    keys = [(f.day, f.currency) for f in computed]
    for table in (RevenueDaySegment, RevenueDay):
        for day, currency in keys:
            await session.execute(delete(table).where(table.day == day, table.currency == currency))
    day_rows = [
        {
            "day": f.day,
            "currency": f.currency,
            "mrr": f.closing.mrr,
            "customers": f.closing.customers,
            "trialing_customers": f.closing.trialing_customers,
            "computed_at": f.computed_at,
            **{name: getattr(f, name) for name in ADDITIVE},
        }
        for f in computed
    ]
    await session.execute(insert(RevenueDay), day_rows)
    cell_rows = [
        {"day": f.day, "currency": f.currency, "dimension": dim, "key": key, "mrr": mrr, "customers": customers}
        for f in computed
        for (dim, key), (mrr, customers) in f.closing.cells.items()
    ]
    if cell_rows:
        await session.execute(insert(RevenueDaySegment), cell_rows)
    await session.flush()


async def recompute(session: AsyncSession, first: date, last: date, currencies: list[str] | None = None) -> int:
    """Compute days first..last from the whole history and store them; returns the days written
    (per currency). Any closed day may be recomputed at any time (for instance after a backfill)."""
    if first > last:
        return 0
    written = 0
    for currency in currencies or await known_currencies(session):
        computed = await compute_days(session, currency, first, last)
        await save_days(session, computed)
        written += len(computed)
    return written


async def load_days(
    session: AsyncSession, currency: str, first: date, last: date, cell_days: set[date]
) -> dict[date, DayFigures]:
    """Stored days first..last (cells only for `cell_days`: the days whose breakdown is shown)."""
    rows = (
        (
            await session.execute(
                select(RevenueDay).where(
                    RevenueDay.currency == currency, RevenueDay.day >= first, RevenueDay.day <= last
                )
            )
        )
        .scalars()
        .all()
    )
    stored: dict[date, DayFigures] = {}
    for row in rows:
        closing = Closing(row.mrr, row.customers, row.trialing_customers)
        figures = DayFigures(day=row.day, currency=currency, closing=closing, computed_at=row.computed_at)
        for name in ADDITIVE:
            setattr(figures, name, getattr(row, name))
        stored[row.day] = figures
    wanted = sorted(d for d in cell_days if d in stored)
    if wanted:
        cells = await session.execute(
            select(RevenueDaySegment).where(RevenueDaySegment.currency == currency, RevenueDaySegment.day.in_(wanted))
        )
        for cell in cells.scalars():
            stored[cell.day].closing.cells[(cell.dimension, cell.key)] = [cell.mrr, cell.customers]
    return stored


async def load_closing(session: AsyncSession, currency: str, day: date) -> Closing | None:
    """The stored state at the end of `day`, with its cells (None when the day is not stored)."""
    found = await load_days(session, currency, day, day, {day})
    return found[day].closing if day in found else None


def without_cells(figures: DayFigures) -> DayFigures:
    return replace(
        figures, closing=Closing(figures.closing.mrr, figures.closing.customers, figures.closing.trialing_customers)
    )
