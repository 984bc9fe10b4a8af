"""Subscription changes through Stripe: create, preview and apply a seat/plan change with
proration, cancel (now or at period end), reactivate, pause/resume collection, extend a trial.

Each mutation: replay check (api/idempotency) → validate (errors name the input field) → Stripe
(idempotency key per step) → mirror Stripe's answer locally → audit entry → remember the result.
All in the caller's transaction: a Stripe failure or a local failure leaves nothing behind."""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.catalog.commands import ensure_stripe_price
from api.catalog.models import Price, UsageType
from api.customer.commands import ensure_stripe_customer, get_customer_for_update
from api.customer.models import CustomerStatus
from api.db import utcnow
from api.errors import Invalid, NotFound
from api.idempotency.service import MutationKey, previous_result, remember
from api.stripe.gateway import StripeGateway
from api.stripe.mirror import InvoiceLineFacts, invoice_lines, mirror_subscription, to_timestamp
from api.stripe.params import (
    InvoiceCreatePreviewParams,
    InvoiceCreatePreviewParamsSubscriptionDetailsItem,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
    SubscriptionUpdateParamsItem,
)
from api.subscription.models import PauseBehavior, Subscription, SubscriptionItem, SubscriptionStatus

MAX_TRIAL_DAYS = 730  # Stripe's limit
MAX_QUANTITY = 100_000


class ProrationBehavior(enum.StrEnum):
    CREATE_PRORATIONS = "CREATE_PRORATIONS"  # credit/debit lines on the next invoice
    ALWAYS_INVOICE = "ALWAYS_INVOICE"  # invoice and charge the difference now
    NONE = "NONE"  # no proration

    @property
    def stripe(self) -> Any:
        return self.value.lower()


SUBSCRIPTION_FIELDS = {
    "customer": "customer",
    "items[0][price]": "price",
    "items[0][quantity]": "quantity",
    "trial_period_days": "trialDays",
    "discounts[0][coupon]": "coupon",
    "proration_date": "prorationDate",
    "subscription_details[proration_date]": "prorationDate",
    "subscription_details[items][0][price]": "price",
    "subscription_details[items][0][quantity]": "quantity",
    "trial_end": "until",
    "pause_collection[resumes_at]": "resumesAt",
}


def subscription_snapshot(sub: Subscription, items: list[SubscriptionItem]) -> dict[str, Any]:
    return {
        "status": sub.status.value,
        "items": [{"price_id": str(i.price_id), "quantity": i.quantity} for i in items],
        "trial_end": sub.trial_end.isoformat() if sub.trial_end else None,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at.isoformat() if sub.canceled_at else None,
        "pause_behavior": sub.pause_behavior.value if sub.pause_behavior else None,
        "pause_resumes_at": sub.pause_resumes_at.isoformat() if sub.pause_resumes_at else None,
        "current_period_end": sub.current_period_end.isoformat(),
        "stripe_subscription_id": sub.stripe_subscription_id,
    }


async def _items(session: AsyncSession, sub: Subscription) -> list[SubscriptionItem]:
    rows = await session.execute(
        select(SubscriptionItem)
        .where(SubscriptionItem.subscription_id == sub.id)
        .order_by(SubscriptionItem.created_at, SubscriptionItem.id)
    )
    return list(rows.scalars())


async def get_subscription_for_update(
    session: AsyncSession, subscription_id: uuid.UUID, field: str = "subscription"
) -> Subscription:
    sub = await session.get(Subscription, subscription_id, with_for_update=True)
    if sub is None:
        raise NotFound(f"subscription {subscription_id} does not exist", field=field)
    return sub


async def _price(session: AsyncSession, price_id: uuid.UUID, field: str = "price") -> Price:
    price = await session.get(Price, price_id)
    if price is None:
        raise NotFound(f"price {price_id} does not exist", field=field)
    if not price.active:
        raise Invalid("this price is no longer active", field=field)
    return price


def _check_quantity(quantity: int | None) -> None:
    if quantity is not None and not 1 <= quantity <= MAX_QUANTITY:
        raise Invalid(f"`quantity` must be between 1 and {MAX_QUANTITY}", field="quantity")


def _require_stripe(sub: Subscription) -> str:
    if sub.stripe_subscription_id is None:
        raise Invalid("this subscription is not linked to Stripe", field="subscription")
    return sub.stripe_subscription_id


def _require_live(sub: Subscription) -> str:
    if sub.status is SubscriptionStatus.CANCELED:
        raise Invalid("this subscription is canceled", field="subscription")
    return _require_stripe(sub)


