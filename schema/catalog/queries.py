from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.catalog.service import list_prices
from schema.catalog.types import Price
from schema.context import Info
from schema.permissions import guarded


@strawberry.type
class CatalogQueries:
    @guarded(Capability.CATALOG_READ, description="The active prices of the catalog.")
    async def prices(self, info: Info) -> list[Price] | None:
        async with info.context.read_session() as session:
            return [Price.from_model(m) for m in await list_prices(session)]
