"""The baseline of the dashboard benchmark: a bare Strawberry schema of the same shape as
Ledgerline's, resolving from in-memory Python objects.

It has the types and fields the dashboard query touches (customers connection → edges → node →
subscriptions → items → price → unitAmount{amount}, and invoices(first) connection → edges →
node → amountDue{amount}), with the same arguments, nullability and async resolvers as
Ledgerline, but no database, no DataLoaders, no authentication, no middleware and no schema
extensions. What Ledgerline costs above it is what Ledgerline itself adds.

The data is built from one real Ledgerline response (`BENCH_BASELINE_RESPONSE`, a JSON file
written by `dashboard.py`), so both servers return the same cardinalities and the same bytes.

Served as `uvicorn baseline_schema:create_app --factory --app-dir bench`.
"""

from __future__ import annotations

import enum
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

RESPONSE_ENV = "BENCH_BASELINE_RESPONSE"
CUSTOMERS_ENV = "BENCH_BASELINE_CUSTOMERS"

NodeT = TypeVar("NodeT")


@strawberry.enum
class CustomerOrder(enum.Enum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


@strawberry.enum
class InvoiceStatus(enum.Enum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


@strawberry.input
class CustomerFilterInput:
    search: str | None = None


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Money:
    amount: str
    minor_units: int
    currency: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo


def connection(nodes: list[Any], kind: str, first: int, offset: int = 0) -> Connection[Any]:
    page = nodes[offset : offset + first]
    edges = [Edge(cursor=f"{kind}:{offset + i}", node=node) for i, node in enumerate(page)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=offset + first < len(nodes),
            has_previous_page=offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def offset_after(after: str | None) -> int:
    return int(after.rpartition(":")[2]) + 1 if after else 0


@strawberry.type
class Price(Node):
    unit_amount: Money


@strawberry.type
class SubscriptionItem(Node):
    quantity: int
    price_object: strawberry.Private[Price]

    @strawberry.field
    async def price(self) -> Price | None:
        return self.price_object


@strawberry.type
class Subscription(Node):
    item_objects: strawberry.Private[list[SubscriptionItem]]

    @strawberry.field
    async def items(self) -> list[SubscriptionItem]:
        return self.item_objects


@strawberry.type
class Invoice(Node):
    amount_due: Money


@strawberry.type
class Customer(Node):
    name: str
    subscription_objects: strawberry.Private[list[Subscription]]
    invoice_objects: strawberry.Private[list[Invoice]]

    @strawberry.field
    async def subscriptions(self) -> list[Subscription]:
        return self.subscription_objects

    @strawberry.field
    async def invoices(
        self,
        first: int | None = None,
        after: str | None = None,
        status: list[InvoiceStatus] | None = None,
    ) -> Connection[Invoice]:
        return connection(self.invoice_objects, "invoice", 20 if first is None else first, offset_after(after))


@strawberry.type
class Query:
    @strawberry.field
    async def customers(
        self,
        info: strawberry.Info,
        filter: CustomerFilterInput | None = None,
        order_by: CustomerOrder = CustomerOrder.CREATED_AT_DESC,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Customer]:
        customers: list[Customer] = info.context["customers"]
        return connection(customers, "customer", 20 if first is None else first, offset_after(after))


def money(amount: str) -> Money:
    return Money(amount=amount, minor_units=int(Decimal(amount).scaleb(2)), currency="usd")


def customers_from_response(response: dict[str, Any], total: int) -> list[Customer]:
    """Objects with the cardinalities and amounts of the real response, repeated up to `total`."""
    edges = response["data"]["customers"]["edges"]
    if not edges:
        raise ValueError("the real response has no customers to imitate")
    customers: list[Customer] = []
    for n in range(total):
        node = edges[n % len(edges)]["node"]
        subscriptions = [
            Subscription(
                id=strawberry.ID(f"s{n}.{s}"),
                item_objects=[
                    SubscriptionItem(
                        id=strawberry.ID(f"i{n}.{s}.{i}"),
                        quantity=1,
                        price_object=Price(
                            id=strawberry.ID(f"p{n}.{s}.{i}"), unit_amount=money(item["price"]["unitAmount"]["amount"])
                        ),
                    )
                    for i, item in enumerate(sub["items"])
                ],
            )
            for s, sub in enumerate(node["subscriptions"])
        ]
        invoices = [
            Invoice(id=strawberry.ID(f"v{n}.{v}"), amount_due=money(edge["node"]["amountDue"]["amount"]))
            for v, edge in enumerate(node["invoices"]["edges"])
        ]
        customers.append(
            Customer(
                id=strawberry.ID(f"c{n}"),
                name=f"Customer {n}",
                subscription_objects=subscriptions,
                invoice_objects=invoices,
            )
        )
    return customers


schema = strawberry.Schema(query=Query)


class BaselineGraphQL(GraphQL[dict[str, Any], None]):
    def __init__(self, customers: list[Customer]) -> None:
        super().__init__(schema, graphql_ide=None, allow_queries_via_get=False)
        self.customers = customers

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {"request": request, "response": response, "customers": self.customers}


async def readyz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ready"})


def create_app() -> Starlette:
    response = json.loads(Path(os.environ[RESPONSE_ENV]).read_text())
    total = int(os.environ.get(CUSTOMERS_ENV, "0")) or len(response["data"]["customers"]["edges"])
    graphql = BaselineGraphQL(customers_from_response(response, total))
    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Route("/readyz", readyz)])
