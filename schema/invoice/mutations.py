"""Invoice mutations (INVOICE_MANAGE): createInvoice, finalizeInvoice, sendInvoice, voidInvoice,
payInvoice; refunds and credits (REFUND_CREDIT, support up to SUPPORT_REFUND_LIMIT): refundInvoice,
issueCredit.

Amounts are `MoneyInput`: a decimal string and a currency ({amount: "12.50", currency: "usd"}),
the mirror image of the `Money` output; the currency must be the invoice's (the customer's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.errors import Forbidden
from api.invoice import commands
from api.invoice.commands import CollectionMethod, CreditOutcome, InvoiceOutcome, NewInvoice, NewInvoiceItem
from schema.context import Info
from schema.customer.mutations import idempotency_key_field
from schema.customer.types import Customer
from schema.invoice.types import Invoice, Refund
from schema.mutations import Outcome, UserError, _input_path, run_mutation
from schema.permissions import guarded
from schema.scalars import Money, MoneyInput, parse_id

T = TypeVar("T")

CollectionMethodEnum = strawberry.enum(
    CollectionMethod,
    name="CollectionMethod",
    description="CHARGE_AUTOMATICALLY: charged to the default payment method (payInvoice); SEND_INVOICE: "
    "emailed, paid on the hosted page within `dueDays`.",
)


@strawberry.input
class InvoiceItemInput:
    description: str
    unit_amount: MoneyInput = strawberry.field(description="The price of one unit, in the customer's currency.")
    quantity: int = 1


@strawberry.input
class CreateInvoiceInput:
    customer: strawberry.ID
    items: list[InvoiceItemInput]
    collection_method: CollectionMethodEnum = CollectionMethod.CHARGE_AUTOMATICALLY  # type: ignore[valid-type]
    due_days: int | None = strawberry.field(default=None, description="SEND_INVOICE only; 30 unless given.")
    description: str | None = None
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class InvoiceActionInput:
    invoice: strawberry.ID
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class RefundInvoiceInput:
    invoice: strawberry.ID
    amount: MoneyInput | None = strawberry.field(
        default=None, description="Omit to refund all that is left (paid minus earlier refunds)."
    )
    reason: str
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class IssueCreditInput:
    customer: strawberry.ID
    amount: MoneyInput = strawberry.field(description="In the customer's currency; applied to the next invoices.")
    reason: str
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type
class InvoicePayload:
    invoice: Invoice | None
    user_errors: list[UserError]


@strawberry.type
class RefundInvoicePayload:
    invoice: Invoice | None
    refund: Refund | None
    user_errors: list[UserError]


@strawberry.type(description="A credit on the customer's Stripe balance (a customer balance transaction).")
class CustomerCredit:
    stripe_balance_transaction_id: str
    amount: Money = strawberry.field(description="What was credited.")
    reason: str
    credit_balance: Money = strawberry.field(description="The credit the customer now holds for its next invoices.")


@strawberry.type
class IssueCreditPayload:
    customer: Customer | None
    credit: CustomerCredit | None
    user_errors: list[UserError]


def _invoice_id(value: str) -> Any:
    return parse_id(value, "Invoice", "invoice")


def _errors(outcome: Outcome[InvoiceOutcome]) -> list[UserError]:
    """The user errors, with a payment decline that still changed the invoice (see payInvoice)."""
    done = outcome.value
    if done is None or done.error is None:
        return outcome.user_errors
    e = done.error
    return [*outcome.user_errors, UserError(field=_input_path(e.field), message=e.message, code=e.reason)]


async def _payload(info: Info, work: Callable[[AsyncSession, Actor], Awaitable[InvoiceOutcome]]) -> InvoicePayload:
    outcome = await run_mutation(info, work)
    return InvoicePayload(
        invoice=Invoice.from_model(outcome.value.invoice) if outcome.value else None, user_errors=_errors(outcome)
    )


async def _capped(info: Info, mutation: str, work: Callable[[AsyncSession, Actor], Awaitable[T]]) -> Outcome[T]:
    """run_mutation, noting a refusal by the support cap for the security log."""
    try:
        return await run_mutation(info, work)
    except Forbidden:
        info.context.denials.add((Capability.REFUND_CREDIT, f"{mutation} over SUPPORT_REFUND_LIMIT"))
        raise


@strawberry.type
class InvoiceMutations:
    @guarded(
        Capability.INVOICE_MANAGE,
        description="A draft invoice in Stripe with one invoice item per line, in the customer's currency.",
    )
    async def create_invoice(self, info: Info, input: CreateInvoiceInput) -> InvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            data = NewInvoice(
                customer_id=parse_id(input.customer, "Customer", "customer"),
                items=[NewInvoiceItem(i.description, i.unit_amount.to_amount(), i.quantity) for i in input.items],
                collection_method=input.collection_method,
                due_days=input.due_days,
                description=input.description,
            )
            return await commands.create_invoice(session, actor, info.context.stripe, data, input.idempotency_key)

        return await _payload(info, work)

    @guarded(Capability.INVOICE_MANAGE, description="Draft → open: numbered, with hosted page and PDF.")
    async def finalize_invoice(self, info: Info, input: InvoiceActionInput) -> InvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            return await commands.finalize_invoice(
                session, actor, info.context.stripe, _invoice_id(input.invoice), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(Capability.INVOICE_MANAGE, description="Email a SEND_INVOICE invoice to the customer.")
    async def send_invoice(self, info: Info, input: InvoiceActionInput) -> InvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            return await commands.send_invoice(
                session, actor, info.context.stripe, _invoice_id(input.invoice), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(Capability.INVOICE_MANAGE, description="Void an open or uncollectible invoice.")
    async def void_invoice(self, info: Info, input: InvoiceActionInput) -> InvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            return await commands.void_invoice(
                session, actor, info.context.stripe, _invoice_id(input.invoice), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(
        Capability.INVOICE_MANAGE,
        description="Retry the payment now with the default payment method. A decline is a user error with "
        "Stripe's code; the invoice then shows the attempt (attemptCount, nextPaymentAttempt), as Stripe does.",
    )
    async def pay_invoice(self, info: Info, input: InvoiceActionInput) -> InvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            return await commands.pay_invoice(
                session, actor, info.context.stripe, _invoice_id(input.invoice), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(
        Capability.REFUND_CREDIT,
        description="Refund all that is left or part of it (never more than paid minus earlier refunds); "
        "support up to SUPPORT_REFUND_LIMIT.",
    )
    async def refund_invoice(self, info: Info, input: RefundInvoiceInput) -> RefundInvoicePayload | None:
        async def work(session: AsyncSession, actor: Actor) -> InvoiceOutcome:
            return await commands.refund_invoice(
                session,
                actor,
                info.context.principal,
                info.context.settings.support_refund_limit,
                info.context.stripe,
                _invoice_id(input.invoice),
                input.amount.to_amount() if input.amount else None,
                input.reason,
                input.idempotency_key,
            )

        outcome = await _capped(info, "refundInvoice", work)
        done = outcome.value
        return RefundInvoicePayload(
            invoice=Invoice.from_model(done.invoice) if done else None,
            refund=Refund.from_model(done.refund) if done and done.refund else None,
            user_errors=outcome.user_errors,
        )

    @guarded(
        Capability.REFUND_CREDIT,
        description="Credit the customer's Stripe balance (used by its next invoices); support up to "
        "SUPPORT_REFUND_LIMIT.",
    )
    async def issue_credit(self, info: Info, input: IssueCreditInput) -> IssueCreditPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CreditOutcome:
            return await commands.issue_credit(
                session,
                actor,
                info.context.principal,
                info.context.settings.support_refund_limit,
                info.context.stripe,
                parse_id(input.customer, "Customer", "customer"),
                input.amount.to_amount(),
                input.reason,
                input.idempotency_key,
            )

        outcome = await _capped(info, "issueCredit", work)
        done = outcome.value
        credit = done.credit if done else None
        return IssueCreditPayload(
            customer=Customer.from_model(done.customer) if done else None,
            credit=CustomerCredit(
                stripe_balance_transaction_id=credit.stripe_balance_transaction_id,
                amount=Money.of(credit.amount, credit.currency),
                reason=credit.reason,
                credit_balance=Money.of(credit.credit_balance, credit.currency),
            )
            if credit
            else None,
            user_errors=outcome.user_errors,
        )
