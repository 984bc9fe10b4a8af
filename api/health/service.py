"""Computing and reading customer health.

`recompute_health` computes every customer's health at one instant in batches, stores it as the
snapshot of that UTC day (a rerun the same day replaces it), moves each customer's current
health forward, and raises a CHURN_RISK alert for each customer whose band became HIGH_RISK.
`prune_snapshots` keeps the snapshots of the last `HEALTH_SNAPSHOT_DAYS` (the nightly job runs it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.common.reads import DriverReads
from api.customer.models import Customer, CustomerStatus
from api.db import driver_connection, utcnow
from api.health.facts import gather_facts
from api.health.models import CustomerHealth, CustomerHealthSnapshot, HealthBand
from api.health.scoring import COMPONENTS, WEIGHTS, Health, describe, score_health

BATCH_SIZE = 1000
TREND_THRESHOLD = Decimal(5)  # points over 7 days that make a trend IMPROVING or DECLINING
Progress = Callable[[int, int], None]  # (customers done, customers in all)


# --- computing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecomputeSummary:
    computed_on: date
    customers: int
    bands: dict[HealthBand, int]
    alerts: int


def _snapshot_row(
    customer_id: uuid.UUID, day: date, at: datetime, health: Health, inputs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "computed_on": day,
        "computed_at": at,
        "score": health.score,
        "band": health.band,
        **{f"{name}_score": health.components[name] for name in COMPONENTS},
        "inputs": inputs,
    }


async def _store(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Upsert the day's snapshots, then the current health (never replaced by an older day). One
    statement each, executed for many rows (compiled once, whatever the batch size)."""
    snapshot = insert(CustomerHealthSnapshot)
    await session.execute(
        snapshot.on_conflict_do_update(
            index_elements=[CustomerHealthSnapshot.customer_id, CustomerHealthSnapshot.computed_on],
            set_={c: snapshot.excluded[c] for c in rows[0] if c not in ("customer_id", "computed_on")},
        ),
        rows,
    )
    current = insert(CustomerHealth)
    await session.execute(
        current.on_conflict_do_update(
            index_elements=[CustomerHealth.customer_id],
            set_={c: current.excluded[c] for c in ("computed_on", "score", "band")},
            where=CustomerHealth.computed_on <= current.excluded.computed_on,
        ),
        [{k: r[k] for k in ("customer_id", "computed_on", "score", "band")} for r in rows],
    )


async def _bands_before(session: AsyncSession, ids: Sequence[uuid.UUID], day: date) -> dict[uuid.UUID, HealthBand]:
    """Each customer's band on the newest day before `day` that has a snapshot."""
    rows = await session.execute(
        select(CustomerHealthSnapshot.customer_id, CustomerHealthSnapshot.band)
        .where(CustomerHealthSnapshot.customer_id.in_(ids), CustomerHealthSnapshot.computed_on < day)
        .ext(distinct_on(CustomerHealthSnapshot.customer_id))
        .order_by(CustomerHealthSnapshot.customer_id, CustomerHealthSnapshot.computed_on.desc())
    )
    return {row.customer_id: row.band for row in rows}


def churn_risk_alert(customer: Customer, day: date, health: Health, before: HealthBand | None) -> NewAlert:
    return NewAlert(
        kind=AlertKind.CHURN_RISK,
        severity=AlertSeverity.WARNING,
        message=f"{customer.name} is at high risk of churning: health score {health.score} on {day.isoformat()}",
        dedup_key=f"churn_risk:{customer.id}:{day.isoformat()}",
        customer_id=customer.id,
        details={
            "score": str(health.score),
            "previousBand": before.value if before else None,
            "components": {name: str(value) for name, value in health.components.items()},
        },
    )


def _alerted(customer: Customer, health: Health, before: HealthBand | None) -> bool:
    """High churn risk is news when the band has just become HIGH_RISK, for an account that can
    still churn (not canceled, not an internal one)."""
    return (
        health.band is HealthBand.HIGH_RISK
        and before is not HealthBand.HIGH_RISK
        and customer.status is not CustomerStatus.CANCELED
        and not customer.internal_team
    )


async def _recompute_batch(
    session: AsyncSession, customers: Sequence[Customer], as_of: datetime, bands: dict[HealthBand, int]
) -> int:
    day = as_of.astimezone(UTC).date()
    ids = [c.id for c in customers]
    facts = await gather_facts(await driver_connection(session), ids, as_of)
    scored = {c.id: score_health(facts[c.id]) for c in customers}
    await _store(session, [_snapshot_row(c.id, day, as_of, scored[c.id], facts[c.id].to_json()) for c in customers])
    before = await _bands_before(session, ids, day)
    alerts = 0
    for customer in customers:
        health = scored[customer.id]
        bands[health.band] += 1
        if _alerted(customer, health, before.get(customer.id)):
            raised = await raise_alert(session, churn_risk_alert(customer, day, health, before.get(customer.id)))
            alerts += raised is not None
    return alerts


