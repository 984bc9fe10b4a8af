"""The one way a root list field is resolved: page args checked, one page fetched, the total
counted lazily (only when `totalCount` is selected) in a session of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from api.common.pagination import Page, PageArgs
from api.common.reads import DriverReads
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
    """A page fetched in a read session of its own."""

    async def fetch_in_session(page: PageArgs) -> Page[ModelT]:
        async with info.context.read_session() as session:
            return await fetch(session, page)

    return await paginate_with(info, first, after, fetch_in_session, count, convert)


async def paginate_reads(
    info: Info,
    first: int | None,
    after: str | None,
    fetch: Callable[[DriverReads, PageArgs], Awaitable[Page[ModelT]]],
    count: Callable[[AsyncSession], Awaitable[int]],
    convert: Callable[[ModelT], NodeT],
) -> Connection[NodeT]:
    """A page fetched on the request's driver connection (see api.common.reads)."""
    return await paginate_with(info, first, after, lambda page: fetch(info.context.reads, page), count, convert)


async def paginate_with(
    info: Info,
    first: int | None,
    after: str | None,
    fetch: Callable[[PageArgs], Awaitable[Page[ModelT]]],
    count: Callable[[AsyncSession], Awaitable[int]],
    convert: Callable[[ModelT], NodeT],
) -> Connection[NodeT]:
    settings = info.context.settings
    result = await fetch(page_args(first, after, default=settings.default_page_size, maximum=settings.max_page_size))

    async def total() -> int:
        async with info.context.read_session() as session:
            return await count(session)

    return to_connection(result, convert, total)
