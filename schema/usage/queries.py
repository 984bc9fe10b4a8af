from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.usage.service import list_meters
from schema.context import Info
from schema.permissions import guarded
from schema.usage.types import Meter


@strawberry.type
class UsageQueries:
    @guarded(Capability.USAGE_READ, description="Every meter usage can be recorded against.")
    async def meters(self, info: Info) -> list[Meter] | None:
        async with info.context.read_session() as session:
            return [Meter.from_model(m) for m in await list_meters(session)]
