"""Write Stripe invoices (with their lines and payments) and refunds into the local mirror.

Used by the webhook inbox; callers find or create the local row and decide whether the Stripe
object is newer than what is stored (see api/webhook/handlers.py). Named apart from any
mutation-side invoice mirroring, which another change owns."""

from __future__ import annotations

import uuid
from typing import Any

import stripe
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, PaymentStatus, Refund, RefundStatus
from api.stripe.mirror import from_timestamp, is_proration

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


def _id(value: Any) -> str | None:
    """A Stripe reference: an id, or an expanded object's id."""
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def invoice_status(remote: stripe.Invoice) -> InvoiceStatus:
    return INVOICE_STATUS.get(remote.status or "draft", InvoiceStatus.DRAFT)


def invoice_customer_id(remote: stripe.Invoice) -> str | None:
    return _id(remote.customer)


def invoice_subscription_id(remote: stripe.Invoice) -> str | None:
    parent = remote.parent
    if parent is None or parent.subscription_details is None:
        return None
    return _id(parent.subscription_details.subscription)


def metadata_value(remote: stripe.StripeObject, key: str) -> str | None:
    metadata = remote.to_dict().get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


async def mirror_invoice(session: AsyncSession, local: Invoice, remote: stripe.Invoice) -> None:
    """Amounts, status, dates, URLs, collection attempts; then lines and payments."""
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
    await session.flush()
    await _mirror_lines(session, local, remote)
    await _mirror_payments(session, local, remote)


async def _mirror_lines(session: AsyncSession, local: Invoice, remote: stripe.Invoice) -> None:
    remote_lines = list(remote.lines.data)
    if remote.lines.has_more:
        return  # a partial list would drop lines: keep what is stored (reconciliation fetches all)
    price_ids = {
        _id(line.pricing.price_details.price)
        for line in remote_lines
        if line.pricing is not None and line.pricing.price_details is not None
    }
    prices = {
        p.stripe_price_id: p.id
        for p in (await session.execute(select(Price).where(Price.stripe_price_id.in_(price_ids - {None})))).scalars()
    }
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == local.id))
    for position, line in enumerate(remote_lines):
        details = line.pricing.price_details if line.pricing is not None else None
        session.add(
            InvoiceLine(
                invoice_id=local.id,
                description=(line.description or "")[:500],
                amount=line.amount,
                currency=line.currency,
                quantity=line.quantity if line.quantity is not None else 1,
                price_id=prices.get(_id(details.price)) if details is not None else None,
                period_start=from_timestamp(line.period.start) if line.period else None,
                period_end=from_timestamp(line.period.end) if line.period else None,
                proration=is_proration(line),
                position=position,
                stripe_line_id=line.id,
            )
        )
    await session.flush()


async def _mirror_payments(session: AsyncSession, local: Invoice, remote: stripe.Invoice) -> None:
    """One Payment per Stripe payment (PaymentIntent) of the invoice: SUCCEEDED once paid,
    FAILED while its attempts failed."""
    if remote.payments is None:
        return
    for invoice_payment in remote.payments.data:
        intent_id = _id(invoice_payment.payment.payment_intent)
        charge_id = _id(invoice_payment.payment.charge)
        if invoice_payment.status == "paid":
            status = PaymentStatus.SUCCEEDED
        elif remote.attempt_count > 0:
            status = PaymentStatus.FAILED
        else:
            continue  # no attempt yet: nothing happened to record
        conditions = []
        if intent_id:
            conditions.append(Payment.stripe_payment_intent_id == intent_id)
        if charge_id:
            conditions.append(Payment.stripe_charge_id == charge_id)
        if not conditions:
            continue
        payment = (
            await session.execute(select(Payment).where(Payment.invoice_id == local.id, or_(*conditions)).limit(1))
        ).scalar_one_or_none()
        if payment is None:
            payment = Payment(invoice_id=local.id, customer_id=local.customer_id)
            session.add(payment)
        payment.amount = invoice_payment.amount_paid or invoice_payment.amount_requested
        payment.currency = invoice_payment.currency
        payment.status = status
        payment.stripe_payment_intent_id = intent_id or payment.stripe_payment_intent_id
        payment.stripe_charge_id = charge_id or payment.stripe_charge_id
        if status is PaymentStatus.SUCCEEDED:
            payment.failure_code = payment.failure_message = None
    await session.flush()


# --- refunds ---------------------------------------------------------------------------------------


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
    return _id(remote.charge), _id(remote.payment_intent)


def charge_references(remote: stripe.Charge) -> tuple[str | None, str | None]:
    return remote.id, _id(remote.payment_intent)


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
    refund.status = REFUND_STATUS.get(remote.status or "pending", RefundStatus.PENDING)
    charge_id = _id(remote.charge)
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
