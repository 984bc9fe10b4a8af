from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.auth.permissions import Capability
from api.subscription.models import PauseBehavior, SubscriptionStatus
from api.subscription.models import Subscription as SubscriptionModel
from api.subscription.models import SubscriptionItem as SubscriptionItemModel
from schema.catalog.types import Price
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import Node, to_global_id

if TYPE_CHECKING:
    from schema.customer.types import Customer

SubscriptionStatusEnum = strawberry.enum(SubscriptionStatus, name="SubscriptionStatus")
PauseBehaviorEnum = strawberry.enum(PauseBehavior, name="PauseBehavior")


@strawberry.type(description="One line of a subscription: a price and a quantity (seats).")
class SubscriptionItem(Node):
    quantity: int
    stripe_subscription_item_id: str | None
    price_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def price(self, info: Info) -> Price | None:
        model = await info.context.loaders.price.load(self.price_id)
        return Price.from_model(model) if model else None

    @classmethod
    def from_model(cls, m: SubscriptionItemModel) -> SubscriptionItem:
        return cls(
            id=to_global_id("SubscriptionItem", m.id),
            quantity=m.quantity,
            stripe_subscription_item_id=m.stripe_subscription_item_id,
            price_id=m.price_id,
        )


@strawberry.type(description="A customer's subscription (mirrored from Stripe).")
class Subscription(Node):
    status: SubscriptionStatusEnum  # type: ignore[valid-type]
    currency: str
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    paused: bool
    pause_behavior: PauseBehaviorEnum | None  # type: ignore[valid-type]
    pause_resumes_at: datetime | None
    canceled_at: datetime | None
    stripe_subscription_id: str | None
    created_at: datetime
    updated_at: datetime
    local_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def items(self, info: Info) -> list[SubscriptionItem]:
        models = await info.context.loaders.items_of_subscription.load(self.local_id)
        return [SubscriptionItem.from_model(m) for m in models]

    @guarded(Capability.CUSTOMER_READ)
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("schema.customer.types")] | None:
        from schema.customer.types import Customer

        model = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(model) if model else None

    @classmethod
    def from_model(cls, m: SubscriptionModel) -> Subscription:
        return cls(
            id=to_global_id("Subscription", m.id),
            status=m.status,
            currency=m.currency,
            current_period_start=m.current_period_start,
            current_period_end=m.current_period_end,
            trial_end=m.trial_end,
            cancel_at_period_end=m.cancel_at_period_end,
            paused=m.pause_behavior is not None,
            pause_behavior=m.pause_behavior,
            pause_resumes_at=m.pause_resumes_at,
            canceled_at=m.canceled_at,
            stripe_subscription_id=m.stripe_subscription_id,
            created_at=m.created_at,
            updated_at=m.updated_at,
            local_id=m.id,
            customer_id=m.customer_id,
        )
