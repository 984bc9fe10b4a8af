"""Invoice writes through Stripe: create (a draft with invoice items), finalize, send, void, pay
(retry a payment now), refund (full or partial), and customer credits (balance transactions).

Each mutation, as for customers and subscriptions: replay check (api/idempotency) → validate
(errors name the input field) and the permission policies that depend on amounts → Stripe (an
idempotency key per step) → mirror Stripe's answer → audit entry → remember the result. All in
the caller's transaction: a Stripe failure or a local failure leaves nothing behind locally.

One exception, as on Stripe: a declined payInvoice is an attempt that happened. Stripe keeps it
(attempt_count, next_payment_attempt), so the mirror keeps it too, with a FAILED payment and a
FAILURE audit entry, and the mutation returns the decline as a user error."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.models import AuditOutcome
from api.audit.record import Actor, record_audit
from api.auth.policies import check_refund_or_credit_amount
from api.auth.principal import Principal
from api.common.money import MoneyAmount, minor_to_decimal
from api.customer.commands import ensure_stripe_customer, get_customer_for_update
from api.customer.models import Customer
from api.db import utcnow
from api.errors import Invalid, NotFound, Rejected
from api.idempotency.service import MutationKey, previous_result, remember
from api.invoice.models import Invoice, InvoiceStatus, Payment, PaymentStatus, Refund
from api.stripe.gateway import StripeGateway
from api.stripe.invoice_mirror import invoice_payments, mirror_invoice, mirror_payments, refund_status
from api.stripe.params import InvoiceCreateParams, RefundCreateParams

MAX_ITEMS = 100
MAX_QUANTITY = 100_000
MAX_DUE_DAYS = 365
DEFAULT_DUE_DAYS = 30
MAX_REASON = 500


class CollectionMethod(enum.StrEnum):
    CHARGE_AUTOMATICALLY = "CHARGE_AUTOMATICALLY"  # charged to the default payment method (payInvoice)
    SEND_INVOICE = "SEND_INVOICE"  # emailed; the customer pays on the hosted page within dueDays

    @property
    def stripe(self) -> Any:
        return self.value.lower()


@dataclass(frozen=True, slots=True)
class NewInvoiceItem:
    description: str
    unit_amount: MoneyAmount
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class NewInvoice:
    customer_id: uuid.UUID
    items: list[NewInvoiceItem]
    collection_method: CollectionMethod = CollectionMethod.CHARGE_AUTOMATICALLY
    due_days: int | None = None
    description: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "customer": str(self.customer_id),
            "items": [
                {"description": i.description, "unit_amount": i.unit_amount.to_json(), "quantity": i.quantity}
                for i in self.items
            ],
            "collection_method": self.collection_method.value,
            "due_days": self.due_days,
            "description": self.description,
        }


@dataclass(slots=True)
class InvoiceOutcome:
    """What an invoice mutation returns: the invoice, the refund it made, or the payment decline
    (a user error that still changed the mirror, see the module docstring)."""

    invoice: Invoice
    refund: Refund | None = None
    error: Rejected | None = None


def invoice_snapshot(inv: Invoice) -> dict[str, Any]:
    return {
        "number": inv.number,
        "status": inv.status.value,
        "currency": inv.currency,
        "total": inv.total,
        "amount_due": inv.amount_due,
        "amount_paid": inv.amount_paid,
        "amount_remaining": inv.amount_remaining,
        "amount_refunded": inv.amount_refunded,
        "attempt_count": inv.attempt_count,
        "next_payment_attempt": inv.next_payment_attempt.isoformat() if inv.next_payment_attempt else None,
        "due_date": inv.due_date.isoformat() if inv.due_date else None,
        "stripe_invoice_id": inv.stripe_invoice_id,
    }


async def get_invoice_for_update(session: AsyncSession, invoice_id: uuid.UUID, field: str = "invoice") -> Invoice:
    invoice = await session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field=field)
    return invoice


def _require_stripe(invoice: Invoice) -> str:
    if invoice.stripe_invoice_id is None:
        raise Invalid("this invoice is not linked to Stripe", field="invoice")
    return invoice.stripe_invoice_id


def _error_json(error: Rejected | None) -> dict[str, Any] | None:
    return {"message": error.message, "code": error.reason, "field": error.field} if error else None


async def _replayed(session: AsyncSession, previous: dict[str, Any]) -> InvoiceOutcome:
    invoice = await get_invoice_for_update(session, uuid.UUID(previous["id"]))
    refund = await session.get(Refund, uuid.UUID(previous["refund"])) if previous.get("refund") else None
    error = previous.get("error")
    return InvoiceOutcome(
        invoice,
        refund,
        Rejected(error["message"], code=error["code"], field=error["field"]) if error else None,
    )


async def _finish(
    session: AsyncSession,
    actor: Actor,
    mk: MutationKey,
    invoice: Invoice,
    before: dict[str, Any] | None,
    *,
    refund: Refund | None = None,
    error: Rejected | None = None,
) -> InvoiceOutcome:
    after = invoice_snapshot(invoice)
    if refund is not None:
        after["refund"] = {
            "id": str(refund.id),
            "amount": refund.amount,
            "reason": refund.reason,
            "stripe_refund_id": refund.stripe_refund_id,
        }
    if error is not None:
        after["error"] = _error_json(error)
    await record_audit(
        session,
        actor,
        mk.mutation,
        "Invoice",
        str(invoice.id),
        before=before,
        after=after,
        outcome=AuditOutcome.FAILURE if error else AuditOutcome.SUCCESS,
    )
    await remember(
        session,
        mk,
        {"id": str(invoice.id), "refund": str(refund.id) if refund else None, "error": _error_json(error)},
    )
    return InvoiceOutcome(invoice, refund, error)


async def _refresh(session: AsyncSession, gateway: StripeGateway, invoice: Invoice, remote: Any) -> None:
    lines = await gateway.invoice_lines(remote)
    await mirror_invoice(session, invoice, remote, as_of=utcnow().replace(microsecond=0), lines=lines)


def _about_the_invoice(exc: Rejected) -> Rejected:
    """Stripe's refusal of an action on the invoice itself (no parameter) is about `invoice`."""
    if exc.field is None:
        exc.field = "invoice"
    return exc


