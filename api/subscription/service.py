"""Subscriptions: read side. Changes (seats, cancel, pause ...) arrive with the Stripe issue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.common.batch import GroupedSelect, load_by_ids, load_grouped
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.common.reads import DriverReads
from api.errors import NotFound
from api.subscription.models import Subscription, SubscriptionItem, SubscriptionStatus

SUBSCRIPTIONS_OF_CUSTOMERS = GroupedSelect(
    Subscription, Subscription.customer_id, Subscription.created_at.desc(), Subscription.id
)
ITEMS_OF_SUBSCRIPTIONS = GroupedSelect(
    SubscriptionItem, SubscriptionItem.subscription_id, SubscriptionItem.created_at, SubscriptionItem.id
)
SORT_KEY = SortKey("subscription:CREATED_AT_DESC", Subscription.created_at, Subscription.id, True)


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    statuses: Sequence[SubscriptionStatus] = ()
    customer_id: uuid.UUID | None = None
    created: DateRange = field(default_factory=DateRange)


def subscription_conditions(flt: SubscriptionFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.created.clause(Subscription.created_at)]
    if flt.statuses:
        conditions.append(Subscription.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(Subscription.customer_id == flt.customer_id)
    return conditions


async def list_subscriptions(session: AsyncSession, flt: SubscriptionFilter, page: PageArgs) -> Page[Subscription]:
    return await fetch_page(session, select(Subscription).where(*subscription_conditions(flt)), SORT_KEY, page)


async def count_subscriptions(session: AsyncSession, flt: SubscriptionFilter) -> int:
    return await count_where(session, Subscription, subscription_conditions(flt))


async def get_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription:
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None:
        raise NotFound(f"subscription {subscription_id} does not exist", field="id")
    return subscription


async def subscriptions_by_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Subscription]:
    return await load_by_ids(reads, Subscription, ids)


async def subscriptions_by_customer_ids(
    reads: DriverReads, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Subscription]]:
    return await load_grouped(reads, SUBSCRIPTIONS_OF_CUSTOMERS, customer_ids)


async def items_by_subscription_ids(
    reads: DriverReads, subscription_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SubscriptionItem]]:
    return await load_grouped(reads, ITEMS_OF_SUBSCRIPTIONS, subscription_ids)
