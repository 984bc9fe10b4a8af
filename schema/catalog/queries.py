from __future__ import annotations

import strawberry

from api.catalog.service import list_prices
from schema.catalog.types import Price
from schema.context import Info


@strawberry.type
class CatalogQueries:
    @strawberry.field(description="The active prices of the catalog.")
    async def prices(self, info: Info) -> list[Price]:
        async with info.context.session() as session:
            return [Price.from_model(m) for m in await list_prices(session)]