async def recompute_health(
    session: AsyncSession,
    now: datetime | None = None,
    customer_ids: Sequence[uuid.UUID] | None = None,
    progress: Progress | None = None,
) -> RecomputeSummary:
    """Compute and store the health of every customer (or of `customer_ids`) at `now`."""
    as_of = now or utcnow()
    query = select(Customer).order_by(Customer.id)
    if customer_ids is not None:
        query = query.where(Customer.id.in_(customer_ids))
    total = int((await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one())
    bands = dict.fromkeys(HealthBand, 0)
    done = alerts = 0
    after: uuid.UUID | None = None
    while True:
        page = query.where(Customer.id > after) if after is not None else query
        customers = list((await session.execute(page.limit(BATCH_SIZE))).scalars())
        if not customers:
            break
        alerts += await _recompute_batch(session, customers, as_of, bands)
        done += len(customers)
        after = customers[-1].id
        if progress is not None:
            progress(done, max(total, done))
    await session.flush()
    return RecomputeSummary(as_of.astimezone(UTC).date(), done, bands, alerts)


async def prune_snapshots(session: AsyncSession, keep_days: int, today: date | None = None) -> int:
    """Deletes the daily snapshots older than `keep_days` (never a customer's current one); how many."""
    cutoff = (today or utcnow().date()) - timedelta(days=keep_days)
    current = select(CustomerHealth.customer_id).where(
        CustomerHealth.customer_id == CustomerHealthSnapshot.customer_id,
        CustomerHealth.computed_on == CustomerHealthSnapshot.computed_on,
    )
    deleted = await session.execute(
        delete(CustomerHealthSnapshot).where(CustomerHealthSnapshot.computed_on < cutoff, ~current.exists())
    )
    return int(deleted.rowcount)  # type: ignore[attr-defined]


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    weight: int
    score: Decimal
    detail: str


@dataclass(frozen=True, slots=True)
class CurrentHealth:
    computed_on: date
    as_of: datetime
    score: Decimal
    band: HealthBand
    components: list[Component]
    delta_7d: Decimal | None  # score minus the oldest score of the 7 days before, when there is one
    delta_30d: Decimal | None

    @property
    def direction(self) -> str:
        if self.delta_7d is None or abs(self.delta_7d) < TREND_THRESHOLD:
            return "STABLE"
        return "IMPROVING" if self.delta_7d > 0 else "DECLINING"


def _earliest_score_within(days: int) -> Any:
    """The score of the oldest snapshot among the `days` days before the current one."""
    earlier = CustomerHealthSnapshot.__table__.alias(f"earlier_{days}")
    return (
        select(earlier.c.score)
        .where(
            earlier.c.customer_id == CustomerHealth.customer_id,
            earlier.c.computed_on < CustomerHealth.computed_on,
            earlier.c.computed_on >= CustomerHealth.computed_on - timedelta(days=days),
        )
        .order_by(earlier.c.computed_on)
        .limit(1)
        .scalar_subquery()
        .label(f"score_{days}d")
    )


def _current_query(ids: Sequence[uuid.UUID]) -> Select[Any]:
    return (
        select(CustomerHealthSnapshot.__table__, _earliest_score_within(7), _earliest_score_within(30))
        .join(
            CustomerHealth,
            tuple_(CustomerHealth.customer_id, CustomerHealth.computed_on)
            == tuple_(CustomerHealthSnapshot.customer_id, CustomerHealthSnapshot.computed_on),
        )
        .where(CustomerHealth.customer_id.in_(ids))
    )


async def health_by_customer_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CurrentHealth]:
    """Each customer's current health with its 7- and 30-day changes, in one statement."""
    found: dict[uuid.UUID, CurrentHealth] = {}
    for snapshot in await reads.rows(_current_query(list(set(ids)))):
        score_7d, score_30d = snapshot.score_7d, snapshot.score_30d
        found[snapshot.customer_id] = CurrentHealth(
            computed_on=snapshot.computed_on,
            as_of=snapshot.computed_at,
            score=snapshot.score,
            band=snapshot.band,
            components=[
                Component(name, WEIGHTS[name], getattr(snapshot, f"{name}_score"), describe(name, snapshot.inputs))
                for name in COMPONENTS
            ],
            delta_7d=snapshot.score - score_7d if score_7d is not None else None,
            delta_30d=snapshot.score - score_30d if score_30d is not None else None,
        )
    return found


def in_bands(bands: Sequence[HealthBand]) -> ColumnElement[bool]:
    """Customers whose current health is in one of `bands` (an index scan on customer_health)."""
    return Customer.id.in_(select(CustomerHealth.customer_id).where(CustomerHealth.band.in_(bands)))
