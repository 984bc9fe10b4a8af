"""What an exportable dataset declares: columns guarded by capabilities, filter parameters, rows.

A column the caller may not read is left out of the file (not blanked) and named in the
export's `withheld` list; for table datasets it is not even selected. A table dataset's rows
are the rows of its GraphQL list under the same filter: its conditions are the domain service's
own condition builder, never a copy of it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api.auth.permissions import Capability
from api.common.money import minor_to_decimal
from api.common.queries import count_where
from api.export.params import Params

R = TypeVar("R")  # what a column reads its value from: a database row, a revenue period ...
F = TypeVar("F")  # the dataset's filter (the domain service's filter dataclass)

BATCH_SIZE = 1000  # rows per server-side cursor fetch: what an export holds in memory at once

Values = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column(Generic[R]):
    name: str
    value: Callable[[R], Any]
    capability: Capability | None = None  # needed on top of the dataset's own read capabilities
    sources: tuple[InstrumentedAttribute[Any], ...] = ()  # the SQL columns `value` reads (tables)


@dataclass(frozen=True, slots=True)
class Param:
    """A filter parameter, as documented in the README and `ledgerline export --help`."""

    name: str
    help: str


def range_params(what: str, start: str = "from", end: str = "to", preset: str = "preset") -> list[Param]:
    """The parameters of one date range (`Params.date_range`): `what` is e.g. "Created"."""
    return [
        Param(start, f"{what} at or after."),
        Param(end, f"{what} before."),
        Param(preset, f"{what} within a preset range (LAST_30_DAYS ...) instead of {start}/{end}."),
    ]


@dataclass(slots=True)
class Rows:
    """An open export: its rows in batches (values in column order) and when its data is from."""

    as_of: datetime
    count: Callable[[], Awaitable[int]]
    batches: AsyncIterator[list[Values]]


class Dataset(abc.ABC, Generic[F, R]):
    def __init__(
        self,
        *,
        name: str,
        noun: str,
        read: Sequence[Capability],
        params: Sequence[Param],
        parse: Callable[[Params], F],
        columns: Sequence[Column[R]],
    ) -> None:
        self.name = name
        self.noun = noun  # "export <noun>" in a FORBIDDEN error
        self.read = tuple(read)
        self.params = tuple(params)
        self._parse = parse
        self.columns = tuple(columns)

    def parse(self, pairs: Sequence[tuple[str, str]]) -> F:
        """The filter; an unknown, repeated or malformed parameter raises Invalid naming it."""
        return self._parse(Params(pairs, [p.name for p in self.params]))

    def permitted(self, capabilities: frozenset[Capability]) -> tuple[tuple[Column[R], ...], tuple[str, ...]]:
        """The columns `capabilities` may read, and the names of those withheld."""
        allowed = tuple(c for c in self.columns if c.capability is None or c.capability in capabilities)
        withheld = tuple(c.name for c in self.columns if c not in allowed)
        return allowed, withheld

    @abc.abstractmethod
    async def open(
        self,
        session: AsyncSession,
        flt: F,
        columns: Sequence[Column[R]],
        capabilities: frozenset[Capability],
        snapshot_at: datetime,
    ) -> Rows:
        """The rows, read in `session`'s snapshot (taken at `snapshot_at`)."""


Conditions = Callable[[F, frozenset[Capability]], Sequence[ColumnElement[bool]]]


class TableDataset(Dataset[F, Row[Any]]):
    """Rows of one table, oldest first, streamed from a server-side cursor."""

    def __init__(
        self,
        *,
        model: type[Any],
        conditions: Conditions[F],
        order: Sequence[InstrumentedAttribute[Any]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.conditions = conditions
        self.order = tuple(order)

    async def open(
        self,
        session: AsyncSession,
        flt: F,
        columns: Sequence[Column[Row[Any]]],
        capabilities: frozenset[Capability],
        snapshot_at: datetime,
    ) -> Rows:
        conditions = self.conditions(flt, capabilities)

        async def count() -> int:
            return await count_where(session, self.model, conditions)

        return Rows(snapshot_at, count, self._batches(session, conditions, columns))

    async def _batches(
        self, session: AsyncSession, conditions: Sequence[ColumnElement[bool]], columns: Sequence[Column[Row[Any]]]
    ) -> AsyncIterator[list[Values]]:
        sources = list(dict.fromkeys(source for column in columns for source in column.sources))
        statement = select(*sources).where(*conditions).order_by(*self.order).execution_options(yield_per=BATCH_SIZE)
        result = await session.stream(statement)
        try:
            async for partition in result.partitions():
                yield [tuple(column.value(row) for column in columns) for row in partition]
        finally:
            await result.close()


def field(attribute: InstrumentedAttribute[Any], capability: Capability | None = None) -> Column[Row[Any]]:
    """A column holding one table column as it is, under the table column's name."""
    return Column(attribute.key, attrgetter(attribute.key), capability, (attribute,))


def fields(*attributes: InstrumentedAttribute[Any], capability: Capability | None = None) -> list[Column[Row[Any]]]:
    return [field(attribute, capability) for attribute in attributes]


def money(
    amount: InstrumentedAttribute[int], currency: InstrumentedAttribute[str], capability: Capability | None = None
) -> Column[Row[Any]]:
    """An amount stored in minor units, as a decimal in the row's currency (1250 usd → 12.50)."""
    amount_key, currency_key = amount.key, currency.key

    def value(row: Row[Any]) -> Decimal | None:
        minor = getattr(row, amount_key)
        return None if minor is None else minor_to_decimal(minor, getattr(row, currency_key))

    return Column(amount_key, value, capability, (amount, currency))