@dataclass(slots=True)
class Changed:
    """What a subscription mutation returns: the subscription, and for a seat/plan change the
    amounts Stripe applied."""

    subscription: Subscription
    amounts: ChangeAmounts | None = None


async def _replayed(session: AsyncSession, previous: dict[str, Any]) -> Changed:
    sub = await get_subscription_for_update(session, uuid.UUID(previous["id"]))
    amounts = ChangeAmounts.from_json(previous["amounts"]) if previous.get("amounts") else None
    return Changed(sub, amounts)


async def _finish(
    session: AsyncSession,
    actor: Actor,
    mk: MutationKey,
    sub: Subscription,
    before: dict[str, Any] | None,
    amounts: ChangeAmounts | None = None,
) -> Changed:
    after = subscription_snapshot(sub, await _items(session, sub))
    if amounts is not None:
        after["applied"] = amounts.to_json()
    await record_audit(session, actor, mk.mutation, "Subscription", str(sub.id), before=before, after=after)
    await remember(session, mk, {"id": str(sub.id), "amounts": amounts.to_json() if amounts else None})
    return Changed(sub, amounts)


# --- create --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSubscription:
    customer_id: uuid.UUID
    price_id: uuid.UUID
    quantity: int = 1
    trial_days: int | None = None
    coupon: str | None = None


async def create_subscription(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, data: NewSubscription, idempotency_key: str | None
) -> Changed:
    payload = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in asdict(data).items()}
    mk = MutationKey.of(actor, "createSubscription", idempotency_key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        return await _replayed(session, previous)
    _check_quantity(data.quantity)
    if data.trial_days is not None and not 1 <= data.trial_days <= MAX_TRIAL_DAYS:
        raise Invalid(f"`trialDays` must be between 1 and {MAX_TRIAL_DAYS}", field="trialDays")
    if data.coupon is not None and not data.coupon.strip():
        raise Invalid("`coupon` must not be empty", field="coupon")
    customer = await get_customer_for_update(session, data.customer_id)
    if customer.status is CustomerStatus.SUSPENDED:
        raise Invalid("the customer is suspended", field="customer")
    price = await _price(session, data.price_id)
    if price.currency != customer.currency:
        raise Invalid(
            f"the price is in {price.currency.upper()} but the customer is billed in {customer.currency.upper()}",
            field="price",
        )
    stripe_customer_id = await ensure_stripe_customer(session, gateway, customer, mk.stripe_key("customer"))
    stripe_price_id = await ensure_stripe_price(session, gateway, price)
    local_id = mk.local_id("subscription")
    params: SubscriptionCreateParams = {
        "customer": stripe_customer_id,
        # a metered price bills reported usage: Stripe refuses a quantity on it
        "items": [
            {"price": stripe_price_id}
            if price.usage_type is UsageType.METERED
            else {"price": stripe_price_id, "quantity": data.quantity}
        ],
        # a declined first payment refuses the whole creation (nothing to clean up anywhere)
        "payment_behavior": "error_if_incomplete",
        "metadata": {"ledgerline_subscription_id": str(local_id)},
    }
    if data.trial_days is not None:
        params["trial_period_days"] = data.trial_days
    if data.coupon is not None:
        params["discounts"] = [{"coupon": data.coupon.strip()}]
    remote = await gateway.create_subscription(
        params, idempotency_key=mk.stripe_key("subscription"), fields=SUBSCRIPTION_FIELDS
    )
    sub = Subscription(id=local_id, customer_id=customer.id)
    session.add(sub)
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, None)


