"""Catalog ↔ Stripe: a local price that Stripe does not know yet is created there on first use."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price, PriceInterval, Product, UsageType
from api.errors import Invalid
from api.stripe.gateway import StripeGateway
from api.stripe.params import PriceCreateParams
from api.usage.models import Meter


async def ensure_stripe_price(session: AsyncSession, gateway: StripeGateway, price: Price, field: str = "price") -> str:
    """The price's Stripe id; creates the Stripe product and price first if needed. The keys derive
    from the local ids, so concurrent or repeated first uses create one Stripe price."""
    if price.stripe_price_id is not None:
        return price.stripe_price_id
    meter = await _meter_of(session, price, field)
    product = await session.get(Product, price.product_id, with_for_update=True)
    assert product is not None
    if product.stripe_product_id is None:
        remote_product = await gateway.create_product(
            {"name": product.name, "metadata": {"ledgerline_product_id": str(product.id)}},
            idempotency_key=f"ledgerline-product-{product.id}",
        )
        product.stripe_product_id = remote_product.id
    params: PriceCreateParams = {
        "product": product.stripe_product_id,
        "unit_amount": price.unit_amount,
        "currency": price.currency,
        "recurring": {
            "interval": "year" if price.interval is PriceInterval.YEAR else "month",
            "usage_type": "metered" if meter is not None else "licensed",
        },
        "metadata": {"ledgerline_price_id": str(price.id)},
    }
    if meter is not None:
        params["recurring"]["meter"] = meter
    if price.nickname:
        params["nickname"] = price.nickname
    remote_price = await gateway.create_price(params, idempotency_key=f"ledgerline-price-{price.id}")
    price.stripe_price_id = remote_price.id
    await session.flush()
    return remote_price.id


async def _meter_of(session: AsyncSession, price: Price, field: str) -> str | None:
    """A metered price bills from its meter's Stripe billing meter; None for a licensed price."""
    if price.usage_type is not UsageType.METERED:
        return None
    meter = await session.get(Meter, price.meter_id) if price.meter_id else None
    if meter is None or meter.stripe_meter_id is None:
        raise Invalid("this metered price has no meter in Stripe: create it with createMeteredPrice", field=field)
    return meter.stripe_meter_id
