"""Usage: read side for now (plain totals per customer and meter)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.common.daterange import DateRange
from api.usage.models import Meter, UsageEvent


@dataclass(frozen=True, slots=True)
class UsageTotal:
    meter: Meter
    total: Decimal
    event_count: int


async def list_meters(session: AsyncSession) -> list[Meter]:
    return list((await session.execute(select(Meter).order_by(Meter.key))).scalars())


async def usage_totals_for_customers(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], meter_key: str | None, period: DateRange
) -> dict[uuid.UUID, list[UsageTotal]]:
    """Sum and count of each customer's usage events per meter in the range, in one statement."""
    stmt = (
        select(UsageEvent.customer_id, Meter, func.sum(UsageEvent.value), func.count())
        .join(Meter, Meter.id == UsageEvent.meter_id)
        .where(UsageEvent.customer_id.in_(set(customer_ids)), period.clause(UsageEvent.occurred_at))
        .group_by(UsageEvent.customer_id, Meter.id)
        .order_by(UsageEvent.customer_id, Meter.key)
    )
    if meter_key is not None:
        stmt = stmt.where(Meter.key == meter_key)
    totals: dict[uuid.UUID, list[UsageTotal]] = defaultdict(list)
    for customer_id, meter, total, count in (await session.execute(stmt)).all():
        totals[customer_id].append(UsageTotal(meter=meter, total=Decimal(total), event_count=int(count)))
    return totals