# --- preview and change ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeAmounts:
    """What a seat/plan change costs: the proration lines, what is invoiced now, the next invoice."""

    currency: str
    proration_date: datetime
    proration_behavior: ProrationBehavior
    proration_lines: list[InvoiceLineFacts] = field(default_factory=list)
    amount_due_now: int = 0
    next_invoice_total: int = 0

    @property
    def proration_total(self) -> int:
        return sum(line.amount for line in self.proration_lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "proration_date": self.proration_date.isoformat(),
            "proration_behavior": self.proration_behavior.value,
            "amount_due_now": self.amount_due_now,
            "next_invoice_total": self.next_invoice_total,
            "proration_lines": [
                {
                    "description": line.description,
                    "amount": line.amount,
                    "quantity": line.quantity,
                    "period_start": line.period_start.isoformat() if line.period_start else None,
                    "period_end": line.period_end.isoformat() if line.period_end else None,
                }
                for line in self.proration_lines
            ],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ChangeAmounts:
        return cls(
            currency=value["currency"],
            proration_date=datetime.fromisoformat(value["proration_date"]),
            proration_behavior=ProrationBehavior(value["proration_behavior"]),
            amount_due_now=value["amount_due_now"],
            next_invoice_total=value["next_invoice_total"],
            proration_lines=[
                InvoiceLineFacts(
                    description=line["description"],
                    amount=line["amount"],
                    quantity=line["quantity"],
                    period_start=datetime.fromisoformat(line["period_start"]) if line["period_start"] else None,
                    period_end=datetime.fromisoformat(line["period_end"]) if line["period_end"] else None,
                    proration=True,
                )
                for line in value["proration_lines"]
            ],
        )


@dataclass(frozen=True, slots=True)
class PlannedChange:
    subscription: Subscription
    item: SubscriptionItem
    stripe_subscription_id: str
    stripe_item_id: str
    stripe_price_id: str | None  # the new price, if it changes
    quantity: int | None  # the new quantity, if it changes
    invoices_now: bool  # the change is invoiced at once (always_invoice, or a new billing interval)


async def _plan_change(
    session: AsyncSession,
    gateway: StripeGateway,
    sub: Subscription,
    quantity: int | None,
    price_id: uuid.UUID | None,
    behavior: ProrationBehavior,
) -> PlannedChange:
    stripe_subscription_id = _require_live(sub)
    if quantity is None and price_id is None:
        raise Invalid("give a new `quantity`, a new `price`, or both", field="quantity")
    _check_quantity(quantity)
    items = await _items(session, sub)
    if len(items) != 1 or items[0].stripe_subscription_item_id is None:
        raise Invalid("only subscriptions with exactly one Stripe item can change seats or plan", field="subscription")
    item = items[0]
    assert item.stripe_subscription_item_id is not None
    new_stripe_price: str | None = None
    current_price = await session.get(Price, item.price_id)
    assert current_price is not None
    interval_changed = False
    if price_id is not None:
        price = await _price(session, price_id)
        if price.currency != sub.currency:
            raise Invalid(f"the price must be in {sub.currency.upper()}, like the subscription", field="price")
        interval_changed = price.interval is not current_price.interval
        new_stripe_price = await ensure_stripe_price(session, gateway, price)
    invoices_now = behavior is ProrationBehavior.ALWAYS_INVOICE or interval_changed
    return PlannedChange(
        sub, item, stripe_subscription_id, item.stripe_subscription_item_id, new_stripe_price, quantity, invoices_now
    )


def _preview_item(plan: PlannedChange) -> InvoiceCreatePreviewParamsSubscriptionDetailsItem:
    item: InvoiceCreatePreviewParamsSubscriptionDetailsItem = {"id": plan.stripe_item_id}
    if plan.stripe_price_id is not None:
        item["price"] = plan.stripe_price_id
    if plan.quantity is not None:
        item["quantity"] = plan.quantity
    return item


def _update_item(plan: PlannedChange) -> SubscriptionUpdateParamsItem:
    item: SubscriptionUpdateParamsItem = {"id": plan.stripe_item_id}
    if plan.stripe_price_id is not None:
        item["price"] = plan.stripe_price_id
    if plan.quantity is not None:
        item["quantity"] = plan.quantity
    return item


def _default_proration_date(sub: Subscription) -> datetime:
    now = utcnow().replace(microsecond=0)
    return min(max(now, sub.current_period_start), sub.current_period_end)


async def _next_invoice_total(gateway: StripeGateway, plan: PlannedChange | None, stripe_subscription_id: str) -> int:
    """The total of the next regular invoice (after the change when `plan` is given, without prorations)."""
    params: InvoiceCreatePreviewParams = {"subscription": stripe_subscription_id}
    if plan is not None:
        params["subscription_details"] = {"items": [_preview_item(plan)], "proration_behavior": "none"}
    return (await gateway.preview_invoice(params, fields=SUBSCRIPTION_FIELDS)).total


async def preview_subscription_change(
    session: AsyncSession,
    gateway: StripeGateway,
    subscription_id: uuid.UUID,
    quantity: int | None,
    price_id: uuid.UUID | None,
    behavior: ProrationBehavior,
) -> ChangeAmounts:
    """No side effect: Stripe's `invoices.create_preview` of the change. Pass the returned
    `proration_date` to changeSubscription and the amounts applied are these."""
    sub = await get_subscription_for_update(session, subscription_id)
    plan = await _plan_change(session, gateway, sub, quantity, price_id, behavior)
    proration_date = _default_proration_date(sub)
    params: InvoiceCreatePreviewParams = {
        "subscription": plan.stripe_subscription_id,
        "subscription_details": {
            "items": [_preview_item(plan)],
            "proration_behavior": behavior.stripe,
            "proration_date": to_timestamp(proration_date),
        },
    }
    invoice = await gateway.preview_invoice(params, fields=SUBSCRIPTION_FIELDS)
    lines = [line for line in invoice_lines(invoice) if line.proration]
    if plan.invoices_now:
        amount_due_now = invoice.amount_due
        next_total = await _next_invoice_total(gateway, plan, plan.stripe_subscription_id)
    else:
        amount_due_now, next_total = 0, invoice.total
    return ChangeAmounts(
        currency=sub.currency,
        proration_date=proration_date,
        proration_behavior=behavior,
        proration_lines=lines,
        amount_due_now=amount_due_now,
        next_invoice_total=next_total,
    )


async def change_subscription(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    subscription_id: uuid.UUID,
    quantity: int | None,
    price_id: uuid.UUID | None,
    proration_date: datetime | None,
    behavior: ProrationBehavior,
    idempotency_key: str | None,
) -> Changed:
    payload = {
        "subscription": str(subscription_id),
        "quantity": quantity,
        "price": str(price_id) if price_id else None,
        "proration_date": proration_date.isoformat() if proration_date else None,
        "proration_behavior": behavior.value,
    }
    mk = MutationKey.of(actor, "changeSubscription", idempotency_key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        return await _replayed(session, previous)
    sub = await get_subscription_for_update(session, subscription_id)
    plan = await _plan_change(session, gateway, sub, quantity, price_id, behavior)
    if proration_date is None:
        proration_date = _default_proration_date(sub)
    elif not sub.current_period_start <= proration_date <= sub.current_period_end:
        raise Invalid("`prorationDate` must be within the current billing period", field="prorationDate")
    before = subscription_snapshot(sub, await _items(session, sub))
    params: SubscriptionUpdateParams = {
        "items": [_update_item(plan)],
        "proration_behavior": behavior.stripe,
        "proration_date": to_timestamp(proration_date),
        # a declined charge for an immediate invoice refuses the change (nothing half-applied)
        "payment_behavior": "error_if_incomplete",
        "expand": ["latest_invoice"],
    }
    remote = await gateway.update_subscription(
        plan.stripe_subscription_id, params, idempotency_key=mk.stripe_key("update"), fields=SUBSCRIPTION_FIELDS
    )
    await mirror_subscription(session, sub, remote)
    latest = remote.latest_invoice
    # the invoice this change produced (a replayed answer names the same one)
    new_invoice = (
        latest
        if latest is not None and not isinstance(latest, str) and latest.billing_reason == "subscription_update"
        else None
    )
    if plan.invoices_now and new_invoice is not None:
        lines = [line for line in invoice_lines(new_invoice) if line.proration]
        amount_due_now = new_invoice.amount_due
        next_total = await _next_invoice_total(gateway, None, plan.stripe_subscription_id)
    else:
        upcoming = await gateway.preview_invoice({"subscription": plan.stripe_subscription_id})
        lines = [line for line in invoice_lines(upcoming) if line.proration]
        amount_due_now, next_total = 0, upcoming.total
    amounts = ChangeAmounts(
        currency=sub.currency,
        proration_date=proration_date,
        proration_behavior=behavior,
        proration_lines=lines,
        amount_due_now=amount_due_now,
        next_invoice_total=next_total,
    )
    return await _finish(session, actor, mk, sub, before, amounts)


# --- cancel, reactivate, pause, resume, trial --------------------------------------------------------


async def _start(
    session: AsyncSession, actor: Actor, mutation: str, subscription_id: uuid.UUID, key: str | None, **input: Any
) -> tuple[MutationKey, Changed | None, Subscription | None, dict[str, Any] | None]:
    payload = {"subscription": str(subscription_id), **{k: _jsonable(v) for k, v in input.items()}}
    mk = MutationKey.of(actor, mutation, key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        return mk, await _replayed(session, previous), None, None
    sub = await get_subscription_for_update(session, subscription_id)
    return mk, None, sub, subscription_snapshot(sub, await _items(session, sub))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


async def cancel_subscription(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    subscription_id: uuid.UUID,
    at_period_end: bool,
    idempotency_key: str | None,
) -> Changed:
    mk, replay, sub, before = await _start(
        session, actor, "cancelSubscription", subscription_id, idempotency_key, at_period_end=at_period_end
    )
    if replay is not None:
        return replay
    assert sub is not None
    stripe_id = _require_live(sub)
    if at_period_end:
        remote = await gateway.update_subscription(
            stripe_id, {"cancel_at_period_end": True}, idempotency_key=mk.stripe_key("cancel-at-period-end")
        )
    else:
        remote = await gateway.cancel_subscription(stripe_id, {}, idempotency_key=mk.stripe_key("cancel"))
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, before)


async def reactivate_subscription(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, subscription_id: uuid.UUID, idempotency_key: str | None
) -> Changed:
    """Undo a pending cancellation (cancel at period end)."""
    mk, replay, sub, before = await _start(session, actor, "reactivateSubscription", subscription_id, idempotency_key)
    if replay is not None:
        return replay
    assert sub is not None
    stripe_id = _require_live(sub)
    if not sub.cancel_at_period_end:
        raise Invalid("this subscription has no pending cancellation", field="subscription")
    remote = await gateway.update_subscription(
        stripe_id, {"cancel_at_period_end": False}, idempotency_key=mk.stripe_key("reactivate")
    )
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, before)


async def pause_subscription(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    subscription_id: uuid.UUID,
    behavior: PauseBehavior,
    resumes_at: datetime | None,
    idempotency_key: str | None,
) -> Changed:
    """Pause collection (`pause_collection`): the subscription stays active, its invoices are
    kept as drafts, marked uncollectible or voided until it resumes."""
    mk, replay, sub, before = await _start(
        session,
        actor,
        "pauseSubscription",
        subscription_id,
        idempotency_key,
        behavior=behavior,
        resumes_at=resumes_at,
    )
    if replay is not None:
        return replay
    assert sub is not None
    stripe_id = _require_live(sub)
    if resumes_at is not None and resumes_at <= utcnow():
        raise Invalid("`resumesAt` must be in the future", field="resumesAt")
    pause: Any = {"behavior": behavior.value.lower()}
    if resumes_at is not None:
        pause["resumes_at"] = to_timestamp(resumes_at)
    remote = await gateway.update_subscription(
        stripe_id, {"pause_collection": pause}, idempotency_key=mk.stripe_key("pause"), fields=SUBSCRIPTION_FIELDS
    )
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, before)


