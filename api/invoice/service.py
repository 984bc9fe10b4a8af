"""Invoices: read side. Create/finalize/pay/void/refund arrive with the Stripe issue."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.common.batch import load_by_ids, load_grouped
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey, decode_cursor, make_page
from api.common.queries import count_where, fetch_page
from api.errors import NotFound
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, Refund

SORT_KEY = SortKey("invoice:CREATED_AT_DESC", Invoice.created_at, Invoice.id, True)


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    statuses: Sequence[InvoiceStatus] = ()
    customer_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    created: DateRange = field(default_factory=DateRange)
    due: DateRange = field(default_factory=DateRange)


def _conditions(flt: InvoiceFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.created.clause(Invoice.created_at), flt.due.clause(Invoice.due_date)]
    if flt.statuses:
        conditions.append(Invoice.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(Invoice.customer_id == flt.customer_id)
    if flt.subscription_id is not None:
        conditions.append(Invoice.subscription_id == flt.subscription_id)
    return conditions


async def list_invoices(session: AsyncSession, flt: InvoiceFilter, page: PageArgs) -> Page[Invoice]:
    return await fetch_page(session, select(Invoice).where(*_conditions(flt)), SORT_KEY, page)


async def count_invoices(session: AsyncSession, flt: InvoiceFilter) -> int:
    return await count_where(session, Invoice, _conditions(flt))


async def get_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field="id")
    return invoice


async def invoices_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Invoice]:
    return await load_by_ids(session, Invoice, ids)


async def invoice_pages_for_customers(
    session: AsyncSession,
    customer_ids: Sequence[uuid.UUID],
    statuses: Sequence[InvoiceStatus],
    page: PageArgs,
) -> dict[uuid.UUID, Page[Invoice]]:
    """The first page of each customer's invoices (newest first), in one statement."""
    conditions: list[ColumnElement[bool]] = [Invoice.customer_id.in_(set(customer_ids))]
    if statuses:
        conditions.append(Invoice.status.in_(statuses))
    if page.after is not None:
        value, ident = decode_cursor(page.after, SORT_KEY.kind)
        conditions.append(tuple_(Invoice.created_at, Invoice.id) < (value, ident))
    row_number = (
        func.row_number()
        .over(partition_by=Invoice.customer_id, order_by=(Invoice.created_at.desc(), Invoice.id.desc()))
        .label("row_number")
    )
    ranked = select(Invoice, row_number).where(*conditions).subquery()
    invoice = aliased(Invoice, ranked)
    stmt = (
        select(invoice).where(ranked.c.row_number <= page.first + 1).order_by(ranked.c.customer_id, ranked.c.row_number)
    )
    grouped: dict[uuid.UUID, list[Invoice]] = defaultdict(list)
    for row in (await session.execute(stmt)).scalars():
        grouped[row.customer_id].append(row)
    return {
        cid: make_page(grouped.get(cid, []), SORT_KEY, page, lambda i: i.created_at, lambda i: i.id)
        for cid in customer_ids
    }


async def latest_invoice_by_customer_ids(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Invoice]:
    stmt = (
        select(Invoice)
        .where(Invoice.customer_id.in_(set(customer_ids)))
        .ext(distinct_on(Invoice.customer_id))
        .order_by(Invoice.customer_id, Invoice.created_at.desc(), Invoice.id.desc())
    )
    return {row.customer_id: row for row in (await session.execute(stmt)).scalars()}


async def lines_by_invoice_ids(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[InvoiceLine]]:
    return await load_grouped(
        session, InvoiceLine, InvoiceLine.invoice_id, invoice_ids, InvoiceLine.position, InvoiceLine.id
    )


async def payments_by_invoice_ids(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Payment]]:
    return await load_grouped(session, Payment, Payment.invoice_id, invoice_ids, Payment.created_at, Payment.id)


async def refunds_by_invoice_ids(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Refund]]:
    return await load_grouped(session, Refund, Refund.invoice_id, invoice_ids, Refund.created_at, Refund.id)
