"""Shared GraphQL types: Money, date ranges, Node, connections."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import strawberry

from api.common.daterange import DateRange, DateRangePreset, make_range
from api.common.globalid import split_global_id
from api.common.money import MoneyAmount, format_minor
from api.common.pagination import Page, PageArgs, check_first
from api.errors import Invalid

DateRangePresetEnum = strawberry.enum(DateRangePreset, name="DateRangePreset")


@strawberry.type(description="An amount of money: `amount` as a decimal string, `minorUnits` exact.")
class Money:
    amount: str = strawberry.field(description='Decimal amount, e.g. "12.50" (a string: no float rounding).')
    minor_units: int = strawberry.field(description="Integer minor units, e.g. 1250 cents.")
    currency: str = strawberry.field(description="ISO 4217 currency code, lower case.")

    @classmethod
    def of(cls, minor_units: int, currency: str) -> Money:
        return cls(amount=format_minor(minor_units, currency), minor_units=minor_units, currency=currency)


@strawberry.input(description="A time range: `from` (inclusive) and `to` (exclusive), or a `preset`.")
class DateRangeInput:
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    preset: DateRangePresetEnum | None = None  # type: ignore[valid-type]

    def to_range(self, field: str) -> DateRange:
        return make_range(self.from_, self.to, self.preset, field=field)


def date_range(value: DateRangeInput | None, field: str) -> DateRange:
    return value.to_range(field) if value is not None else DateRange()


# --- Node and global ids ---------------------------------------------------------------------------


@strawberry.interface(description="An object with a global id (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Global id: base64 of `Type:localId` (a UUID; an integer for AuditEntry and SecurityEvent; "
        "`meter/customer/hour` for UsageBucket). `node(id:)` refetches it."
    )


def to_global_id(type_name: str, local_id: uuid.UUID | int | str) -> strawberry.ID:
    return strawberry.ID(base64.b64encode(f"{type_name}:{local_id}".encode()).decode())


def from_global_id(global_id: str, field: str = "id") -> tuple[str, str]:
    parts = split_global_id(global_id)
    if parts is None:
        raise Invalid(f"`{field}` is not a valid global id", field=field)
    return parts


def parse_id(value: str, expected_type: str, field: str = "id") -> uuid.UUID:
    """A global id of `expected_type`, or a bare UUID, → the UUID. Errors name `field`."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    type_name, local_id = from_global_id(value, field)
    if type_name != expected_type:
        raise Invalid(f"`{field}` is the id of a {type_name}, expected a {expected_type}", field=field)
    try:
        return uuid.UUID(local_id)
    except ValueError:
        raise Invalid(f"`{field}` does not contain a valid UUID", field=field) from None


# --- connections -----------------------------------------------------------------------------------

NodeT = TypeVar("NodeT")
ModelT = TypeVar("ModelT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of results in keyset order (Relay connection).")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match the filter (all pages).")
    async def total_count(self) -> int:
        return await self.count()

    @strawberry.field(description="The nodes of this page, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def to_connection(
    page: Page[ModelT], convert: Callable[[ModelT], NodeT], count: Callable[[], Awaitable[int]]
) -> Connection[NodeT]:
    edges = [Edge(cursor=c, node=convert(m)) for m, c in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        count=count,
    )


FirstArg = Annotated[int | None, strawberry.argument(description="Page size (default 20, at most 100).")]
AfterArg = Annotated[str | None, strawberry.argument(description="Cursor of the last item of the previous page.")]


def enum_list(values: Sequence[object] | None) -> tuple[object, ...]:
    return tuple(values or ())


def page_args(first: int | None, after: str | None, *, default: int, maximum: int) -> PageArgs:
    return PageArgs(first=check_first(first, default=default, maximum=maximum), after=after)


@strawberry.input(description='An amount as a decimal string in a currency, e.g. {amount: "12.50", currency: "usd"}.')
class MoneyInput:
    amount: str = strawberry.field(description='Decimal amount, e.g. "12.50"; no more decimals than the currency has.')
    currency: str = strawberry.field(description="ISO 4217 currency code, e.g. `usd`.")

    def to_amount(self) -> MoneyAmount:
        return MoneyAmount(self.amount, self.currency)
