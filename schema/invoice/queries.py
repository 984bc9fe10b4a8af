from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.invoice.service import InvoiceFilter, count_invoices, get_invoice, list_invoices
from schema.connections import paginate
from schema.context import Info
from schema.invoice.types import Invoice, InvoiceStatusEnum
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, DateRangeInput, FirstArg, date_range, parse_id


@strawberry.input
class InvoiceFilterInput:
    status: list[InvoiceStatusEnum] | None = None  # type: ignore[valid-type]
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    subscription: strawberry.ID | None = strawberry.field(default=None, description="Subscription id.")
    created_at: DateRangeInput | None = None
    due_date: DateRangeInput | None = None

    def to_filter(self) -> InvoiceFilter:
        return InvoiceFilter(
            statuses=tuple(self.status or ()),
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            subscription_id=parse_id(self.subscription, "Subscription", "filter.subscription")
            if self.subscription
            else None,
            created=date_range(self.created_at, "filter.createdAt"),
            due=date_range(self.due_date, "filter.dueDate"),
        )


@strawberry.type
class InvoiceQueries:
    @guarded(Capability.INVOICE_READ, description="Invoices, newest first.")
    async def invoices(
        self,
        info: Info,
        filter: InvoiceFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Invoice] | None:
        flt = filter.to_filter() if filter else InvoiceFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_invoices(s, flt, p),
            lambda s: count_invoices(s, flt),
            Invoice.from_model,
        )

    @guarded(Capability.INVOICE_READ)
    async def invoice(self, info: Info, id: strawberry.ID) -> Invoice | None:
        invoice_id = parse_id(id, "Invoice")
        async with info.context.read_session() as session:
            return Invoice.from_model(await get_invoice(session, invoice_id))
