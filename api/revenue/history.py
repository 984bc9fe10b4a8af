"""A subscription's normalised MRR, and the append-only history of its changes.

The rules (README, "Revenue analytics"): licensed items only (metered usage is not recurring);
unit amount x quantity, yearly prices ÷ 12; the subscription's discount taken off while it lasts
(percent off, or amount off per invoice ÷ the months an invoice covers; a `once` coupon is a one-off
and leaves MRR alone); never below 0; rounded half up to a minor unit per subscription. Only
ACTIVE and PAST_DUE subscriptions that are not paused count: trials, paused, unpaid, incomplete
and canceled subscriptions have 0 MRR."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price, PriceInterval, UsageType
from api.db import utcnow
from api.revenue.models import MrrSource, SubscriptionMrrChange
from api.subscription.models import Subscription, SubscriptionItem, SubscriptionStatus

MRR_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
ONE_OFF_DURATION = "once"


@dataclass(frozen=True, slots=True)
class PricedItem:
    product_id: uuid.UUID
    unit_amount: int
    interval: PriceInterval
    quantity: int


@dataclass(frozen=True, slots=True)
class Discount:
    percent_off: Decimal | None
    amount_off: int | None
    duration: str | None
    ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class MrrFacts:
    """What one history row records (everything but when and why)."""

    currency: str
    status: SubscriptionStatus
    paused: bool
    product_id: uuid.UUID | None
    quantity: int
    mrr: int
    undiscounted_mrr: int
    discount_ends_at: datetime | None


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def _months(interval: PriceInterval) -> int:
    return 12 if interval is PriceInterval.YEAR else 1


def _discounted(amount: Fraction, discount: Discount | None, months: int) -> Fraction:
    if discount is None or discount.duration == ONE_OFF_DURATION:
        return amount
    if discount.percent_off is not None:
        amount = amount * (100 - Fraction(discount.percent_off)) / 100
    if discount.amount_off is not None:
        amount = amount - Fraction(discount.amount_off, months)
    return max(amount, Fraction(0))


def normalise(
    currency: str, status: SubscriptionStatus, paused: bool, items: list[PricedItem], discount: Discount | None
) -> MrrFacts:
    monthly = [(item, Fraction(item.unit_amount * item.quantity, _months(item.interval))) for item in items]
    undiscounted = sum((amount for _, amount in monthly), Fraction(0))
    # an amount off is taken per invoice; an invoice covers the items' interval (yearly: 12 months)
    months = max((_months(item.interval) for item in items), default=1)
    discounted = _discounted(undiscounted, discount, months)
    # the plan is the item bringing the most MRR (ties: the smaller product id, for stability)
    plan = min(monthly, key=lambda pair: (-pair[1], str(pair[0].product_id)))[0].product_id if monthly else None
    counts = status in MRR_STATUSES and not paused
    discount_applies = discount is not None and discount.duration != ONE_OFF_DURATION
    return MrrFacts(
        currency=currency,
        status=status,
        paused=paused,
        product_id=plan,
        quantity=sum(item.quantity for item in items),
        mrr=round_half_up(discounted) if counts else 0,
        undiscounted_mrr=round_half_up(undiscounted) if counts else 0,
        discount_ends_at=discount.ends_at if discount_applies and discount is not None else None,
    )


def subscription_discount(sub: Subscription) -> Discount | None:
    if sub.discount_percent_off is None and sub.discount_amount_off is None:
        return None
    return Discount(sub.discount_percent_off, sub.discount_amount_off, sub.discount_duration, sub.discount_ends_at)


async def current_facts(session: AsyncSession, sub: Subscription, status: SubscriptionStatus | None = None) -> MrrFacts:
    rows = (
        await session.execute(
            select(SubscriptionItem.quantity, Price)
            .join(Price, Price.id == SubscriptionItem.price_id)
            .where(SubscriptionItem.subscription_id == sub.id, Price.usage_type == UsageType.LICENSED)
        )
    ).all()
    items = [PricedItem(price.product_id, price.unit_amount, price.interval, quantity) for quantity, price in rows]
    return normalise(sub.currency, status or sub.status, sub.paused, items, subscription_discount(sub))


def _facts_of(row: SubscriptionMrrChange) -> MrrFacts:
    return MrrFacts(
        currency=row.currency,
        status=row.status,
        paused=row.paused,
        product_id=row.product_id,
        quantity=row.quantity,
        mrr=row.mrr,
        undiscounted_mrr=row.undiscounted_mrr,
        discount_ends_at=row.discount_ends_at,
    )


async def latest_change(session: AsyncSession, subscription_id: uuid.UUID) -> SubscriptionMrrChange | None:
    return (
        await session.execute(
            select(SubscriptionMrrChange)
            .where(SubscriptionMrrChange.subscription_id == subscription_id)
            .order_by(SubscriptionMrrChange.effective_at.desc(), SubscriptionMrrChange.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def record_mrr_change(
    session: AsyncSession,
    sub: Subscription,
    *,
    source: MrrSource = MrrSource.MIRROR,
    effective_at: datetime | None = None,
    facts: MrrFacts | None = None,
) -> SubscriptionMrrChange | None:
    """Append a history row when the subscription's facts (by default its current ones) differ
    from its newest row; returns it (None when nothing changed). Never earlier than the newest
    row, so history only moves forward."""
    facts = facts or await current_facts(session, sub)
    latest = await latest_change(session, sub.id)
    if latest is not None and _facts_of(latest) == facts:
        return None
    moment = effective_at or utcnow()
    if latest is not None and moment < latest.effective_at:
        moment = latest.effective_at
    row = SubscriptionMrrChange(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        effective_at=moment,
        currency=facts.currency,
        status=facts.status,
        paused=facts.paused,
        product_id=facts.product_id,
        quantity=facts.quantity,
        mrr=facts.mrr,
        undiscounted_mrr=facts.undiscounted_mrr,
        discount_ends_at=facts.discount_ends_at,
        source=source,
    )
    session.add(row)
    await session.flush()
    return row


async def backfill_history(session: AsyncSession) -> int:
    """One row for each subscription that has no history yet, from its current state: effective
    when it was created (a canceled one: ACTIVE from creation, then CANCELED when canceled, the
    best that can be told from a current state). Returns the rows written."""
    missing = (
        (
            await session.execute(
                select(Subscription).where(
                    ~select(SubscriptionMrrChange.id)
                    .where(SubscriptionMrrChange.subscription_id == Subscription.id)
                    .exists()
                )
            )
        )
        .scalars()
        .all()
    )
    written = 0
    for sub in missing:
        if sub.status is SubscriptionStatus.CANCELED and sub.canceled_at is not None:
            active = await current_facts(session, sub, SubscriptionStatus.ACTIVE)
            await record_mrr_change(session, sub, source=MrrSource.BACKFILL, effective_at=sub.created_at, facts=active)
            written += 1
            await record_mrr_change(session, sub, source=MrrSource.BACKFILL, effective_at=sub.canceled_at)
        else:
            await record_mrr_change(session, sub, source=MrrSource.BACKFILL, effective_at=sub.created_at)
        written += 1
    return written
