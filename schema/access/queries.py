from __future__ import annotations

from datetime import datetime

import strawberry

from api.auth.apikeys import list_api_keys
from api.auth.permissions import Capability
from api.auth.security import SecurityEventFilter, count_security_events, list_security_events
from api.auth.staff import list_staff
from api.common.daterange import make_range
from schema.access.types import ApiKey, SecurityEvent, SecurityEventKindEnum, StaffMember
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg


@strawberry.input
class SecurityEventFilterInput:
    kind: list[SecurityEventKindEnum] | None = None  # type: ignore[valid-type]
    subject: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None

    def to_filter(self) -> SecurityEventFilter:
        return SecurityEventFilter(
            kinds=tuple(self.kind or ()),
            subject=self.subject,
            occurred=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class AccessQueries:
    @guarded(Capability.ACCESS_ADMIN, description="Staff subjects seen or managed, with overrides and revocations.")
    async def staff_members(self, info: Info) -> list[StaffMember] | None:
        async with info.context.read_session() as session:
            return [StaffMember.from_model(m) for m in await list_staff(session)]

    @guarded(Capability.ACCESS_ADMIN, description="Every API key (never the secrets).")
    async def api_keys(self, info: Info) -> list[ApiKey] | None:
        async with info.context.read_session() as session:
            return [ApiKey.from_model(k) for k in await list_api_keys(session)]

    @guarded(Capability.SECURITY_EVENT_READ, description="Failed logins, refused attempts, API key misuse.")
    async def security_events(
        self,
        info: Info,
        filter: SecurityEventFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[SecurityEvent] | None:
        flt = filter.to_filter() if filter else SecurityEventFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_security_events(s, flt, p),
            lambda s: count_security_events(s, flt),
            SecurityEvent.from_model,
        )