# --- create --------------------------------------------------------------------------------------


def _item_fields(count: int) -> dict[str, str]:
    fields = {"customer": "customer", "days_until_due": "dueDays", "description": "description"}
    for i in range(count):
        fields[f"items[{i}]"] = f"items.{i}"
    return fields


def _validate_new_invoice(data: NewInvoice, currency: str) -> list[int]:
    """The unit amounts in minor units; every error names its input field."""
    if not 1 <= len(data.items) <= MAX_ITEMS:
        raise Invalid(f"give between 1 and {MAX_ITEMS} `items`", field="items")
    if data.due_days is not None:
        if data.collection_method is not CollectionMethod.SEND_INVOICE:
            raise Invalid("`dueDays` applies to SEND_INVOICE invoices only", field="dueDays")
        if not 1 <= data.due_days <= MAX_DUE_DAYS:
            raise Invalid(f"`dueDays` must be between 1 and {MAX_DUE_DAYS}", field="dueDays")
    if data.description is not None and len(data.description) > MAX_REASON:
        raise Invalid(f"`description` is longer than {MAX_REASON} characters", field="description")
    amounts = []
    for i, item in enumerate(data.items):
        if not item.description.strip():
            raise Invalid("`description` must not be empty", field=f"items.{i}.description")
        if len(item.description.strip()) > MAX_REASON:
            raise Invalid(f"`description` is longer than {MAX_REASON} characters", field=f"items.{i}.description")
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise Invalid(f"`quantity` must be between 1 and {MAX_QUANTITY}", field=f"items.{i}.quantity")
        minor = item.unit_amount.minor_units(f"items.{i}.unitAmount", currency)
        if minor <= 0:
            raise Invalid("`unitAmount` must be greater than zero", field=f"items.{i}.unitAmount.amount")
        amounts.append(minor)
    return amounts


