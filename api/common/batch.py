"""Batch loads behind the per-request DataLoaders: one statement for many keys.

They return plain rows (Core `Row`s, which expose the same attribute names as the model) rather
than ORM instances: a GraphQL read needs no identity map or change tracking, and building ORM
objects was the largest share of a dashboard request's CPU time. Treat the results as read-only
snapshots; load ORM objects through the domain services to change anything."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

M = TypeVar("M")


def table_of(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


async def load_by_ids(session: AsyncSession, model: type[M], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, M]:
    table = table_of(model)
    rows = (await session.execute(select(table).where(table.c.id.in_(set(ids))))).all()
    return {row.id: cast(M, row) for row in rows}


async def load_grouped(
    session: AsyncSession,
    model: type[M],
    key_column: InstrumentedAttribute[Any],
    keys: Sequence[Any],
    *order_by: ColumnElement[Any] | InstrumentedAttribute[Any],
) -> dict[Any, list[M]]:
    """Rows of `model` whose `key_column` is in `keys`, grouped by that key, in `order_by` order."""
    stmt = select(table_of(model)).where(key_column.in_(set(keys))).order_by(*order_by)
    grouped: dict[Any, list[M]] = defaultdict(list)
    for row in (await session.execute(stmt)).all():
        grouped[getattr(row, key_column.key)].append(cast(M, row))
    return grouped
