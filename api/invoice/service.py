"""Invoices: read side. Create/finalize/pay/void/refund arrive with the Stripe issue."""

from __future__ import annotations

import typing
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Uuid, cast, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

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


async def invoices_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Invoice]:
    return await load_by_ids(session, Invoice, ids)


async def _newest_invoices(
    session: AsyncSession,
    customer_ids: Sequence[uuid.UUID],
    statuses: Sequence[InvoiceStatus],
    after: str | None,
    limit: int,
) -> dict[uuid.UUID, list[Invoice]]:
    """Each customer's `limit` newest invoices, in one statement.

    A LATERAL top-N per customer walks ix_invoice_customer_id_created_at and stops after `limit`
    rows, whatever the customer's history (a window over all of their invoices, or DISTINCT ON,
    made PostgreSQL scan the whole table)."""
    customers = func.unnest(cast(array(list(dict.fromkeys(customer_ids)), type_=Uuid), ARRAY(Uuid)))
    customer = customers.table_valued("id").render_derived(name="c")
    conditions: list[ColumnElement[bool]] = [Invoice.customer_id == customer.c.id]
    if statuses:
        conditions.append(Invoice.status.in_(statuses))
    if after is not None:
        value, ident = decode_cursor(after, SORT_KEY.kind)
        conditions.append(tuple_(Invoice.created_at, Invoice.id) < (value, ident))
    newest = (
        select(Invoice)
        .where(*conditions)
        .order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .limit(limit)
        .lateral("newest")
    )
    stmt = (
        select(newest)
        .select_from(customer)
        .join(newest, true())
        .order_by(newest.c.customer_id, newest.c.created_at.desc(), newest.c.id.desc())
    )
    grouped: dict[uuid.UUID, list[Invoice]] = defaultdict(list)
    for row in (await session.execute(stmt)).all():
        grouped[row.customer_id].append(typing.cast(Invoice, row))  # a read-only row, see api.common.batch
    return grouped


async def invoice_pages_for_customers(
    session: AsyncSession,
    customer_ids: Sequence[uuid.UUID],
    statuses: Sequence[InvoiceStatus],
    page: PageArgs,
) -> dict[uuid.UUID, Page[Invoice]]:
    """The first page of each customer's invoices (newest first), in one statement."""
    grouped = await _newest_invoices(session, customer_ids, statuses, page.after, page.first + 1)
    return {
        cid: make_page(grouped.get(cid, []), SORT_KEY, page, lambda i: i.created_at, lambda i: i.id)
        for cid in customer_ids
    }


async def latest_invoice_by_customer_ids(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Invoice]:
    grouped = await _newest_invoices(session, customer_ids, (), None, 1)
    return {cid: rows[0] for cid, rows in grouped.items()}


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