async def create_invoice(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, data: NewInvoice, idempotency_key: str | None
) -> InvoiceOutcome:
    """A draft invoice in Stripe with one invoice item per line, mirrored locally with its lines.
    It is billed in the customer's currency; finalizeInvoice makes it payable."""
    mk = MutationKey.of(actor, "createInvoice", idempotency_key, data.payload())
    if (previous := await previous_result(session, mk)) is not None:
        return await _replayed(session, previous)
    customer = await get_customer_for_update(session, data.customer_id)
    amounts = _validate_new_invoice(data, customer.currency)
    stripe_customer_id = await ensure_stripe_customer(session, gateway, customer, mk.stripe_key("customer"))
    local_id = mk.local_id("invoice")
    fields = _item_fields(len(data.items))
    params: InvoiceCreateParams = {
        "customer": stripe_customer_id,
        "currency": customer.currency,
        "collection_method": data.collection_method.stripe,
        # Ledgerline finalizes and collects explicitly (finalizeInvoice, payInvoice)
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "metadata": {"ledgerline_invoice_id": str(local_id)},
    }
    if data.collection_method is CollectionMethod.SEND_INVOICE:
        params["days_until_due"] = data.due_days or DEFAULT_DUE_DAYS
    if data.description:
        params["description"] = data.description.strip()
    remote = await gateway.create_invoice(params, idempotency_key=mk.stripe_key("invoice"), fields=fields)
    assert remote.id is not None
    for i, (item, unit_minor) in enumerate(zip(data.items, amounts, strict=True)):
        await gateway.create_invoice_item(
            {
                "customer": stripe_customer_id,
                "invoice": remote.id,
                "currency": customer.currency,
                "unit_amount_decimal": Decimal(unit_minor),
                "quantity": item.quantity,
                "description": item.description.strip(),
                "metadata": {"ledgerline_invoice_id": str(local_id)},
            },
            idempotency_key=mk.stripe_key(f"item-{i}"),
            fields={
                "unit_amount_decimal": f"items.{i}.unitAmount",
                "quantity": f"items.{i}.quantity",
                "description": f"items.{i}.description",
                "currency": f"items.{i}.unitAmount.currency",
            },
        )
    remote = await gateway.retrieve_invoice(remote.id)
    invoice = Invoice(id=local_id, customer_id=customer.id, status=InvoiceStatus.DRAFT, currency=customer.currency)
    session.add(invoice)
    await _refresh(session, gateway, invoice, remote)
    return await _finish(session, actor, mk, invoice, None)


# --- finalize, send, void, pay ---------------------------------------------------------------------


async def _start(
    session: AsyncSession, actor: Actor, mutation: str, invoice_id: uuid.UUID, key: str | None
) -> tuple[MutationKey, InvoiceOutcome | None, Invoice | None, dict[str, Any] | None]:
    mk = MutationKey.of(actor, mutation, key, {"invoice": str(invoice_id)})
    if (previous := await previous_result(session, mk)) is not None:
        return mk, await _replayed(session, previous), None, None
    invoice = await get_invoice_for_update(session, invoice_id)
    return mk, None, invoice, invoice_snapshot(invoice)


async def _transition(
    session: AsyncSession,
    actor: Actor,
    invoice_id: uuid.UUID,
    idempotency_key: str | None,
    *,
    action: str,
    allowed: tuple[InvoiceStatus, ...],
    refusal: str,
    call: Callable[[str, str], Awaitable[Any]],
    step: str,
    gateway: StripeGateway,
) -> InvoiceOutcome:
    """A status change Stripe performs: check the local status, call Stripe, mirror, audit."""
    mk, replay, invoice, before = await _start(session, actor, action, invoice_id, idempotency_key)
    if replay is not None:
        return replay
    assert invoice is not None
    stripe_id = _require_stripe(invoice)
    if invoice.status not in allowed:
        raise Invalid(f"{refusal} (this one is {invoice.status.value})", field="invoice")
    try:
        remote = await call(stripe_id, mk.stripe_key(step))
    except Rejected as exc:
        raise _about_the_invoice(exc) from exc
    await _refresh(session, gateway, invoice, remote)
    return await _finish(session, actor, mk, invoice, before)


async def finalize_invoice(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, invoice_id: uuid.UUID, idempotency_key: str | None
) -> InvoiceOutcome:
    """Draft → open: Stripe numbers it, applies the customer's credit balance, gives it a hosted
    page and a PDF."""
    return await _transition(
        session,
        actor,
        invoice_id,
        idempotency_key,
        action="finalizeInvoice",
        allowed=(InvoiceStatus.DRAFT,),
        refusal="only a draft invoice can be finalized",
        call=lambda stripe_id, key: gateway.finalize_invoice(stripe_id, idempotency_key=key),
        step="finalize",
        gateway=gateway,
    )


async def send_invoice(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, invoice_id: uuid.UUID, idempotency_key: str | None
) -> InvoiceOutcome:
    """Email a SEND_INVOICE invoice to the customer (a draft is finalized first, as Stripe does)."""
    return await _transition(
        session,
        actor,
        invoice_id,
        idempotency_key,
        action="sendInvoice",
        allowed=(InvoiceStatus.DRAFT, InvoiceStatus.OPEN),
        refusal="only a draft or open invoice can be sent",
        call=lambda stripe_id, key: gateway.send_invoice(stripe_id, idempotency_key=key),
        step="send",
        gateway=gateway,
    )


async def void_invoice(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, invoice_id: uuid.UUID, idempotency_key: str | None
) -> InvoiceOutcome:
    return await _transition(
        session,
        actor,
        invoice_id,
        idempotency_key,
        action="voidInvoice",
        allowed=(InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE),
        refusal="only an open or uncollectible invoice can be voided",
        call=lambda stripe_id, key: gateway.void_invoice(stripe_id, idempotency_key=key),
        step="void",
        gateway=gateway,
    )


