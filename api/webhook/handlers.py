"""One handler per Stripe event type: apply the event's object to the local mirror.

Rules every handler follows:
- Out of order is safe: an event older (`created`) than what a row last applied
  (`stripe_updated_at`) changes nothing. Same second: invoices never move backwards in their
  life (draft → open → uncollectible → paid/void); other objects apply in arrival order.
- Idempotent: applying the same event twice gives the same rows (upserts keyed by Stripe ids).
- An object made by a Ledgerline mutation names its local row in `metadata`; when that row is not
  committed yet, the handler raises `NotYetKnown` and the event is retried later (creating the row
  here would collide with the mutation's own insert)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.dunning.cases import open_case, recover_case
from api.invoice.models import Invoice, Payment, Refund
from api.stripe.invoice_mirror import (
    INVOICE_PROGRESS,
    charge_references,
    charge_refunds,
    embedded_payments,
    invoice_customer_id,
    invoice_status,
    metadata_value,
    mirror_invoice,
    mirror_payments,
    mirror_refund,
    payment_of_refund,
    refund_references,
    stripe_ref,
    update_amount_refunded,
)
from api.stripe.mirror import at, mirror_payment_method, mirror_subscription
from api.stripe.webhooks import StripeRefund, as_charge, as_customer, as_invoice, as_refund, as_subscription
from api.subscription.models import Subscription


class NotYetKnown(Exception):
    """The event refers to something not in Ledgerline yet (its creating mutation or an earlier
    event has not landed): retried later."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What a handler did: `stale` when the event was older than the stored state."""

    customer_id: uuid.UUID | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class EventData:
    """What a handler gets: the event's object, Stripe's `created`, and for *.updated events the
    previous values of the fields that changed (`data.previous_attributes`), when Stripe sent them."""

    object: dict[str, Any]
    created: datetime
    previous: dict[str, Any] | None = None

    def changed(self, field: str) -> bool:
        return self.previous is None or field in self.previous


Handler = Callable[[AsyncSession, EventData], Awaitable[Applied]]


def is_stale(stored: datetime | None, created: datetime) -> bool:
    return stored is not None and created < stored


async def _customer_by_stripe_id(
    session: AsyncSession, stripe_customer_id: str | None, *, for_update: bool = False
) -> Customer | None:
    if stripe_customer_id is None:
        return None
    stmt = select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)
    return (await session.execute(stmt.with_for_update() if for_update else stmt)).scalar_one_or_none()


async def _require_customer(session: AsyncSession, stripe_customer_id: str | None) -> Customer:
    customer = await _customer_by_stripe_id(session, stripe_customer_id)
    if customer is None:
        raise NotYetKnown(f"Stripe customer {stripe_customer_id} is not in Ledgerline yet")
    return customer


def _linked_id(obj: Any, key: str) -> uuid.UUID | None:
    value = metadata_value(obj, key)
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


# --- customers ---------------------------------------------------------------------------------------


async def _find_or_create_customer(session: AsyncSession, obj: dict[str, Any]) -> Customer:
    remote = as_customer(obj)
    customer = await _customer_by_stripe_id(session, remote.id, for_update=True)
    if customer is not None:
        return customer
    linked = _linked_id(remote, "ledgerline_customer_id")
    if linked is not None:
        customer = await session.get(Customer, linked, with_for_update=True)
        if customer is None:
            raise NotYetKnown(f"customer {linked} (named by Stripe customer {remote.id}) is not committed yet")
        customer.stripe_customer_id = remote.id
        return customer
    # made directly in Stripe (dashboard, another system): Stripe is the source of truth
    customer = Customer(
        name=(remote.name or remote.email or remote.id)[:200],
        tier=CustomerTier.KICKSTART,
        status=CustomerStatus.ACTIVE,
        internal_team=False,
        currency=(remote.currency or "usd").lower(),
        stripe_customer_id=remote.id,
    )
    session.add(customer)
    await session.flush()
    return customer


async def customer_changed(session: AsyncSession, data: EventData) -> Applied:
    obj, created = data.object, data.created
    """customer.created / customer.updated: contact details and the default card."""
    customer = await _find_or_create_customer(session, obj)
    if is_stale(customer.stripe_updated_at, created):
        return Applied(customer.id, stale=True)
    remote = as_customer(obj)
    # only what this event changed: a field cleared here but kept by Stripe (Stripe refuses an
    # empty email) is not brought back by the echo of another change
    if remote.name and data.changed("name"):
        customer.name = remote.name[:200]
    if data.changed("email"):
        customer.email = remote.email
    if data.changed("phone"):
        customer.phone = remote.phone
    if data.changed("address"):
        address = remote.address
        customer.address_line1 = address.line1 if address else None
        customer.address_line2 = address.line2 if address else None
        customer.address_city = address.city if address else None
        customer.address_state = address.state if address else None
        customer.address_postal_code = address.postal_code if address else None
        customer.address_country = address.country if address else None
    if remote.invoice_settings is not None and data.changed("invoice_settings"):
        mirror_payment_method(customer, remote.invoice_settings.default_payment_method)
    customer.stripe_updated_at = created
    await session.flush()
    return Applied(customer.id)


async def customer_deleted(session: AsyncSession, data: EventData) -> Applied:
    obj, created = data.object, data.created
    customer = await _customer_by_stripe_id(session, as_customer(obj).id, for_update=True)
    if customer is None:
        return Applied()  # never mirrored: nothing to close
    if is_stale(customer.stripe_updated_at, created):
        return Applied(customer.id, stale=True)
    customer.status = CustomerStatus.CANCELED
    customer.stripe_updated_at = created
    await session.flush()
    return Applied(customer.id)


