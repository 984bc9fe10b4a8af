"""Field and operation guards, generated from the permission matrix in api/auth/permissions.py.

`guarded(Capability.X)` makes a field that (1) carries `@requires(roles: [...], scopes: [...])`
in the SDL, (2) resolves to null with a FORBIDDEN error at its path when the caller lacks the
capability — before its resolver runs, so an operation denied this way has no side effect —
and (3) is left out of `ledgerline schema --role R` for roles without it.
The check is a set lookup on capabilities computed once per request: no SQL, no await.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions.field_extension import AsyncExtensionResolver, FieldExtension, SyncExtensionResolver
from strawberry.schema_directive import Location
from strawberry.types.field import StrawberryField

from api.auth.permissions import Capability, forbidden, required_roles, required_scopes
from api.auth.roles import Role

RoleEnum = strawberry.enum(Role, name="Role")


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="Who may use this field: staff roles, or integrations holding one of the scopes.",
)
class Requires:
    roles: list[RoleEnum]  # type: ignore[valid-type]
    scopes: list[str]


def check(info: Any, capability: Capability, attempted: str) -> None:
    """Raise FORBIDDEN (and note the denial for the security log) unless the caller holds `capability`."""
    context = info.context
    if capability not in context.capabilities:
        context.denials.add((capability, attempted))
        raise forbidden(capability, f"read or use `{attempted}`")


class Guard(FieldExtension):
    def __init__(self, capability: Capability) -> None:
        self.capability = capability

    def _check(self, info: Any) -> None:
        # the allowed case, on every guarded field of every row, is one set lookup; the path of
        # the field is only spelled out for a refusal
        if self.capability not in info.context.capabilities:
            check(info, self.capability, f"{info._raw_info.parent_type.name}.{info.field_name}")

    def resolve(self, next_: SyncExtensionResolver, source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(info)
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: AsyncExtensionResolver, source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(info)
        return await next_(source, info, **kwargs)


def requires_directive(capability: Capability) -> Requires:
    return Requires(roles=[Role[name] for name in required_roles(capability)], scopes=required_scopes(capability))


def guarded(capability: Capability, **field_kwargs: Any) -> Any:
    """strawberry.field(...) guarded by `capability`; usable as `x: T = guarded(...)` or as a decorator."""
    return strawberry.field(
        extensions=[Guard(capability), *field_kwargs.pop("extensions", [])],
        directives=[requires_directive(capability), *field_kwargs.pop("directives", [])],
        **field_kwargs,
    )


def field_capability(field: StrawberryField) -> Capability | None:
    for extension in field.extensions:
        if isinstance(extension, Guard):
            return extension.capability
    return None
