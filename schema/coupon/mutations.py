"""createCoupon and createPromotionCode (COUPON_MANAGE: owner, finance — a price cut is a revenue
decision, like a credit), applyCoupon (SUBSCRIPTION_CHANGE, like createSubscription's `coupon`).
Coupons and promotion codes live in Stripe; these types show Stripe's answer."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.coupon import commands
from api.coupon.commands import CouponDuration, CouponFacts, NewCoupon, PromotionCodeFacts
from api.subscription.models import Subscription as SubscriptionModel
from schema.context import Info
from schema.customer.mutations import idempotency_key_field
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import Money, MoneyInput, parse_id
from schema.subscription.types import Subscription

CouponDurationEnum = strawberry.enum(
    CouponDuration,
    name="CouponDuration",
    description="ONCE: the first invoice; REPEATING: `durationInMonths`; FOREVER: every invoice.",
)


@strawberry.type(description="A Stripe coupon.")
class Coupon:
    stripe_coupon_id: str = strawberry.field(description="Pass it as `coupon` to applyCoupon or createSubscription.")
    name: str | None
    percent_off: float | None
    amount_off: Money | None
    duration: CouponDurationEnum  # type: ignore[valid-type]
    duration_in_months: int | None
    valid: bool

    @classmethod
    def of(cls, f: CouponFacts) -> Coupon:
        return cls(
            stripe_coupon_id=f.stripe_coupon_id,
            name=f.name,
            percent_off=f.percent_off,
            amount_off=Money.of(f.amount_off, f.currency) if f.amount_off is not None and f.currency else None,
            duration=f.duration,
            duration_in_months=f.duration_in_months,
            valid=f.valid,
        )


@strawberry.type(description="A customer-facing code for a Stripe coupon.")
class PromotionCode:
    stripe_promotion_code_id: str
    code: str
    stripe_coupon_id: str
    active: bool


@strawberry.input(description="Either `percentOff` or `amountOff`.")
class CreateCouponInput:
    name: str
    duration: CouponDurationEnum  # type: ignore[valid-type]
    percent_off: float | None = strawberry.field(default=None, description="Over 0, at most 100, 2 decimals.")
    amount_off: MoneyInput | None = None
    duration_in_months: int | None = strawberry.field(default=None, description="REPEATING only.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class CreatePromotionCodeInput:
    coupon: str = strawberry.field(description="A Stripe coupon id.")
    code: str = strawberry.field(description="What customers type, letters and digits, e.g. SPRING25.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input(
    description="One of `subscription` / `customer` (each of its live subscriptions), and one of "
    "`coupon` / `promotionCode`. Replaces the subscription's discounts."
)
class ApplyCouponInput:
    subscription: strawberry.ID | None = None
    customer: strawberry.ID | None = None
    coupon: str | None = strawberry.field(default=None, description="A Stripe coupon id.")
    promotion_code: str | None = strawberry.field(default=None, description="A code (SPRING25) or its `promo_` id.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type
class CouponPayload:
    coupon: Coupon | None
    user_errors: list[UserError]


@strawberry.type
class PromotionCodePayload:
    promotion_code: PromotionCode | None
    user_errors: list[UserError]


@strawberry.type
class ApplyCouponPayload:
    subscriptions: list[Subscription] | None = strawberry.field(description="The subscriptions now discounted.")
    user_errors: list[UserError]


@strawberry.type
class CouponMutations:
    @guarded(Capability.COUPON_MANAGE, description="Create a Stripe coupon (percent or amount off).")
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> CouponPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CouponFacts:
            data = NewCoupon(
                name=input.name,
                duration=input.duration,
                percent_off=input.percent_off,
                amount_off=input.amount_off.to_amount() if input.amount_off else None,
                duration_in_months=input.duration_in_months,
            )
            return await commands.create_coupon(session, actor, info.context.stripe, data, input.idempotency_key)

        outcome = await run_mutation(info, work)
        return CouponPayload(
            coupon=Coupon.of(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )

    @guarded(Capability.COUPON_MANAGE, description="Create a customer-facing code for a coupon.")
    async def create_promotion_code(self, info: Info, input: CreatePromotionCodeInput) -> PromotionCodePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> PromotionCodeFacts:
            return await commands.create_promotion_code(
                session, actor, info.context.stripe, input.coupon, input.code, input.idempotency_key
            )

        outcome = await run_mutation(info, work)
        f = outcome.value
        return PromotionCodePayload(
            promotion_code=PromotionCode(
                stripe_promotion_code_id=f.stripe_promotion_code_id,
                code=f.code,
                stripe_coupon_id=f.stripe_coupon_id,
                active=f.active,
            )
            if f
            else None,
            user_errors=outcome.user_errors,
        )

    @guarded(
        Capability.SUBSCRIPTION_CHANGE,
        description="Apply a coupon or a promotion code to a subscription, or to each live subscription of a "
        "customer (Stripe keeps discounts on subscriptions, not on customers).",
    )
    async def apply_coupon(self, info: Info, input: ApplyCouponInput) -> ApplyCouponPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> list[SubscriptionModel]:
            return await commands.apply_coupon(
                session,
                actor,
                info.context.stripe,
                _id(input.subscription, "Subscription", "subscription"),
                _id(input.customer, "Customer", "customer"),
                input.coupon,
                input.promotion_code,
                input.idempotency_key,
            )

        outcome = await run_mutation(info, work)
        return ApplyCouponPayload(
            subscriptions=[Subscription.from_model(s) for s in outcome.value] if outcome.value is not None else None,
            user_errors=outcome.user_errors,
        )


def _id(value: str | None, kind: str, field: str) -> Any:
    return parse_id(value, kind, field) if value else None
