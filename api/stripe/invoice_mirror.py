"""Write Stripe invoices (with their lines and payments) and refunds into the local mirror.

The one mapping of a Stripe invoice onto the local rows, used by the webhook inbox
(api/webhook/handlers.py, and through it reconciliation) and by the invoice mutations
(api/invoice/commands.py). Callers find or create the local row and decide whether the Stripe
object is newer than what is stored; `as_of` is the time the mirror then holds Stripe's state at
(the event's `created`, or now for Stripe's answer to a mutation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, PaymentStatus, Refund, RefundStatus
from api.stripe.mirror import from_timestamp, is_proration
from api.subscription.models import Subscription

INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}
# How far along its life an invoice is: two events of the same second never move it backwards.
INVOICE_PROGRESS: dict[InvoiceStatus, int] = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.PAID: 3,
    InvoiceStatus.VOID: 3,
}
REFUND_STATUS: dict[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


def stripe_ref(value: Any) -> str | None:
    """A Stripe reference: an id, or an expanded object's id."""
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def invoice_status(remote: stripe.Invoice) -> InvoiceStatus:
    return INVOICE_STATUS.get(remote.status or "draft", InvoiceStatus.DRAFT)


def invoice_customer_id(remote: stripe.Invoice) -> str | None:
    return stripe_ref(remote.customer)


def invoice_subscription_id(remote: stripe.Invoice) -> str | None:
    parent = remote.parent
    if parent is None or parent.subscription_details is None:
        return None
    return stripe_ref(parent.subscription_details.subscription)


def metadata_value(remote: stripe.StripeObject, key: str) -> str | None:
    metadata = remote.to_dict().get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


# --- invoices and their lines ------------------------------------------------------------------------


async def mirror_invoice(
    session: AsyncSession,
    local: Invoice,
    remote: stripe.Invoice,
    *,
    as_of: datetime,
    lines: list[stripe.InvoiceLineItem] | None = None,
) -> None:
    """Status, number, amounts, URLs, dates, payment attempts, the subscription it bills, and the
    lines (replaced as a whole: a Stripe invoice's lines only change while it is a draft). Without
    `lines`, the invoice's embedded list is used when it is complete; a partial one keeps what is
    stored (a caller that fetched every line passes them). Payments: see `mirror_payments`."""
    transitions = remote.status_transitions
    local.stripe_invoice_id = remote.id
    local.number = remote.number
    local.status = invoice_status(remote)
    local.currency = remote.currency
    local.subtotal = remote.subtotal
    local.total = remote.total
    local.amount_due = remote.amount_due
    local.amount_paid = remote.amount_paid
    local.amount_remaining = remote.amount_remaining
    local.hosted_invoice_url = remote.hosted_invoice_url
    local.invoice_pdf_url = remote.invoice_pdf
    local.due_date = from_timestamp(remote.due_date)
    local.period_start = from_timestamp(remote.period_start)
    local.period_end = from_timestamp(remote.period_end)
    local.attempt_count = remote.attempt_count
    local.next_payment_attempt = from_timestamp(remote.next_payment_attempt)
    local.finalized_at = from_timestamp(transitions.finalized_at)
    local.paid_at = from_timestamp(transitions.paid_at)
    local.voided_at = from_timestamp(transitions.voided_at)
    if local.subscription_id is None and (stripe_sub := invoice_subscription_id(remote)) is not None:
        local.subscription_id = (
            await session.execute(select(Subscription.id).where(Subscription.stripe_subscription_id == stripe_sub))
        ).scalar_one_or_none()
    local.stripe_updated_at = as_of
    await session.flush()
    if lines is None and not remote.lines.has_more:
        lines = list(remote.lines.data)
    if lines is not None:
        await _mirror_lines(session, local, lines)


async def _mirror_lines(session: AsyncSession, local: Invoice, lines: list[stripe.InvoiceLineItem]) -> None:
    def stripe_price(line: stripe.InvoiceLineItem) -> str | None:
        details = line.pricing.price_details if line.pricing is not None else None
        return stripe_ref(details.price) if details is not None else None

    stripe_price_ids = {price for line in lines if (price := stripe_price(line)) is not None}
    prices: dict[str | None, uuid.UUID] = {}
    if stripe_price_ids:
        rows = await session.execute(
            select(Price.stripe_price_id, Price.id).where(Price.stripe_price_id.in_(stripe_price_ids))
        )
        prices = {stripe_id: local_id for stripe_id, local_id in rows}
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == local.id))
    for position, line in enumerate(lines):
        session.add(
            InvoiceLine(
                invoice_id=local.id,
                description=(line.description or "")[:500],
                amount=line.amount,
                currency=line.currency,
                quantity=line.quantity if line.quantity is not None else 1,
                price_id=prices.get(stripe_price(line)),
                period_start=from_timestamp(line.period.start) if line.period else None,
                period_end=from_timestamp(line.period.end) if line.period else None,
                proration=is_proration(line),
                position=position,
                stripe_line_id=line.id,
            )
        )
    await session.flush()


# --- payments ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripePayment:
    """What one Stripe payment (PaymentIntent or charge) of an invoice came to."""

    amount: int
    currency: str
    status: PaymentStatus
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None


