"""`me` and `node(id)`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from api.auth.permissions import Capability
from api.auth.principal import PrincipalKind
from api.errors import Invalid, NotFound
from schema.catalog.types import Price, Product
from schema.context import Info
from schema.customer.types import Customer
from schema.invoice.types import Invoice
from schema.permissions import RoleEnum, check
from schema.scalars import Node, from_global_id
from schema.subscription.types import Subscription

PrincipalKindEnum = strawberry.enum(PrincipalKind, name="PrincipalKind")


@strawberry.type(description="Who the caller is, as Ledgerline sees it.")
class Me:
    subject: str
    role: RoleEnum | None  # type: ignore[valid-type]
    kind: PrincipalKindEnum  # type: ignore[valid-type]
    scopes: list[str]


# what reading each node type requires (the same capability as its list field)
NODE_CAPABILITIES = {
    "Customer": Capability.CUSTOMER_READ,
    "Subscription": Capability.SUBSCRIPTION_READ,
    "Invoice": Capability.INVOICE_READ,
    "Price": Capability.CATALOG_READ,
    "Product": Capability.CATALOG_READ,
}


def _node_resolvers(info: Info) -> dict[str, Callable[[uuid.UUID], Awaitable[Any]]]:
    loaders = info.context.loaders

    async def via(loader: Any, convert: Callable[[Any], Any], local_id: uuid.UUID) -> Any:
        model = await loader.load(local_id)
        return convert(model) if model is not None else None

    return {
        "Customer": lambda i: via(loaders.customer, Customer.from_model, i),
        "Subscription": lambda i: via(loaders.subscription, Subscription.from_model, i),
        "Invoice": lambda i: via(loaders.invoice, Invoice.from_model, i),
        "Price": lambda i: via(loaders.price, Price.from_model, i),
        "Product": lambda i: via(loaders.product, Product.from_model, i),
    }


@strawberry.type
class ViewerQueries:
    @strawberry.field(description="The authenticated caller.")
    def me(self, info: Info) -> Me:
        p = info.context.principal
        return Me(subject=p.subject, role=p.role, kind=p.kind, scopes=sorted(s.value for s in p.scopes))

    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, local_id = from_global_id(id)
        resolve = _node_resolvers(info).get(type_name)
        if resolve is None:
            raise Invalid(f"`id` names an unknown type {type_name!r}", field="id")
        check(info, NODE_CAPABILITIES[type_name], f"node({type_name})")
        try:
            parsed = uuid.UUID(local_id)
        except ValueError:
            raise Invalid("`id` does not contain a valid UUID", field="id") from None
        node = await resolve(parsed)
        if node is None:
            raise NotFound(f"{type_name} {parsed} does not exist", field="id")
        return node  # type: ignore[no-any-return]
