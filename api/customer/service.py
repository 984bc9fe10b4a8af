"""Customers: read side (lists, filters, lookups). Writes arrive with the Stripe issue."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.common.batch import load_by_ids
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, read_page
from api.common.reads import DriverReads
from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.errors import NotFound
from api.health.models import HealthBand
from api.health.service import in_bands


class CustomerOrder(enum.StrEnum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


SORT_KEYS = {
    CustomerOrder.CREATED_AT_DESC: SortKey("customer:CREATED_AT_DESC", Customer.created_at, Customer.id, True),
    CustomerOrder.CREATED_AT_ASC: SortKey("customer:CREATED_AT_ASC", Customer.created_at, Customer.id, False),
    CustomerOrder.NAME_ASC: SortKey("customer:NAME_ASC", Customer.name, Customer.id, False),
    CustomerOrder.NAME_DESC: SortKey("customer:NAME_DESC", Customer.name, Customer.id, True),
}


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    search: str | None = None
    tiers: Sequence[CustomerTier] = ()
    statuses: Sequence[CustomerStatus] = ()
    industry: str | None = None
    internal_team: bool | None = None
    created: DateRange = field(default_factory=DateRange)
    health_bands: Sequence[HealthBand] = ()  # current health band (customers never scored: none)


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def customer_conditions(flt: CustomerFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [flt.created.clause(Customer.created_at)]
    if flt.search and flt.search.strip():
        pattern = _like_pattern(flt.search.strip())
        conditions.append(
            or_(
                func.lower(Customer.name).like(pattern, escape="\\"),
                func.lower(Customer.email).like(pattern, escape="\\"),
                Customer.external_id == flt.search.strip(),
                Customer.stripe_customer_id == flt.search.strip(),
            )
        )
    if flt.tiers:
        conditions.append(Customer.tier.in_(flt.tiers))
    if flt.statuses:
        conditions.append(Customer.status.in_(flt.statuses))
    if flt.industry:
        conditions.append(func.lower(Customer.industry) == flt.industry.lower())
    if flt.internal_team is not None:
        conditions.append(Customer.internal_team.is_(flt.internal_team))
    if flt.health_bands:
        conditions.append(in_bands(flt.health_bands))
    return conditions


async def list_customers(
    reads: DriverReads, flt: CustomerFilter, order: CustomerOrder, page: PageArgs
) -> Page[Customer]:
    return await read_page(reads, select(Customer).where(*customer_conditions(flt)), SORT_KEYS[order], page)


async def count_customers(session: AsyncSession, flt: CustomerFilter) -> int:
    return await count_where(session, Customer, customer_conditions(flt))


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist", field="id")
    return customer


async def customers_by_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    return await load_by_ids(reads, Customer, ids)
