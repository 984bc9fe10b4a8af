"""Batch loads behind the per-request DataLoaders: one statement for many keys."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

M = TypeVar("M")


async def load_by_ids(session: AsyncSession, model: type[M], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, M]:
    id_column: InstrumentedAttribute[uuid.UUID] = model.id  # type: ignore[attr-defined]
    rows = (await session.execute(select(model).where(id_column.in_(set(ids))))).scalars()
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


async def load_grouped(
    session: AsyncSession,
    model: type[M],
    key_column: InstrumentedAttribute[Any],
    keys: Sequence[Any],
    *order_by: ColumnElement[Any] | InstrumentedAttribute[Any],
) -> dict[Any, list[M]]:
    """Rows of `model` whose `key_column` is in `keys`, grouped by that key, in `order_by` order."""
    stmt = select(model).where(key_column.in_(set(keys))).order_by(*order_by)
    grouped: dict[Any, list[M]] = defaultdict(list)
    for row in (await session.execute(stmt)).scalars():
        grouped[getattr(row, key_column.key)].append(row)
    return grouped
