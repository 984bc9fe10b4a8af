"""Invoices: read side. Create/finalize/pay/void/refund arrive with the Stripe issue."""

from __future__ import annotations

import functools
import typing
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Integer, Select, Uuid, bindparam, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from api.common.batch import GroupedSelect, load_by_ids, load_grouped
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey, decode_cursor, make_page
from api.common.queries import count_where, fetch_page
from api.common.reads import DriverReads
from api.errors import NotFound
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, Refund

SORT_KEY = SortKey("invoice:CREATED_AT_DESC", Invoice.created_at, Invoice.id, True)
LINES_OF_INVOICES = GroupedSelect(InvoiceLine, InvoiceLine.invoice_id, InvoiceLine.position, InvoiceLine.id)
PAYMENTS_OF_INVOICES = GroupedSelect(Payment, Payment.invoice_id, Payment.created_at, Payment.id)
REFUNDS_OF_INVOICES = GroupedSelect(Refund, Refund.invoice_id, Refund.created_at, Refund.id)


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    statuses: Sequence[InvoiceStatus] = ()
    customer_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    created: DateRange = field(default_factory=DateRange)
    due: DateRange = field(default_factory=DateRange)


def invoice_conditions(flt: InvoiceFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.created.clause(Invoice.created_at), flt.due.clause(Invoice.due_date)]
    if flt.statuses:
        conditions.append(Invoice.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(Invoice.customer_id == flt.customer_id)
    if flt.subscription_id is not None:
        conditions.append(Invoice.subscription_id == flt.subscription_id)
    return conditions


async def list_invoices(session: AsyncSession, flt: InvoiceFilter, page: PageArgs) -> Page[Invoice]:
    return await fetch_page(session, select(Invoice).where(*invoice_conditions(flt)), SORT_KEY, page)


async def count_invoices(session: AsyncSession, flt: InvoiceFilter) -> int:
    return await count_where(session, Invoice, invoice_conditions(flt))


async def get_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field="id")
    return invoice


async def invoices_by_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Invoice]:
    return await load_by_ids(reads, Invoice, ids)


@functools.cache
def _newest_invoices_select(by_status: bool, after: bool) -> Select[Any]:
    """Each customer's `:limit` newest invoices (of `:customer_ids`), in one statement; built once
    per shape and run with new values.

    A LATERAL top-N per customer walks ix_invoice_customer_id_created_at and stops after `limit`
    rows, whatever the customer's history (a window over all of their invoices, or DISTINCT ON,
    made PostgreSQL scan the whole table)."""
    customers = func.unnest(bindparam("customer_ids", type_=ARRAY(Uuid)))
    customer = customers.table_valued("id").render_derived(name="c")
    conditions: list[ColumnElement[bool]] = [Invoice.customer_id == customer.c.id]
    if by_status:
        conditions.append(Invoice.status.in_(bindparam("statuses", expanding=True)))
    if after:
        after_key = tuple_(
            bindparam("after_created_at", type_=DateTime(timezone=True)), bindparam("after_id", type_=Uuid)
        )
        conditions.append(tuple_(Invoice.created_at, Invoice.id) < after_key)
    newest = (
        select(Invoice)
        .where(*conditions)
        .order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .lateral("newest")
    )
    return (
        select(newest)
        .select_from(customer)
        .join(newest, true())
        .order_by(newest.c.customer_id, newest.c.created_at.desc(), newest.c.id.desc())
    )


async def _newest_invoices(
    reads: DriverReads,
    customer_ids: Sequence[uuid.UUID],
    statuses: Sequence[InvoiceStatus],
    after: str | None,
    limit: int,
) -> dict[uuid.UUID, list[Invoice]]:
    values: dict[str, Any] = {"customer_ids": list(dict.fromkeys(customer_ids)), "limit": limit}
    if statuses:
        values["statuses"] = list(statuses)
    if after is not None:
        values["after_created_at"], values["after_id"] = decode_cursor(after, SORT_KEY.kind)
    grouped: dict[uuid.UUID, list[Invoice]] = defaultdict(list)
    for row in await reads.rows(_newest_invoices_select(bool(statuses), after is not None), values):
        grouped[row.customer_id].append(typing.cast(Invoice, row))  # a read-only row, see api.common.batch
    return grouped


async def invoice_pages_for_customers(
    reads: DriverReads,
    customer_ids: Sequence[uuid.UUID],
    statuses: Sequence[InvoiceStatus],
    page: PageArgs,
) -> dict[uuid.UUID, Page[Invoice]]:
    """The first page of each customer's invoices (newest first), in one statement."""
    grouped = await _newest_invoices(reads, customer_ids, statuses, page.after, page.first + 1)
    return {
        cid: make_page(grouped.get(cid, []), SORT_KEY, page, lambda i: i.created_at, lambda i: i.id)
        for cid in customer_ids
    }


async def latest_invoice_by_customer_ids(
    reads: DriverReads, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Invoice]:
    grouped = await _newest_invoices(reads, customer_ids, (), None, 1)
    return {cid: rows[0] for cid, rows in grouped.items()}


async def lines_by_invoice_ids(
    reads: DriverReads, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[InvoiceLine]]:
    return await load_grouped(reads, LINES_OF_INVOICES, invoice_ids)


async def payments_by_invoice_ids(
    reads: DriverReads, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Payment]]:
    return await load_grouped(reads, PAYMENTS_OF_INVOICES, invoice_ids)


async def refunds_by_invoice_ids(reads: DriverReads, invoice_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Refund]]:
    return await load_grouped(reads, REFUNDS_OF_INVOICES, invoice_ids)
