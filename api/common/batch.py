"""Batch loads behind the per-request DataLoaders: one statement for many keys.

They run on the request's driver connection (api.common.reads) and return plain attribute rows
(which expose the same names as the model) rather than ORM instances: a GraphQL read needs no
identity map or change tracking, and building ORM objects was the largest share of a dashboard
request's CPU time. Treat the results as read-only snapshots; load ORM objects through the
domain services to change anything."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import cache, cached_property
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute

from api.common.reads import DriverReads

M = TypeVar("M")


def table_of(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def any_of(column: ColumnElement[Any] | InstrumentedAttribute[Any], name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`: the keys as one array parameter, so the statement is the same (one
    prepared statement) whatever the number of keys, unlike an IN list."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


@cache
def _by_ids(table: Table) -> Select[Any]:
    return select(table).where(any_of(table.c.id, "ids"))


class GroupedSelect:
    """The rows of a model whose key column is one of the keys (bound as `:keys`), in order.
    Declared once (at import) and built on first use, then run with new keys: building a
    statement costs more than running it. (Built late because a foreign-key column takes its
    type from the column it refers to, which may not be known yet at import.)"""

    def __init__(
        self,
        model: type[Any],
        key_column: InstrumentedAttribute[Any],
        *order_by: ColumnElement[Any] | InstrumentedAttribute[Any],
    ) -> None:
        self._parts = (model, key_column, order_by)
        self.key = key_column.key

    @cached_property
    def stmt(self) -> Select[Any]:
        model, key_column, order_by = self._parts
        return select(table_of(model)).where(any_of(key_column, "keys")).order_by(*order_by)


async def load_by_ids(reads: DriverReads, model: type[M], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, M]:
    rows = await reads.rows(_by_ids(table_of(model)), {"ids": list(set(ids))})
    return {row.id: cast(M, row) for row in rows}


async def load_grouped(reads: DriverReads, query: GroupedSelect, keys: Sequence[Any]) -> dict[Any, list[Any]]:
    """The rows of `query` for `keys`, grouped by key."""
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in await reads.rows(query.stmt, {"keys": list(set(keys))}):
        grouped[getattr(row, query.key)].append(row)
    return grouped
