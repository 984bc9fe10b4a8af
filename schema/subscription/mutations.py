"""Subscription changes through Stripe, and the proration preview (a query: it changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.subscription import commands
from api.subscription.commands import ChangeAmounts, Changed, NewSubscription, ProrationBehavior
from schema.context import Info
from schema.customer.mutations import idempotency_key_field
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import Money, parse_id
from schema.subscription.types import PauseBehaviorEnum, Subscription

ProrationBehaviorEnum = strawberry.enum(
    ProrationBehavior,
    name="ProrationBehavior",
    description="CREATE_PRORATIONS: credit/debit lines on the next invoice; ALWAYS_INVOICE: invoice the "
    "difference now; NONE: no proration.",
)


def _utc(value: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@strawberry.input
class CreateSubscriptionInput:
    customer: strawberry.ID
    price: strawberry.ID
    quantity: int = 1
    trial_days: int | None = None
    coupon: str | None = strawberry.field(default=None, description="A Stripe coupon id.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class PreviewSubscriptionChangeInput:
    subscription: strawberry.ID
    quantity: int | None = None
    price: strawberry.ID | None = None
    proration_behavior: ProrationBehaviorEnum = ProrationBehavior.CREATE_PRORATIONS  # type: ignore[valid-type]


@strawberry.input
class ChangeSubscriptionInput:
    subscription: strawberry.ID
    quantity: int | None = None
    price: strawberry.ID | None = None
    proration_date: datetime | None = strawberry.field(
        default=None, description="The preview's `prorationDate`, so the amounts applied are the preview's."
    )
    proration_behavior: ProrationBehaviorEnum = ProrationBehavior.CREATE_PRORATIONS  # type: ignore[valid-type]
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class CancelSubscriptionInput:
    subscription: strawberry.ID
    at_period_end: bool = strawberry.field(default=True, description="false cancels now.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class SubscriptionActionInput:
    subscription: strawberry.ID
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class PauseSubscriptionInput:
    subscription: strawberry.ID
    behavior: PauseBehaviorEnum  # type: ignore[valid-type]
    resumes_at: datetime | None = None
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class ExtendTrialInput:
    subscription: strawberry.ID
    until: datetime
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type(description="One proration line: unused time credited or remaining time charged.")
class ProrationLine:
    description: str | None
    amount: Money
    quantity: int | None
    period_start: datetime | None
    period_end: datetime | None


@strawberry.type(description="What a seat or plan change costs.")
class SubscriptionChangeAmounts:
    proration_lines: list[ProrationLine]
    proration_total: Money = strawberry.field(description="The sum of the proration lines.")
    amount_due_now: Money = strawberry.field(description="Invoiced at once (ALWAYS_INVOICE or a new interval).")
    next_invoice_total: Money = strawberry.field(description="The total of the next regular invoice.")
    proration_date: datetime = strawberry.field(description="Pass it to changeSubscription to apply these amounts.")
    proration_behavior: ProrationBehaviorEnum  # type: ignore[valid-type]

    @classmethod
    def from_amounts(cls, a: ChangeAmounts) -> SubscriptionChangeAmounts:
        return cls(
            proration_lines=[
                ProrationLine(
                    description=line.description,
                    amount=Money.of(line.amount, a.currency),
                    quantity=line.quantity,
                    period_start=line.period_start,
                    period_end=line.period_end,
                )
                for line in a.proration_lines
            ],
            proration_total=Money.of(a.proration_total, a.currency),
            amount_due_now=Money.of(a.amount_due_now, a.currency),
            next_invoice_total=Money.of(a.next_invoice_total, a.currency),
            proration_date=a.proration_date,
            proration_behavior=a.proration_behavior,
        )


@strawberry.type
class SubscriptionPayload:
    subscription: Subscription | None
    user_errors: list[UserError]


@strawberry.type
class SubscriptionChangePayload:
    subscription: Subscription | None
    applied: SubscriptionChangeAmounts | None = strawberry.field(description="The amounts Stripe applied.")
    user_errors: list[UserError]


@strawberry.type
class SubscriptionChangePreviewPayload:
    preview: SubscriptionChangeAmounts | None
    user_errors: list[UserError]


async def _payload(info: Info, work: Any) -> SubscriptionPayload:
    outcome = await run_mutation(info, work)
    changed: Changed | None = outcome.value
    return SubscriptionPayload(
        subscription=Subscription.from_model(changed.subscription) if changed else None,
        user_errors=outcome.user_errors,
    )


def _subscription_id(value: str) -> Any:
    return parse_id(value, "Subscription", "subscription")


@strawberry.type
class SubscriptionChangeQueries:
    @guarded(
        Capability.SUBSCRIPTION_CHANGE,
        description="What a seat/plan change would cost (Stripe's invoice preview); changes nothing.",
    )
    async def preview_subscription_change(
        self, info: Info, input: PreviewSubscriptionChangeInput
    ) -> SubscriptionChangePreviewPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> ChangeAmounts:
            return await commands.preview_subscription_change(
                session,
                info.context.stripe,
                _subscription_id(input.subscription),
                input.quantity,
                parse_id(input.price, "Price", "price") if input.price else None,
                input.proration_behavior,
            )

        outcome = await run_mutation(info, work)
        return SubscriptionChangePreviewPayload(
            preview=SubscriptionChangeAmounts.from_amounts(outcome.value) if outcome.value else None,
            user_errors=outcome.user_errors,
        )


@strawberry.type
class SubscriptionMutations:
    @guarded(Capability.SUBSCRIPTION_CHANGE, description="Subscribe a customer to a price in Stripe.")
    async def create_subscription(self, info: Info, input: CreateSubscriptionInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            data = NewSubscription(
                customer_id=parse_id(input.customer, "Customer", "customer"),
                price_id=parse_id(input.price, "Price", "price"),
                quantity=input.quantity,
                trial_days=input.trial_days,
                coupon=input.coupon,
            )
            return await commands.create_subscription(session, actor, info.context.stripe, data, input.idempotency_key)

        return await _payload(info, work)

    @guarded(
        Capability.SUBSCRIPTION_CHANGE,
        description="Change seats and/or plan with proration; with the preview's prorationDate the amounts match it.",
    )
    async def change_subscription(self, info: Info, input: ChangeSubscriptionInput) -> SubscriptionChangePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.change_subscription(
                session,
                actor,
                info.context.stripe,
                _subscription_id(input.subscription),
                input.quantity,
                parse_id(input.price, "Price", "price") if input.price else None,
                _utc(input.proration_date) if input.proration_date else None,
                input.proration_behavior,
                input.idempotency_key,
            )

        outcome = await run_mutation(info, work)
        changed = outcome.value
        return SubscriptionChangePayload(
            subscription=Subscription.from_model(changed.subscription) if changed else None,
            applied=SubscriptionChangeAmounts.from_amounts(changed.amounts) if changed and changed.amounts else None,
            user_errors=outcome.user_errors,
        )

    @guarded(Capability.SUBSCRIPTION_CHANGE, description="Cancel at period end (default) or now.")
    async def cancel_subscription(self, info: Info, input: CancelSubscriptionInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.cancel_subscription(
                session,
                actor,
                info.context.stripe,
                _subscription_id(input.subscription),
                input.at_period_end,
                input.idempotency_key,
            )

        return await _payload(info, work)

    @guarded(Capability.SUBSCRIPTION_CHANGE, description="Undo a pending cancellation at period end.")
    async def reactivate_subscription(self, info: Info, input: SubscriptionActionInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.reactivate_subscription(
                session, actor, info.context.stripe, _subscription_id(input.subscription), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(
        Capability.SUBSCRIPTION_CHANGE,
        description="Pause payment collection (the subscription stays active), until `resumesAt` if given.",
    )
    async def pause_subscription(self, info: Info, input: PauseSubscriptionInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.pause_subscription(
                session,
                actor,
                info.context.stripe,
                _subscription_id(input.subscription),
                input.behavior,
                _utc(input.resumes_at) if input.resumes_at else None,
                input.idempotency_key,
            )

        return await _payload(info, work)

    @guarded(Capability.SUBSCRIPTION_CHANGE, description="Resume a paused subscription.")
    async def resume_subscription(self, info: Info, input: SubscriptionActionInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.resume_subscription(
                session, actor, info.context.stripe, _subscription_id(input.subscription), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(Capability.TRIAL_EXTEND, description="Move a trial's end later.")
    async def extend_trial(self, info: Info, input: ExtendTrialInput) -> SubscriptionPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> Changed:
            return await commands.extend_trial(
                session,
                actor,
                info.context.stripe,
                _subscription_id(input.subscription),
                _utc(input.until),
                input.idempotency_key,
            )

        return await _payload(info, work)
