"""Coupons and promotion codes in Stripe, and applying one to a subscription or a customer.

Coupons live in Stripe only (Stripe is the source of truth for billing objects and Ledgerline
has no screen that lists them): the mutations return Stripe's answer, which the audit entry and
the idempotency record keep. Permissions: creating a coupon or a promotion code is a pricing
decision (COUPON_MANAGE: owner, finance), applying an existing one is a subscription change
(SUBSCRIPTION_CHANGE), like createSubscription's `coupon`.

Stripe (API 2026-10-28) keeps discounts on subscriptions and invoices, no longer on customers:
applying to a customer applies to each of its live subscriptions."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.common.money import MoneyAmount
from api.customer.commands import get_customer_for_update
from api.errors import Invalid, NotFound
from api.idempotency.service import MutationKey, previous_result, remember
from api.stripe.gateway import StripeGateway
from api.stripe.mirror import mirror_subscription
from api.stripe.params import CouponCreateParams
from api.subscription.commands import get_subscription_for_update, subscription_snapshot
from api.subscription.models import Subscription, SubscriptionItem, SubscriptionStatus

MAX_NAME = 40  # Stripe's limit for a coupon name
MAX_MONTHS = 120
_CODE = re.compile(r"^[A-Za-z0-9]{1,100}$")  # Stripe: letters and digits only
_COUPON_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class CouponDuration(enum.StrEnum):
    ONCE = "ONCE"
    REPEATING = "REPEATING"  # for `duration_in_months`
    FOREVER = "FOREVER"

    @property
    def stripe(self) -> Any:
        return self.value.lower()


@dataclass(frozen=True, slots=True)
class CouponFacts:
    """A Stripe coupon, as Stripe answered."""

    stripe_coupon_id: str
    name: str | None
    percent_off: float | None
    amount_off: int | None
    currency: str | None
    duration: CouponDuration
    duration_in_months: int | None
    valid: bool


@dataclass(frozen=True, slots=True)
class PromotionCodeFacts:
    stripe_promotion_code_id: str
    code: str
    stripe_coupon_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class NewCoupon:
    name: str
    duration: CouponDuration
    percent_off: float | None = None
    amount_off: MoneyAmount | None = None
    duration_in_months: int | None = None

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "amount_off": self.amount_off.to_json() if self.amount_off else None}


def _coupon_facts(remote: Any) -> CouponFacts:
    return CouponFacts(
        stripe_coupon_id=remote.id,
        name=remote.name,
        percent_off=remote.percent_off,
        amount_off=remote.amount_off,
        currency=remote.currency,
        duration=CouponDuration(remote.duration.upper()),
        duration_in_months=remote.duration_in_months,
        valid=bool(remote.valid),
    )


def _stripe_id(value: Any) -> str:
    return value if isinstance(value, str) else str(value.id)


async def create_coupon(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, data: NewCoupon, idempotency_key: str | None
) -> CouponFacts:
    mk = MutationKey.of(actor, "createCoupon", idempotency_key, data.payload())
    if (previous := await previous_result(session, mk)) is not None:
        return CouponFacts(**{**previous, "duration": CouponDuration(previous["duration"])})
    name = data.name.strip()
    if not name or len(name) > MAX_NAME:
        raise Invalid(f"`name` must be 1 to {MAX_NAME} characters", field="name")
    if (data.percent_off is None) == (data.amount_off is None):
        raise Invalid("give either `percentOff` or `amountOff`", field="percentOff")
    params: CouponCreateParams = {
        "name": name,
        "duration": data.duration.stripe,
        "metadata": {"ledgerline_created_by": actor.subject[:500]},
    }
    if data.percent_off is not None:
        percent = Decimal(str(data.percent_off))
        if not Decimal(0) < percent <= Decimal(100) or percent != percent.quantize(Decimal("0.01")):
            raise Invalid("`percentOff` must be over 0 and at most 100, with 2 decimals at most", field="percentOff")
        params["percent_off"] = float(percent)
    if data.amount_off is not None:
        minor = data.amount_off.minor_units("amountOff")
        if minor <= 0:
            raise Invalid("`amountOff` must be greater than zero", field="amountOff.amount")
        params["amount_off"] = minor
        params["currency"] = data.amount_off.currency.strip().lower()
    if data.duration is CouponDuration.REPEATING:
        if data.duration_in_months is None or not 1 <= data.duration_in_months <= MAX_MONTHS:
            raise Invalid(f"a REPEATING coupon needs `durationInMonths` (1 to {MAX_MONTHS})", field="durationInMonths")
        params["duration_in_months"] = data.duration_in_months
    elif data.duration_in_months is not None:
        raise Invalid("`durationInMonths` applies to REPEATING coupons only", field="durationInMonths")
    remote = await gateway.create_coupon(
        params,
        idempotency_key=mk.stripe_key("coupon"),
        fields={
            "name": "name",
            "percent_off": "percentOff",
            "amount_off": "amountOff.amount",
            "currency": "amountOff.currency",
            "duration": "duration",
            "duration_in_months": "durationInMonths",
        },
    )
    facts = _coupon_facts(remote)
    result = {**asdict(facts), "duration": facts.duration.value}
    await record_audit(session, actor, "createCoupon", "Coupon", facts.stripe_coupon_id, after=result)
    await remember(session, mk, result)
    return facts


async def create_promotion_code(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, coupon: str, code: str, idempotency_key: str | None
) -> PromotionCodeFacts:
    """A customer-facing code (e.g. SPRING25) for a coupon."""
    mk = MutationKey.of(actor, "createPromotionCode", idempotency_key, {"coupon": coupon, "code": code})
    if (previous := await previous_result(session, mk)) is not None:
        return PromotionCodeFacts(**previous)
    coupon, code = coupon.strip(), code.strip()
    if not _COUPON_ID.match(coupon):
        raise Invalid("`coupon` must be a Stripe coupon id", field="coupon")
    if not _CODE.match(code):
        raise Invalid("`code` must be 1 to 100 letters and digits", field="code")
    remote = await gateway.create_promotion_code(
        {"promotion": {"type": "coupon", "coupon": coupon}, "code": code},
        idempotency_key=mk.stripe_key("promotion-code"),
        fields={"promotion[coupon]": "coupon", "code": "code"},
    )
    facts = PromotionCodeFacts(
        stripe_promotion_code_id=remote.id,
        code=remote.code,
        stripe_coupon_id=_stripe_id(remote.promotion.coupon),
        active=bool(remote.active),
    )
    await record_audit(
        session, actor, "createPromotionCode", "PromotionCode", facts.stripe_promotion_code_id, after=asdict(facts)
    )
    await remember(session, mk, asdict(facts))
    return facts


# --- apply -------------------------------------------------------------------------------------------


async def _items(session: AsyncSession, sub: Subscription) -> list[SubscriptionItem]:
    rows = await session.execute(
        select(SubscriptionItem)
        .where(SubscriptionItem.subscription_id == sub.id)
        .order_by(SubscriptionItem.created_at, SubscriptionItem.id)
    )
    return list(rows.scalars())


async def _targets(
    session: AsyncSession, subscription_id: uuid.UUID | None, customer_id: uuid.UUID | None
) -> list[Subscription]:
    if (subscription_id is None) == (customer_id is None):
        raise Invalid("give either `subscription` or `customer`", field="subscription")
    if subscription_id is not None:
        sub = await get_subscription_for_update(session, subscription_id)
        if sub.status is SubscriptionStatus.CANCELED or sub.stripe_subscription_id is None:
            raise Invalid("this subscription is canceled or not linked to Stripe", field="subscription")
        return [sub]
    assert customer_id is not None
    customer = await get_customer_for_update(session, customer_id)
    subs = list(
        (
            await session.execute(
                select(Subscription)
                .where(
                    Subscription.customer_id == customer.id,
                    Subscription.status != SubscriptionStatus.CANCELED,
                    Subscription.stripe_subscription_id.is_not(None),
                )
                .order_by(Subscription.created_at, Subscription.id)
                .with_for_update()
            )
        ).scalars()
    )
    if not subs:
        raise Invalid(
            "this customer has no live subscription; Stripe keeps discounts on subscriptions and invoices",
            field="customer",
        )
    return subs


async def apply_coupon(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    subscription_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    coupon: str | None,
    promotion_code: str | None,
    idempotency_key: str | None,
) -> list[Subscription]:
    """Replace the discounts of the subscription (or of each live subscription of the customer)
    with the coupon or the promotion code (its id `promo_…` or its customer-facing code)."""
    payload = {
        "subscription": str(subscription_id) if subscription_id else None,
        "customer": str(customer_id) if customer_id else None,
        "coupon": coupon,
        "promotion_code": promotion_code,
    }
    mk = MutationKey.of(actor, "applyCoupon", idempotency_key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        return [await get_subscription_for_update(session, uuid.UUID(i)) for i in previous["ids"]]
    if (coupon is None) == (promotion_code is None):
        raise Invalid("give either `coupon` or `promotionCode`", field="coupon")
    if coupon is not None and not _COUPON_ID.match(coupon.strip()):
        raise Invalid("`coupon` must be a Stripe coupon id", field="coupon")
    if promotion_code is not None and not promotion_code.strip():
        raise Invalid("`promotionCode` must not be empty", field="promotionCode")
    subs = await _targets(session, subscription_id, customer_id)
    discount: Any
    if coupon is not None:
        discount = {"coupon": coupon.strip()}
    else:
        assert promotion_code is not None
        promo_id = promotion_code.strip()
        if not promo_id.startswith("promo_"):
            found = await gateway.find_promotion_code(promo_id)
            if found is None:
                raise NotFound(f"no active promotion code {promo_id!r}", field="promotionCode")
            promo_id = found.id
        discount = {"promotion_code": promo_id}
    fields = {"discounts[0][coupon]": "coupon", "discounts[0][promotion_code]": "promotionCode"}
    for sub in subs:
        assert sub.stripe_subscription_id is not None
        before = subscription_snapshot(sub, await _items(session, sub))
        remote = await gateway.update_subscription(
            sub.stripe_subscription_id,
            {"discounts": [discount]},
            idempotency_key=mk.stripe_key(f"discount-{sub.id}"),
            fields=fields,
        )
        await mirror_subscription(session, sub, remote)
        after = {**subscription_snapshot(sub, await _items(session, sub)), "discounts": [discount]}
        await record_audit(session, actor, "applyCoupon", "Subscription", str(sub.id), before=before, after=after)
    await remember(session, mk, {"ids": [str(s.id) for s in subs]})
    return subs
