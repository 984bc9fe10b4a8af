"""Write Stripe invoices, their lines, payments and refunds into the local mirror, from the
answers of the invoice mutations (api/invoice/commands.py). The webhook inbox has its own
event-driven mirror in api/stripe/event_mirror.py (it also orders events by age)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import stripe
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price
from api.db import utcnow
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, PaymentStatus, RefundStatus
from api.stripe.mirror import from_timestamp, is_proration
from api.subscription.models import Subscription

INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}
REFUND_STATUS: dict[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


def _id(value: object) -> str | None:
    """A Stripe reference: an id, or an expanded object's id."""
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


async def mirror_invoice(
    session: AsyncSession, local: Invoice, remote: stripe.Invoice, lines: list[stripe.InvoiceLineItem]
) -> None:
    """Status, number, amounts, URLs, dates, payment attempts and the lines (replaced as a whole:
    a Stripe invoice's lines only change while it is a draft)."""
    local.stripe_invoice_id = remote.id
    local.status = INVOICE_STATUS.get(remote.status or "draft", InvoiceStatus.DRAFT)
    local.number = remote.number
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
    transitions = remote.status_transitions
    local.finalized_at = from_timestamp(transitions.finalized_at)
    local.paid_at = from_timestamp(transitions.paid_at)
    local.voided_at = from_timestamp(transitions.voided_at)
    details = remote.parent.subscription_details if remote.parent is not None else None
    if details is not None and local.subscription_id is None:
        local.subscription_id = (
            await session.execute(
                select(Subscription.id).where(Subscription.stripe_subscription_id == _id(details.subscription))
            )
        ).scalar_one_or_none()
    local.stripe_updated_at = utcnow().replace(microsecond=0)
    await session.flush()
    await _mirror_lines(session, local, lines)


async def _mirror_lines(session: AsyncSession, local: Invoice, lines: list[stripe.InvoiceLineItem]) -> None:
    def stripe_price(line: stripe.InvoiceLineItem) -> str | None:
        details = line.pricing.price_details if line.pricing is not None else None
        return _id(details.price) if details is not None else None

    stripe_price_ids = {price for line in lines if (price := stripe_price(line)) is not None}
    prices: dict[str | None, uuid.UUID] = {}
    if stripe_price_ids:
        rows = await session.execute(
            select(Price.stripe_price_id, Price.id).where(Price.stripe_price_id.in_(stripe_price_ids))
        )
        prices = {stripe_id: local_id for stripe_id, local_id in rows.tuples()}
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


@dataclass(frozen=True, slots=True)
class PaidPayment:
    """A payment Stripe collected for an invoice."""

    amount: int
    currency: str
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None


def paid_payments(payments: list[stripe.InvoicePayment]) -> list[PaidPayment]:
    return [
        PaidPayment(
            amount=p.amount_paid or 0,
            currency=p.currency,
            stripe_payment_intent_id=_id(p.payment.payment_intent),
            stripe_charge_id=_id(p.payment.charge),
        )
        for p in payments
        if p.status == "paid"
    ]


async def mirror_payments(session: AsyncSession, invoice: Invoice, payments: list[PaidPayment]) -> list[Payment]:
    """One SUCCEEDED Payment per paid Stripe payment of the invoice (matched on the PaymentIntent
    or the charge, so a payment the webhook inbox mirrored first is not doubled)."""
    existing = list(
        (
            await session.execute(
                select(Payment).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
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
            row = Payment(
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                amount=paid.amount,
                currency=paid.currency,
                status=PaymentStatus.SUCCEEDED,
                stripe_payment_intent_id=paid.stripe_payment_intent_id,
                stripe_charge_id=paid.stripe_charge_id,
            )
            session.add(row)
        rows.append(row)
    await session.flush()
    return rows


def refund_status(remote: stripe.Refund) -> RefundStatus:
    return REFUND_STATUS.get(remote.status or "pending", RefundStatus.PENDING)
