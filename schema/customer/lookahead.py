"""Look-ahead for a page of customers: what the query asks of the page's nodes (subscriptions with
their items and prices, a page of invoices) is loaded as soon as the page is known, one statement
after the other on the request's connection, and handed to the DataLoaders (primed).

The nested resolvers are unchanged: they ask their loader, which already holds the answer, so
no batch is dispatched per level of the tree and no resolver waits for another round of the
event loop. Anything the look-ahead does not recognise (a fragment, an invalid argument, a
capability the caller lacks) is simply not prefetched: the loaders resolve it as before, and
refusals and argument errors are raised by the fields themselves, at their own paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from strawberry.types.nodes import SelectedField

from api.auth.permissions import Capability
from api.catalog.service import prices_by_ids
from api.common.pagination import PageArgs, check_first
from api.errors import Invalid
from api.invoice.models import InvoiceStatus
from api.invoice.service import invoice_pages_for_customers
from api.subscription.service import items_by_subscription_ids, subscriptions_by_customer_ids
from schema.context import Info


def _fields(selections: Sequence[Any], name: str) -> Iterator[SelectedField]:
    """The fields called `name` among `selections` (fragments are not looked into)."""
    return (s for s in selections if isinstance(s, SelectedField) and s.name == name)


def node_fields(info: Info) -> list[SelectedField]:
    """The fields the query selects on `edges { node { … } }` of the current connection field."""
    return [
        field
        for connection in info.selected_fields
        for edges in _fields(connection.selections, "edges")
        for node in _fields(edges.selections, "node")
        for field in node.selections
        if isinstance(field, SelectedField)
    ]


# Arguments come as the query wrote them: coerced values from variables, but the raw text of
# literals (`first: 3` gives "3", `status: [PAID]` gives "PAID").


def _statuses(value: Any) -> tuple[InvoiceStatus, ...] | None:
    """The `status` argument as the resolver receives it (enum members), or None if unreadable."""
    try:
        return tuple(v if isinstance(v, InvoiceStatus) else InvoiceStatus[v] for v in value or ())
    except (KeyError, TypeError):
        return None


def _first(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else value


async def prefetch_customer_page(info: Info, customer_ids: Sequence[uuid.UUID]) -> None:
    if not customer_ids:
        return
    fields = node_fields(info)
    capabilities = info.context.capabilities
    if Capability.SUBSCRIPTION_READ in capabilities:
        for subscriptions in _fields(fields, "subscriptions"):
            await _prefetch_subscriptions(info, customer_ids, subscriptions)
            break
    if Capability.INVOICE_READ in capabilities:
        for invoices in _fields(fields, "invoices"):
            await _prefetch_invoices(info, customer_ids, invoices)


async def _prefetch_subscriptions(info: Info, customer_ids: Sequence[uuid.UUID], field: SelectedField) -> None:
    loaders, reads = info.context.loaders, info.context.reads
    subscriptions = await subscriptions_by_customer_ids(reads, customer_ids)
    loaders.subscriptions_of_customer.prime_many({cid: subscriptions.get(cid, []) for cid in customer_ids})
    items_field = next(_fields(field.selections, "items"), None)
    subscription_ids = [s.id for rows in subscriptions.values() for s in rows]
    if items_field is None or not subscription_ids:
        return
    items = await items_by_subscription_ids(reads, subscription_ids)
    loaders.items_of_subscription.prime_many({sid: items.get(sid, []) for sid in subscription_ids})
    price_ids = list({item.price_id for rows in items.values() for item in rows})
    if next(_fields(items_field.selections, "price"), None) is None or not price_ids:
        return
    prices = await prices_by_ids(reads, price_ids)
    loaders.price.prime_many({pid: prices.get(pid) for pid in price_ids})


async def _prefetch_invoices(info: Info, customer_ids: Sequence[uuid.UUID], field: SelectedField) -> None:
    settings, arguments = info.context.settings, field.arguments
    statuses = _statuses(arguments.get("status"))
    after = arguments.get("after")
    try:
        first = check_first(
            _first(arguments.get("first")), default=settings.default_page_size, maximum=settings.max_page_size
        )
    except (Invalid, TypeError):
        return  # the field reports its own argument error
    if statuses is None or not (after is None or isinstance(after, str)):
        return
    page = PageArgs(first=first, after=after)
    try:
        pages = await invoice_pages_for_customers(info.context.reads, customer_ids, statuses, page)
    except Invalid:
        return  # a bad cursor: the field reports it at its own path
    info.context.loaders.invoice_page_of_customer(statuses, page).prime_many(pages)