def invoice_payments(payments: Iterable[stripe.InvoicePayment], *, attempted: bool = False) -> list[StripePayment]:
    """SUCCEEDED once paid; FAILED while unpaid after a collection attempt (`attempted`: the
    invoice's attempt_count is above 0); a payment not attempted yet, or naming neither a
    PaymentIntent nor a charge, is left out (nothing to record, nothing to match it on)."""
    found = []
    for p in payments:
        if p.status == "paid":
            status = PaymentStatus.SUCCEEDED
        elif attempted:
            status = PaymentStatus.FAILED
        else:
            continue
        intent_id, charge_id = stripe_ref(p.payment.payment_intent), stripe_ref(p.payment.charge)
        if intent_id or charge_id:
            found.append(StripePayment(p.amount_paid or p.amount_requested, p.currency, status, intent_id, charge_id))
    return found


def embedded_payments(remote: stripe.Invoice) -> list[StripePayment]:
    """The payments an invoice object lists itself (when Stripe included them)."""
    if remote.payments is None:
        return []
    return invoice_payments(remote.payments.data, attempted=remote.attempt_count > 0)


async def mirror_payments(session: AsyncSession, invoice: Invoice, payments: list[StripePayment]) -> list[Payment]:
    """One Payment per Stripe payment of the invoice, matched on the PaymentIntent or the charge
    (so the webhook inbox and the mutations never double one); returns the rows, in order."""
    existing = list(
        (
            await session.execute(
                select(Payment)
                .where(Payment.invoice_id == invoice.id)
                .order_by(Payment.status != PaymentStatus.SUCCEEDED, Payment.created_at, Payment.id)
            )
        ).scalars()
    )
    rows = []
    for paid in payments:
        row = next(
            (
                p
                for p in existing
                if (paid.stripe_payment_intent_id and p.stripe_payment_intent_id == paid.stripe_payment_intent_id)
                or (paid.stripe_charge_id and p.stripe_charge_id == paid.stripe_charge_id)
            ),
            None,
        )
        if row is None:
            row = Payment(invoice_id=invoice.id, customer_id=invoice.customer_id)
            session.add(row)
            existing.append(row)
        row.amount = paid.amount
        row.currency = paid.currency
        row.status = paid.status
        row.stripe_payment_intent_id = paid.stripe_payment_intent_id or row.stripe_payment_intent_id
        row.stripe_charge_id = paid.stripe_charge_id or row.stripe_charge_id
        if paid.status is PaymentStatus.SUCCEEDED:
            row.failure_code = row.failure_message = None
        rows.append(row)
    await session.flush()
    return rows


# --- refunds -----------------------------------------------------------------------------------------


def refund_status(remote: stripe.Refund) -> RefundStatus:
    return REFUND_STATUS.get(remote.status or "pending", RefundStatus.PENDING)


async def payment_of_refund(session: AsyncSession, charge_id: str | None, intent_id: str | None) -> Payment | None:
    conditions = []
    if charge_id:
        conditions.append(Payment.stripe_charge_id == charge_id)
    if intent_id:
        conditions.append(Payment.stripe_payment_intent_id == intent_id)
    if not conditions:
        return None
    return (
        await session.execute(
            select(Payment).where(or_(*conditions), Payment.invoice_id.is_not(None)).order_by(Payment.id).limit(1)
        )
    ).scalar_one_or_none()


def refund_references(remote: stripe.Refund) -> tuple[str | None, str | None]:
    return stripe_ref(remote.charge), stripe_ref(remote.payment_intent)


def charge_references(remote: stripe.Charge) -> tuple[str | None, str | None]:
    return remote.id, stripe_ref(remote.payment_intent)


async def mirror_refund(session: AsyncSession, payment: Payment, remote: stripe.Refund) -> Refund:
    assert payment.invoice_id is not None
    refund = (await session.execute(select(Refund).where(Refund.stripe_refund_id == remote.id))).scalar_one_or_none()
    if refund is None:
        refund = Refund(invoice_id=payment.invoice_id, stripe_refund_id=remote.id)
        session.add(refund)
    refund.payment_id = payment.id
    refund.amount = remote.amount
    refund.currency = remote.currency
    refund.reason = refund.reason or remote.reason
    refund.status = refund_status(remote)
    charge_id = stripe_ref(remote.charge)
    if payment.stripe_charge_id is None and charge_id is not None:
        payment.stripe_charge_id = charge_id
    await session.flush()
    return refund


def charge_refunds(remote: stripe.Charge) -> list[stripe.Refund]:
    """The refunds a charge.refunded event lists (Stripe includes them only when expanded)."""
    return list(remote.refunds.data) if remote.refunds is not None else []


async def update_amount_refunded(session: AsyncSession, invoice_id: uuid.UUID, at_least: int = 0) -> Invoice:
    """The invoice's refunded amount: its succeeded refunds, or what Stripe reported if more
    (a charge.refunded event without its refund list). Never decreases."""
    invoice = await session.get(Invoice, invoice_id, with_for_update=True)
    assert invoice is not None
    refunded = (
        await session.execute(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.invoice_id == invoice_id, Refund.status == RefundStatus.SUCCEEDED
            )
        )
    ).scalar_one()
    invoice.amount_refunded = max(invoice.amount_refunded, int(refunded), at_least)
    await session.flush()
    return invoice
