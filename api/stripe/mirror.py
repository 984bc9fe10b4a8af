"""Write Stripe objects into the local mirror (Stripe is the source of truth for billing objects).

Used by mutations (from Stripe's answer), and meant for webhooks and reconciliation as well."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price
from api.customer.models import Customer
from api.db import utcnow
from api.errors import ProviderError
from api.revenue.history import record_mrr_change
from api.subscription.models import PauseBehavior, Subscription, SubscriptionItem, SubscriptionStatus

SUBSCRIPTION_STATUS: dict[str, SubscriptionStatus] = {
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAUSED,
    "unpaid": SubscriptionStatus.UNPAID,
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "incomplete_expired": SubscriptionStatus.CANCELED,
    "canceled": SubscriptionStatus.CANCELED,
}


def from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def at(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def to_timestamp(value: datetime) -> int:
    return int(value.timestamp())


def mirror_payment_method(customer: Customer, payment_method: str | stripe.PaymentMethod | None) -> None:
    """The customer's default card: brand, last 4, expiry (never the number). An id that was not
    expanded leaves the mirror as it is."""
    if isinstance(payment_method, str):
        return
    card = payment_method.card if payment_method is not None else None
    customer.payment_method_brand = card.brand if card else None
    customer.payment_method_last4 = card.last4 if card else None
    customer.payment_method_exp_month = card.exp_month if card else None
    customer.payment_method_exp_year = card.exp_year if card else None


def mirror_customer(customer: Customer, remote: stripe.Customer) -> None:
    customer.stripe_customer_id = remote.id
    if remote.invoice_settings is not None:
        mirror_payment_method(customer, remote.invoice_settings.default_payment_method)


async def mirror_subscription(
    session: AsyncSession, local: Subscription, remote: stripe.Subscription, *, effective_at: datetime | None = None
) -> None:
    """Status, period, trial, cancellation, pause, discount and items. Periods live on the items
    in this API version (`items.data[].current_period_*`). A change of what MRR depends on is
    appended to the subscription's MRR history, effective `effective_at` (default: now)."""
    local.stripe_subscription_id = remote.id
    local.status = SUBSCRIPTION_STATUS.get(remote.status, SubscriptionStatus.INCOMPLETE)
    local.currency = remote.currency
    remote_items = list(remote["items"].data)
    if remote_items:
        local.current_period_start = at(min(i.current_period_start for i in remote_items))
        local.current_period_end = at(max(i.current_period_end for i in remote_items))
    local.trial_end = from_timestamp(remote.trial_end)
    local.cancel_at_period_end = bool(remote.cancel_at_period_end)
    local.canceled_at = from_timestamp(remote.canceled_at)
    pause = remote.pause_collection
    local.pause_behavior = PauseBehavior(pause.behavior.upper()) if pause is not None else None
    local.pause_resumes_at = from_timestamp(pause.resumes_at) if pause is not None else None
    # as new as any event Stripe sent before answering (webhooks older than this are stale)
    local.stripe_updated_at = utcnow().replace(microsecond=0)
    mirror_discount(local, list(remote.discounts or []))
    await session.flush()
    await _mirror_items(session, local, remote_items)
    await record_mrr_change(session, local, effective_at=effective_at)


def mirror_discount(local: Subscription, discounts: list[str | stripe.Discount]) -> None:
    """The subscription's first discount (coupon terms and end). Discounts that were not expanded
    (webhook payloads carry ids) leave the mirror as it is."""
    if not discounts:
        local.discount_stripe_id = local.discount_duration = None
        local.discount_percent_off = local.discount_amount_off = local.discount_ends_at = None
        return
    first = discounts[0]
    coupon = first.source.coupon if not isinstance(first, str) and first.source is not None else None
    if isinstance(first, str) or coupon is None or isinstance(coupon, str):
        return
    local.discount_stripe_id = first.id
    local.discount_percent_off = Decimal(str(coupon.percent_off)) if coupon.percent_off is not None else None
    same_currency = (coupon.currency or local.currency).lower() == local.currency.lower()
    local.discount_amount_off = coupon.amount_off if coupon.amount_off is not None and same_currency else None
    local.discount_duration = coupon.duration
    local.discount_ends_at = from_timestamp(first.end)


async def _mirror_items(
    session: AsyncSession, local: Subscription, remote_items: list[stripe.SubscriptionItem]
) -> None:
    stripe_price_ids = {item.price.id for item in remote_items}
    prices = {
        p.stripe_price_id: p
        for p in (await session.execute(select(Price).where(Price.stripe_price_id.in_(stripe_price_ids)))).scalars()
    }
    existing = {
        i.stripe_subscription_item_id: i
        for i in (
            await session.execute(select(SubscriptionItem).where(SubscriptionItem.subscription_id == local.id))
        ).scalars()
    }
    seen: set[str | None] = set()
    for item in remote_items:
        price = prices.get(item.price.id)
        if price is None:
            raise ProviderError(f"Stripe price {item.price.id} is not in Ledgerline's catalog")
        row = existing.get(item.id)
        if row is None:
            row = SubscriptionItem(subscription_id=local.id, stripe_subscription_item_id=item.id)
            session.add(row)
        row.price_id = price.id
        row.quantity = item.quantity if item.quantity is not None else 0
        seen.add(item.id)
    for stripe_item_id, row in existing.items():
        if stripe_item_id not in seen:
            await session.delete(row)
    await session.flush()


# --- invoice amounts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceLineFacts:
    description: str | None
    amount: int
    quantity: int | None
    period_start: datetime | None
    period_end: datetime | None
    proration: bool


def is_proration(line: stripe.InvoiceLineItem) -> bool:
    parent = line.parent
    if parent is None:
        return False
    if parent.subscription_item_details is not None:
        return bool(parent.subscription_item_details.proration)
    if parent.invoice_item_details is not None:
        return bool(parent.invoice_item_details.proration)
    return False


def invoice_lines(invoice: stripe.Invoice) -> list[InvoiceLineFacts]:
    return [
        InvoiceLineFacts(
            description=line.description,
            amount=line.amount,
            quantity=line.quantity,
            period_start=from_timestamp(line.period.start) if line.period else None,
            period_end=from_timestamp(line.period.end) if line.period else None,
            proration=is_proration(line),
        )
        for line in invoice.lines.data
    ]
