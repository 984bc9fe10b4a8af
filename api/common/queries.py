"""The two statements every list needs (one page in keyset order, and the filtered count), and
the one a single object needs (one row by its id)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.common.pagination import Page, PageArgs, SortKey, apply_keyset, make_page
from api.common.reads import DriverReads

M = TypeVar("M")


async def fetch_page(session: AsyncSession, stmt: Select[M], key: SortKey, page: PageArgs) -> Page[M]:
    return _page_of((await session.execute(apply_keyset(stmt, key, page))).scalars().all(), key, page)


async def read_page(reads: DriverReads, stmt: Select[Any], key: SortKey, page: PageArgs) -> Page[Any]:
    """`fetch_page` on the request's driver connection: a page of read-only attribute rows."""
    return _page_of(await reads.rows(apply_keyset(stmt, key, page)), key, page)


def _page_of(rows: Sequence[M], key: SortKey, page: PageArgs) -> Page[M]:
    return make_page(
        rows, key, page, lambda row: getattr(row, key.column.key), lambda row: getattr(row, key.id_column.key)
    )


async def count_where(session: AsyncSession, model: type[Any], conditions: Sequence[ColumnElement[bool]]) -> int:
    stmt = select(func.count()).select_from(model).where(*conditions)
    return int((await session.execute(stmt)).scalar_one())


async def find_by_id(session: AsyncSession, model: type[M], local_id: uuid.UUID | int) -> M | None:
    """The row of `model` whose primary key is `local_id`, or None."""
    return await session.get(model, local_id)