async def mark_invoice_uncollectible(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, invoice_id: uuid.UUID, idempotency_key: str | None
) -> InvoiceOutcome:
    """Open → uncollectible: Stripe stops collecting it (dunning's last resort); it can still be
    paid or voided later."""
    return await _transition(
        session,
        actor,
        invoice_id,
        idempotency_key,
        action="markInvoiceUncollectible",
        allowed=(InvoiceStatus.OPEN,),
        refusal="only an open invoice can be marked uncollectible",
        call=lambda stripe_id, key: gateway.mark_invoice_uncollectible(stripe_id, idempotency_key=key),
        step="mark-uncollectible",
        gateway=gateway,
    )


async def pay_invoice(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, invoice_id: uuid.UUID, idempotency_key: str | None
) -> InvoiceOutcome:
    """Collect the amount remaining now, with the customer's default payment method (a draft is
    finalized first). A decline comes back in `error` with Stripe's code, and the mirror shows the
    attempt as Stripe does (attempt count, next automatic attempt)."""
    mk, replay, invoice, before = await _start(session, actor, "payInvoice", invoice_id, idempotency_key)
    if replay is not None:
        return replay
    assert invoice is not None
    stripe_id = _require_stripe(invoice)
    if invoice.status is InvoiceStatus.PAID:
        raise Invalid("this invoice is already paid", field="invoice")
    if invoice.status is InvoiceStatus.VOID:
        raise Invalid("this invoice is void", field="invoice")
    try:
        remote = await gateway.pay_invoice(
            stripe_id, {}, idempotency_key=mk.stripe_key("pay"), fields={"*": "invoice", "payment_method": "invoice"}
        )
    except Rejected as exc:
        remote = await gateway.retrieve_invoice(stripe_id)
        if remote.attempt_count == invoice.attempt_count:
            raise _about_the_invoice(exc) from exc  # refused before any attempt: nothing happened
        await _refresh(session, gateway, invoice, remote)
        session.add(
            Payment(
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                amount=remote.amount_remaining,
                currency=invoice.currency,
                status=PaymentStatus.FAILED,
                failure_code=exc.reason[:100],
                failure_message=exc.message[:500],
            )
        )
        await session.flush()
        return await _finish(session, actor, mk, invoice, before, error=_about_the_invoice(exc))
    await _refresh(session, gateway, invoice, remote)
    await mirror_payments(session, invoice, invoice_payments(await gateway.paid_invoice_payments(stripe_id)))
    return await _finish(session, actor, mk, invoice, before)


# --- refunds -------------------------------------------------------------------------------------------


def _clean_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise Invalid("`reason` must not be empty", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"`reason` is longer than {MAX_REASON} characters", field="reason")
    return reason


async def _refundable_payment(session: AsyncSession, gateway: StripeGateway, invoice: Invoice) -> Payment:
    """The invoice's successful payment (from the mirror, or from Stripe when the mirror has none)."""
    stmt = (
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
        .order_by(Payment.created_at, Payment.id)
    )
    payments = list((await session.execute(stmt)).scalars())
    if not payments:
        remote = await gateway.paid_invoice_payments(_require_stripe(invoice))
        payments = await mirror_payments(session, invoice, invoice_payments(remote))
    usable = [p for p in payments if p.stripe_payment_intent_id or p.stripe_charge_id]
    if not usable:
        raise Invalid("Stripe has no card payment for this invoice to refund", field="invoice")
    return usable[0]


