from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.subscription.service import SubscriptionFilter, count_subscriptions, get_subscription, list_subscriptions
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, DateRangeInput, FirstArg, date_range, parse_id
from schema.subscription.types import Subscription, SubscriptionStatusEnum


@strawberry.input
class SubscriptionFilterInput:
    status: list[SubscriptionStatusEnum] | None = None  # type: ignore[valid-type]
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    created_at: DateRangeInput | None = None

    def to_filter(self) -> SubscriptionFilter:
        return SubscriptionFilter(
            statuses=tuple(self.status or ()),
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            created=date_range(self.created_at, "filter.createdAt"),
        )


@strawberry.type
class SubscriptionQueries:
    @guarded(Capability.SUBSCRIPTION_READ, description="Subscriptions, newest first.")
    async def subscriptions(
        self,
        info: Info,
        filter: SubscriptionFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Subscription] | None:
        flt = filter.to_filter() if filter else SubscriptionFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_subscriptions(s, flt, p),
            lambda s: count_subscriptions(s, flt),
            Subscription.from_model,
        )

    @guarded(Capability.SUBSCRIPTION_READ)
    async def subscription(self, info: Info, id: strawberry.ID) -> Subscription | None:
        subscription_id = parse_id(id, "Subscription")
        async with info.context.read_session() as session:
            return Subscription.from_model(await get_subscription(session, subscription_id))
