"""`me` and `node(id)`."""

from __future__ import annotations

import strawberry

from api.auth.principal import PrincipalKind
from schema.context import Info
from schema.nodes import resolve_node
from schema.permissions import RoleEnum
from schema.scalars import Node

PrincipalKindEnum = strawberry.enum(PrincipalKind, name="PrincipalKind")


@strawberry.type(description="Who the caller is, as Ledgerline sees it.")
class Me:
    subject: str
    role: RoleEnum | None  # type: ignore[valid-type]
    kind: PrincipalKindEnum  # type: ignore[valid-type]
    scopes: list[str]


@strawberry.type
class ViewerQueries:
    @strawberry.field(description="The authenticated caller.")
    def me(self, info: Info) -> Me:
        p = info.context.principal
        return Me(subject=p.subject, role=p.role, kind=p.kind, scopes=sorted(s.value for s in p.scopes))

    @strawberry.field(
        description="Any object by its global id, for a caller who may read its type's list: FORBIDDEN "
        "otherwise; NOT_FOUND when it does not exist or is hidden from the caller (e.g. an alert of a "
        "kind the caller may not see)."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)
