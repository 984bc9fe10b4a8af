"""A small subset of Stripe's Search Query Language for the ``/search`` endpoints.

Supported: clauses joined by ``AND`` (or ``OR``, not mixed), each ``field:'value'`` (exact),
``field~'value'`` (substring), ``field>number`` / ``<`` / ``>=`` / ``<=``, ``-field:'value'``
(negation) and ``metadata['key']:'value'``.
"""

from __future__ import annotations

import re
from typing import Any

from stripe import params as p

from ..core import Ctx, paginate, route
from ..errors import invalid
from ..state import StoredObject

_CLAUSE = re.compile(
    r"""^(?P<neg>-)?(?P<field>[a-z_.]+|metadata\[['"][^'"]+['"]\])\s*"""
    r"""(?P<op>:|~|>=|<=|>|<)\s*(?P<value>'[^']*'|"[^"]*"|[^\s]+)$"""
)


def _field_value(obj: StoredObject, field: str) -> Any:
    if field.startswith("metadata["):
        return (obj.get("metadata") or {}).get(field[10:-2])
    value: Any = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(obj: StoredObject, clause: str) -> bool:
    found = _CLAUSE.match(clause.strip())
    if found is None:
        raise invalid(f"Invalid search query clause: {clause}", param="query")
    field, op, raw = found["field"], found["op"], found["value"]
    value = raw[1:-1] if raw[:1] in "'\"" else raw
    actual = _field_value(obj, field)
    if op == ":":
        result = actual is not None and str(actual).lower() == value.lower()
        if value.lower() == "null":
            result = actual is None
    elif op == "~":
        result = actual is not None and value.lower() in str(actual).lower()
    else:
        try:
            number, target = float(actual), float(value)
        except (TypeError, ValueError):
            return False
        result = {
            ">": number > target,
            "<": number < target,
            ">=": number >= target,
            "<=": number <= target,
        }[op]
    return not result if found["neg"] else result


def _search(ctx: Ctx, kind: str, url: str) -> dict[str, Any]:
    query = ctx.params["query"]
    if " AND " in query and " OR " in query:
        raise invalid("A search query can't mix AND and OR.", param="query")
    joiner = " OR " if " OR " in query else " AND "
    clauses = [c for c in query.split(joiner) if c.strip()]
    objects = [o for o in ctx.state.collection(kind).values() if not o.get("deleted")]
    if joiner == " OR ":
        objects = [o for o in objects if any(_matches(o, c) for c in clauses)]
    else:
        objects = [o for o in objects if all(_matches(o, c) for c in clauses)]
    page = paginate(ctx.state, objects, {"limit": ctx.params.get("limit", 10)}, url)
    page["object"] = "search_result"
    page["next_page"] = None
    page["total_count"] = len(objects)
    return page


@route("GET", "/v1/customers/search", p.CustomerSearchParams)
def search_customers(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "customer", "/v1/customers/search")


@route("GET", "/v1/subscriptions/search", p.SubscriptionSearchParams)
def search_subscriptions(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "subscription", "/v1/subscriptions/search")


@route("GET", "/v1/invoices/search", p.InvoiceSearchParams)
def search_invoices(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "invoice", "/v1/invoices/search")


@route("GET", "/v1/products/search", p.ProductSearchParams)
def search_products(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "product", "/v1/products/search")


@route("GET", "/v1/prices/search", p.PriceSearchParams)
def search_prices(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "price", "/v1/prices/search")


@route("GET", "/v1/charges/search", p.ChargeSearchParams)
def search_charges(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "charge", "/v1/charges/search")


@route("GET", "/v1/payment_intents/search", p.PaymentIntentSearchParams)
def search_payment_intents(ctx: Ctx) -> dict[str, Any]:
    return _search(ctx, "payment_intent", "/v1/payment_intents/search")