async def refund_invoice(
    session: AsyncSession,
    actor: Actor,
    principal: Principal,
    support_limit: Decimal,
    gateway: StripeGateway,
    invoice_id: uuid.UUID,
    amount: MoneyAmount | None,
    reason: str,
    idempotency_key: str | None,
) -> InvoiceOutcome:
    """Refund all that is left (no `amount`) or part of it; never more than what was paid minus
    earlier refunds. Support is capped at SUPPORT_REFUND_LIMIT per refund (checked before Stripe
    hears anything)."""
    payload = {"invoice": str(invoice_id), "amount": amount.to_json() if amount else None, "reason": reason}
    mk = MutationKey.of(actor, "refundInvoice", idempotency_key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        return await _replayed(session, previous)
    reason = _clean_reason(reason)
    invoice = await get_invoice_for_update(session, invoice_id)
    _require_stripe(invoice)
    if invoice.amount_paid <= 0:
        raise Invalid("nothing was paid on this invoice", field="invoice")
    refundable = invoice.amount_paid - invoice.amount_refunded
    if refundable <= 0:
        raise Invalid("this invoice is already fully refunded", field="invoice")
    minor = amount.minor_units("amount", invoice.currency) if amount is not None else refundable
    check_refund_or_credit_amount(principal, minor, invoice.currency, support_limit)
    if minor > refundable:
        left = minor_to_decimal(refundable, invoice.currency)
        raise Invalid(
            f"at most {left} {invoice.currency.upper()} can be refunded "
            f"(paid {minor_to_decimal(invoice.amount_paid, invoice.currency)}, "
            f"already refunded {minor_to_decimal(invoice.amount_refunded, invoice.currency)})",
            field="amount",
            refundable=str(left),
        )
    before = invoice_snapshot(invoice)
    payment = await _refundable_payment(session, gateway, invoice)
    refund_id = mk.local_id("refund")
    params: RefundCreateParams = {
        "amount": minor,
        "metadata": {
            "ledgerline_invoice_id": str(invoice.id),
            "ledgerline_refund_id": str(refund_id),
            "reason": reason,
        },
    }
    if payment.stripe_payment_intent_id:
        params["payment_intent"] = payment.stripe_payment_intent_id
    else:
        assert payment.stripe_charge_id is not None
        params["charge"] = payment.stripe_charge_id
    remote = await gateway.create_refund(
        params,
        idempotency_key=mk.stripe_key("refund"),
        fields={"amount": "amount", "payment_intent": "invoice", "charge": "invoice"},
    )
    refund = Refund(
        id=refund_id,
        payment_id=payment.id,
        invoice_id=invoice.id,
        amount=remote.amount,
        currency=remote.currency,
        reason=reason,
        status=refund_status(remote),
        stripe_refund_id=remote.id,
    )
    session.add(refund)
    invoice.amount_refunded += remote.amount
    await session.flush()
    return await _finish(session, actor, mk, invoice, before, refund=refund)


# --- credits -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credit:
    """A credit on the customer's Stripe balance: Stripe applies it to the next invoices."""

    stripe_balance_transaction_id: str
    amount: int  # credited, positive
    currency: str
    reason: str
    credit_balance: int  # what the customer now holds as credit (Stripe's -ending_balance)

    def to_json(self) -> dict[str, Any]:
        return {
            "stripe_balance_transaction_id": self.stripe_balance_transaction_id,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "credit_balance": self.credit_balance,
        }


@dataclass(slots=True)
class CreditOutcome:
    customer: Customer
    credit: Credit


async def issue_credit(
    session: AsyncSession,
    actor: Actor,
    principal: Principal,
    support_limit: Decimal,
    gateway: StripeGateway,
    customer_id: uuid.UUID,
    amount: MoneyAmount,
    reason: str,
    idempotency_key: str | None,
) -> CreditOutcome:
    """A customer balance transaction with a negative amount (a credit, in Stripe's sign), in the
    customer's currency. Support is capped at SUPPORT_REFUND_LIMIT, checked before Stripe."""
    payload = {"customer": str(customer_id), "amount": amount.to_json(), "reason": reason}
    mk = MutationKey.of(actor, "issueCredit", idempotency_key, payload)
    if (previous := await previous_result(session, mk)) is not None:
        customer = await get_customer_for_update(session, uuid.UUID(previous["id"]))
        return CreditOutcome(customer, Credit(**previous["credit"]))
    reason = _clean_reason(reason)
    customer = await get_customer_for_update(session, customer_id)
    minor = amount.minor_units("amount", customer.currency)
    check_refund_or_credit_amount(principal, minor, customer.currency, support_limit)
    stripe_customer_id = await ensure_stripe_customer(session, gateway, customer, mk.stripe_key("customer"))
    remote = await gateway.create_balance_transaction(
        stripe_customer_id,
        {
            "amount": -minor,
            "currency": customer.currency,
            "description": reason,
            "metadata": {"ledgerline_customer_id": str(customer.id)},
        },
        idempotency_key=mk.stripe_key("credit"),
        fields={"amount": "amount", "currency": "amount.currency", "description": "reason"},
    )
    credit = Credit(
        stripe_balance_transaction_id=remote.id,
        amount=-remote.amount,
        currency=remote.currency,
        reason=reason,
        credit_balance=-remote.ending_balance,
    )
    await record_audit(
        session, actor, "issueCredit", "Customer", str(customer.id), before=None, after={"credit": credit.to_json()}
    )
    await remember(session, mk, {"id": str(customer.id), "credit": credit.to_json()})
    return CreditOutcome(customer, credit)
