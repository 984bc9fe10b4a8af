"""The one way a root list field is resolved: page args checked, one page fetched in its own
session, the total counted lazily (only when `totalCount` is selected)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from api.common.pagination import Page, PageArgs
from schema.context import Info
from schema.scalars import Connection, page_args, to_connection

ModelT = TypeVar("ModelT")
NodeT = TypeVar("NodeT")


async def paginate(
    info: Info,
    first: int | None,
    after: str | None,
    fetch: Callable[[AsyncSession, PageArgs], Awaitable[Page[ModelT]]],
    count: Callable[[AsyncSession], Awaitable[int]],
    convert: Callable[[ModelT], NodeT],
) -> Connection[NodeT]:
    settings = info.context.settings
    page = page_args(first, after, default=settings.default_page_size, maximum=settings.max_page_size)
    async with info.context.read_session() as session:
        result = await fetch(session, page)

    async def total() -> int:
        async with info.context.read_session() as session:
            return await count(session)

    return to_connection(result, convert, total)