# --- subscriptions --------------------------------------------------------------------------------


async def subscription_changed(session: AsyncSession, data: EventData) -> Applied:
    obj, created = data.object, data.created
    """customer.subscription.created/updated/deleted/paused/resumed/trial_will_end: the whole
    subscription as Stripe sent it (status, period, trial, cancellation, pause, items)."""
    remote = as_subscription(obj)
    sub = (
        await session.execute(
            select(Subscription).where(Subscription.stripe_subscription_id == remote.id).with_for_update()
        )
    ).scalar_one_or_none()
    if sub is None:
        linked = _linked_id(remote, "ledgerline_subscription_id")
        if linked is not None:
            sub = await session.get(Subscription, linked, with_for_update=True)
            if sub is None:
                raise NotYetKnown(f"subscription {linked} (named by {remote.id}) is not committed yet")
        else:
            customer = await _require_customer(session, stripe_ref(remote.customer))
            sub = Subscription(customer_id=customer.id)
            session.add(sub)
    if is_stale(sub.stripe_updated_at, created):
        return Applied(sub.customer_id, stale=True)
    await mirror_subscription(session, sub, remote, effective_at=created)
    sub.stripe_updated_at = created
    await session.flush()
    return Applied(sub.customer_id)


# --- invoices ---------------------------------------------------------------------------------------


async def invoice_changed(session: AsyncSession, data: EventData) -> Applied:
    obj, created = data.object, data.created
    """invoice.created/finalized/paid/payment_failed/voided/marked_uncollectible: the invoice,
    its lines and its payments."""
    remote = as_invoice(obj)
    invoice = (
        await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == remote.id).with_for_update())
    ).scalar_one_or_none()
    if invoice is None:
        linked = _linked_id(remote, "ledgerline_invoice_id")
        if linked is not None:
            invoice = await session.get(Invoice, linked, with_for_update=True)
            if invoice is None:
                raise NotYetKnown(f"invoice {linked} (named by {remote.id}) is not committed yet")
        else:
            customer = await _require_customer(session, invoice_customer_id(remote))
            invoice = Invoice(customer_id=customer.id, status=invoice_status(remote), currency=remote.currency)
            session.add(invoice)
    elif (
        created == invoice.stripe_updated_at
        and INVOICE_PROGRESS[invoice_status(remote)] < INVOICE_PROGRESS[invoice.status]
    ):
        return Applied(invoice.customer_id, stale=True)  # same second, earlier in the invoice's life
    if is_stale(invoice.stripe_updated_at, created):
        return Applied(invoice.customer_id, stale=True)
    await mirror_invoice(session, invoice, remote, as_of=created)
    await mirror_payments(session, invoice, embedded_payments(remote))
    return Applied(invoice.customer_id)


async def invoice_payment_failed(session: AsyncSession, data: EventData) -> Applied:
    """The invoice as for every invoice event, then its dunning case (opened once per invoice)."""
    applied = await invoice_changed(session, data)
    await open_case(session, as_invoice(data.object).id, data.created)
    return applied


async def invoice_paid(session: AsyncSession, data: EventData) -> Applied:
    """The invoice, then its dunning case (if any) is recovered and its pending steps dropped."""
    applied = await invoice_changed(session, data)
    await recover_case(session, as_invoice(data.object).id, data.created)
    return applied


# --- refunds ------------------------------------------------------------------------------------------


async def _apply_refund(session: AsyncSession, payment: Payment, remote: StripeRefund) -> None:
    linked = _linked_id(remote, "ledgerline_refund_id")  # made by refundInvoice
    if linked is not None and await session.get(Refund, linked) is None:
        raise NotYetKnown(f"refund {linked} (named by {remote.id}) is not committed yet")
    await mirror_refund(session, payment, remote)


async def refund_created(session: AsyncSession, data: EventData) -> Applied:
    remote = as_refund(data.object)
    payment = await payment_of_refund(session, *refund_references(remote))
    if payment is None or payment.invoice_id is None:
        raise NotYetKnown(f"the payment refunded by {remote.id} is not in Ledgerline yet")
    await _apply_refund(session, payment, remote)
    await update_amount_refunded(session, payment.invoice_id)
    return Applied(payment.customer_id)


async def charge_refunded(session: AsyncSession, data: EventData) -> Applied:
    remote = as_charge(data.object)
    payment = await payment_of_refund(session, *charge_references(remote))
    if payment is None or payment.invoice_id is None:
        raise NotYetKnown(f"the payment of charge {remote.id} is not in Ledgerline yet")
    for refund in charge_refunds(remote):
        await _apply_refund(session, payment, refund)
    await update_amount_refunded(session, payment.invoice_id, at_least=remote.amount_refunded)
    return Applied(payment.customer_id)


HANDLERS: dict[str, Handler] = {
    "customer.created": customer_changed,
    "customer.updated": customer_changed,
    "customer.deleted": customer_deleted,
    **{
        f"customer.subscription.{kind}": subscription_changed
        for kind in ("created", "updated", "deleted", "trial_will_end", "paused", "resumed")
    },
    **{
        f"invoice.{kind}": invoice_changed
        for kind in ("created", "finalized", "paid", "payment_failed", "voided", "marked_uncollectible")
    },
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.paid": invoice_paid,
    "charge.refunded": charge_refunded,
    "refund.created": refund_created,
}


def event_time(created: int) -> datetime:
    return at(created)
