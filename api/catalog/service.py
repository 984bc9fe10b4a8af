"""The catalog: products and their prices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price, Product
from api.common.batch import load_by_ids
from api.common.reads import DriverReads


async def prices_by_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Price]:
    return await load_by_ids(reads, Price, ids)


async def products_by_ids(reads: DriverReads, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Product]:
    return await load_by_ids(reads, Product, ids)


async def list_prices(session: AsyncSession, *, active_only: bool = True) -> list[Price]:
    stmt = select(Price).order_by(Price.created_at, Price.id)
    if active_only:
        stmt = stmt.where(Price.active.is_(True))
    return list((await session.execute(stmt)).scalars())