async def resume_subscription(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, subscription_id: uuid.UUID, idempotency_key: str | None
) -> Changed:
    """Resume collection; a subscription Stripe paused (trial ended without a payment method) is
    resumed with Stripe's resume endpoint."""
    mk, replay, sub, before = await _start(session, actor, "resumeSubscription", subscription_id, idempotency_key)
    if replay is not None:
        return replay
    assert sub is not None
    stripe_id = _require_live(sub)
    if sub.pause_behavior is not None:
        remote = await gateway.update_subscription(
            stripe_id, {"pause_collection": ""}, idempotency_key=mk.stripe_key("resume")
        )
    elif sub.status is SubscriptionStatus.PAUSED:
        remote = await gateway.resume_subscription(stripe_id, {}, idempotency_key=mk.stripe_key("resume"))
    else:
        raise Invalid("this subscription is not paused", field="subscription")
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, before)


async def extend_trial(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    subscription_id: uuid.UUID,
    until: datetime,
    idempotency_key: str | None,
) -> Changed:
    mk, replay, sub, before = await _start(session, actor, "extendTrial", subscription_id, idempotency_key, until=until)
    if replay is not None:
        return replay
    assert sub is not None
    stripe_id = _require_live(sub)
    if sub.status is not SubscriptionStatus.TRIALING or sub.trial_end is None:
        raise Invalid("this subscription is not in a trial", field="subscription")
    if until <= sub.trial_end:
        raise Invalid(f"`until` must be later than the current trial end ({sub.trial_end.isoformat()})", field="until")
    if until > utcnow() + timedelta(days=MAX_TRIAL_DAYS):
        raise Invalid(f"`until` must be within {MAX_TRIAL_DAYS} days", field="until")
    remote = await gateway.update_subscription(
        stripe_id,
        {"trial_end": to_timestamp(until), "proration_behavior": "none"},
        idempotency_key=mk.stripe_key("trial"),
        fields=SUBSCRIPTION_FIELDS,
    )
    await mirror_subscription(session, sub, remote)
    return await _finish(session, actor, mk, sub, before)
