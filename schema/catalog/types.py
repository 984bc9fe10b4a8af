from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from api.catalog.models import Price as PriceModel
from api.catalog.models import PriceInterval, UsageType
from api.catalog.models import Product as ProductModel
from schema.context import Info
from schema.scalars import Money, Node, to_global_id

PriceIntervalEnum = strawberry.enum(PriceInterval, name="PriceInterval")
UsageTypeEnum = strawberry.enum(UsageType, name="UsageType")


@strawberry.type(description="A product of the catalog.")
class Product(Node):
    name: str
    description: str | None
    active: bool
    stripe_product_id: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: ProductModel) -> Product:
        return cls(
            id=to_global_id("Product", m.id),
            name=m.name,
            description=m.description,
            active=m.active,
            stripe_product_id=m.stripe_product_id,
            created_at=m.created_at,
        )


@strawberry.type(description="A price of a product: per interval, licensed (per seat) or metered.")
class Price(Node):
    nickname: str | None
    unit_amount: Money
    interval: PriceIntervalEnum  # type: ignore[valid-type]
    usage_type: UsageTypeEnum  # type: ignore[valid-type]
    active: bool
    stripe_price_id: str | None
    meter_id: strawberry.ID | None = strawberry.field(description="A metered price's meter.")
    product_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        model = await info.context.loaders.product.load(self.product_id)
        return Product.from_model(model) if model else None

    @classmethod
    def from_model(cls, m: PriceModel) -> Price:
        return cls(
            id=to_global_id("Price", m.id),
            nickname=m.nickname,
            unit_amount=Money.of(m.unit_amount, m.currency),
            interval=m.interval,
            usage_type=m.usage_type,
            active=m.active,
            stripe_price_id=m.stripe_price_id,
            meter_id=to_global_id("Meter", m.meter_id) if m.meter_id else None,
            product_id=m.product_id,
        )
