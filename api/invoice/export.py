"""The invoices export (`/exports/invoices.csv|json`, `ledgerline export invoices`).

Amounts are decimals in the invoice's currency (12.50), as GraphQL's `Money.amount`.
"""

from __future__ import annotations

from api.auth.permissions import Capability
from api.export.dataset import Param, TableDataset, fields, money, range_params
from api.export.params import Params
from api.invoice.models import Invoice, InvoiceStatus
from api.invoice.service import InvoiceFilter, invoice_conditions

PARAMS = [
    Param("status", "Statuses, comma-separated: DRAFT, OPEN, PAID, VOID, UNCOLLECTIBLE."),
    Param("customer", "Customer id (global id or UUID)."),
    Param("subscription", "Subscription id (global id or UUID)."),
    *range_params("Created"),
    *range_params("Due", "dueFrom", "dueTo", "duePreset"),
]


def parse_filter(params: Params) -> InvoiceFilter:
    return InvoiceFilter(
        statuses=params.choices("status", InvoiceStatus),
        customer_id=params.node_id("customer", "Customer"),
        subscription_id=params.node_id("subscription", "Subscription"),
        created=params.date_range(preset="preset"),
        due=params.date_range("dueFrom", "dueTo", "duePreset"),
    )


INVOICES: TableDataset[InvoiceFilter] = TableDataset(
    name="invoices",
    noun="invoices",
    read=[Capability.INVOICE_READ],
    params=PARAMS,
    parse=parse_filter,
    columns=[
        *fields(
            Invoice.id, Invoice.number, Invoice.customer_id, Invoice.subscription_id, Invoice.status, Invoice.currency
        ),
        *(
            money(amount, Invoice.currency)
            for amount in (
                Invoice.subtotal,
                Invoice.total,
                Invoice.amount_due,
                Invoice.amount_paid,
                Invoice.amount_remaining,
                Invoice.amount_refunded,
            )
        ),
        *fields(
            Invoice.due_date,
            Invoice.period_start,
            Invoice.period_end,
            Invoice.attempt_count,
            Invoice.next_payment_attempt,
            Invoice.finalized_at,
            Invoice.paid_at,
            Invoice.voided_at,
            Invoice.hosted_invoice_url,
            Invoice.invoice_pdf_url,
            Invoice.stripe_invoice_id,
            Invoice.created_at,
        ),
    ],
    model=Invoice,
    conditions=lambda flt, _: invoice_conditions(flt),
    order=[Invoice.created_at, Invoice.id],
)
