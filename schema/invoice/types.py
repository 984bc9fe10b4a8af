from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.auth.permissions import Capability
from api.invoice.models import Invoice as InvoiceModel
from api.invoice.models import InvoiceLine as InvoiceLineModel
from api.invoice.models import InvoiceStatus, PaymentStatus, RefundStatus
from api.invoice.models import Payment as PaymentModel
from api.invoice.models import Refund as RefundModel
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import Money, Node, to_global_id
from schema.subscription.types import Subscription

if TYPE_CHECKING:
    from schema.customer.types import Customer

InvoiceStatusEnum = strawberry.enum(InvoiceStatus, name="InvoiceStatus")
PaymentStatusEnum = strawberry.enum(PaymentStatus, name="PaymentStatus")
RefundStatusEnum = strawberry.enum(RefundStatus, name="RefundStatus")


@strawberry.type
class InvoiceLine:
    description: str
    amount: Money
    quantity: int
    period_start: datetime | None
    period_end: datetime | None
    proration: bool

    @classmethod
    def from_model(cls, m: InvoiceLineModel) -> InvoiceLine:
        return cls(
            description=m.description,
            amount=Money.of(m.amount, m.currency),
            quantity=m.quantity,
            period_start=m.period_start,
            period_end=m.period_end,
            proration=m.proration,
        )


@strawberry.type(description="A payment attempt on an invoice.")
class Payment(Node):
    amount: Money
    status: PaymentStatusEnum  # type: ignore[valid-type]
    failure_code: str | None
    failure_message: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: PaymentModel) -> Payment:
        return cls(
            id=to_global_id("Payment", m.id),
            amount=Money.of(m.amount, m.currency),
            status=m.status,
            failure_code=m.failure_code,
            failure_message=m.failure_message,
            created_at=m.created_at,
        )


@strawberry.type(description="A full or partial refund of an invoice's payment.")
class Refund(Node):
    amount: Money
    reason: str | None
    status: RefundStatusEnum  # type: ignore[valid-type]
    stripe_refund_id: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: RefundModel) -> Refund:
        return cls(
            id=to_global_id("Refund", m.id),
            amount=Money.of(m.amount, m.currency),
            reason=m.reason,
            status=m.status,
            stripe_refund_id=m.stripe_refund_id,
            created_at=m.created_at,
        )


@strawberry.type(description="An invoice (mirrored from Stripe), with hosted page and PDF.")
class Invoice(Node):
    number: str | None
    status: InvoiceStatusEnum  # type: ignore[valid-type]
    currency: str
    hosted_invoice_url: str | None
    invoice_pdf_url: str | None
    due_date: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    attempt_count: int
    next_payment_attempt: datetime | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    stripe_invoice_id: str | None
    created_at: datetime
    local_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]
    subscription_id: strawberry.Private[uuid.UUID | None]
    # subtotal, total, due, paid, remaining, refunded in minor units: Money objects are built only
    # for the amounts a query selects (a page of invoices otherwise builds six each)
    amounts: strawberry.Private[tuple[int, int, int, int, int, int]]

    @strawberry.field
    def subtotal(self) -> Money:
        return Money.of(self.amounts[0], self.currency)

    @strawberry.field
    def total(self) -> Money:
        return Money.of(self.amounts[1], self.currency)

    @strawberry.field
    def amount_due(self) -> Money:
        return Money.of(self.amounts[2], self.currency)

    @strawberry.field
    def amount_paid(self) -> Money:
        return Money.of(self.amounts[3], self.currency)

    @strawberry.field
    def amount_remaining(self) -> Money:
        return Money.of(self.amounts[4], self.currency)

    @strawberry.field
    def amount_refunded(self) -> Money:
        return Money.of(self.amounts[5], self.currency)

    @strawberry.field
    async def lines(self, info: Info) -> list[InvoiceLine]:
        return [InvoiceLine.from_model(m) for m in await info.context.loaders.lines_of_invoice.load(self.local_id)]

    @strawberry.field
    async def payments(self, info: Info) -> list[Payment]:
        return [Payment.from_model(m) for m in await info.context.loaders.payments_of_invoice.load(self.local_id)]

    @strawberry.field
    async def refunds(self, info: Info) -> list[Refund]:
        return [Refund.from_model(m) for m in await info.context.loaders.refunds_of_invoice.load(self.local_id)]

    @guarded(Capability.CUSTOMER_READ)
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("schema.customer.types")] | None:
        from schema.customer.types import Customer

        model = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(model) if model else None

    @guarded(Capability.SUBSCRIPTION_READ)
    async def subscription(self, info: Info) -> Subscription | None:
        if self.subscription_id is None:
            return None
        model = await info.context.loaders.subscription.load(self.subscription_id)
        return Subscription.from_model(model) if model else None

    @classmethod
    def from_model(cls, m: InvoiceModel) -> Invoice:
        cur = m.currency
        return cls(
            id=to_global_id("Invoice", m.id),
            number=m.number,
            status=m.status,
            currency=cur,
            amounts=(m.subtotal, m.total, m.amount_due, m.amount_paid, m.amount_remaining, m.amount_refunded),
            hosted_invoice_url=m.hosted_invoice_url,
            invoice_pdf_url=m.invoice_pdf_url,
            due_date=m.due_date,
            period_start=m.period_start,
            period_end=m.period_end,
            attempt_count=m.attempt_count,
            next_payment_attempt=m.next_payment_attempt,
            finalized_at=m.finalized_at,
            paid_at=m.paid_at,
            voided_at=m.voided_at,
            stripe_invoice_id=m.stripe_invoice_id,
            created_at=m.created_at,
            local_id=m.id,
            customer_id=m.customer_id,
            subscription_id=m.subscription_id,
        )
