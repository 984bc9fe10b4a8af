"""A request's reads: one pooled connection, statements sent by the driver directly.

SQLAlchemy's execution layer (session, execution context, result processing, the greenlet
bridge) costs 1-2 ms of CPU per statement, several times what PostgreSQL spends on the small
keyed selects of a GraphQL read (a page of customers: 3.5 ms through a session, 0.3 ms through
asyncpg). These reads still build their statements with SQLAlchemy Core — the same statements
the services define — but each statement shape is compiled once, and its rows come back as
named tuples with the columns as attributes and SQLAlchemy's result types applied (enum
members, not strings), like Core rows. Treat them as read-only snapshots.

The connection is taken from the engine's pool on first use and kept until `close()`, so the
statements of one request share it (authentication's staff lookup and the GraphQL reads).
Statements on it run one at a time (a lock: sibling resolvers run concurrently), without a
transaction (autocommit), so never write through it."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, cast

from asyncpg import Connection as DriverConnection
from asyncpg import Record
from sqlalchemy import Float, Numeric, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import LRUCache

ResultProcessor = Callable[[Any], Any]

# compiled statements by SQLAlchemy cache key: as many shapes as SQLAlchemy's own cache keeps
STATEMENT_CACHE_SIZE = 500


class RowShape:
    """Turns the driver's records of one statement into attribute rows, converting the columns
    whose SQLAlchemy type processes results (enums) as SQLAlchemy would."""

    def __init__(self, names: Sequence[str], processors: dict[str, ResultProcessor]) -> None:
        row_type: Any = namedtuple("Row", names)  # type: ignore[misc]  # names known at run time
        self.make: Callable[[Iterable[Any]], Any] = row_type._make
        self.processors = [(i, processors[name]) for i, name in enumerate(names) if name in processors]

    def rows(self, records: list[Record]) -> list[Any]:
        make = self.make
        if not self.processors:
            return [make(record.values()) for record in records]
        rows = []
        for record in records:
            values = list(record.values())
            for index, process in self.processors:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows


class CompiledRead:
    """One statement shape: its SQL for the driver, how to order its parameters, its rows."""

    def __init__(self, stmt: Select[Any], dialect: Dialect, key: CacheKey | None) -> None:
        # compiled with its cache key, so that later statements of the same shape can bind theirs
        compiled = stmt.compile(dialect=dialect, cache_key=key)
        assert isinstance(compiled, SQLCompiler) and compiled.positional
        self.compiled = compiled
        self.expands = bool(compiled.post_compile_params or compiled.literal_execute_params)
        self.processors: dict[str, ResultProcessor] = {}
        for column in stmt.selected_columns:
            process = column.type.dialect_impl(dialect).result_processor(dialect, _type_oid(column.type))
            if process is not None and column.name is not None:
                self.processors[column.name] = process
        self.shape: RowShape | None = None

    def arguments(self, key: CacheKey | None, values: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        """The SQL text and positional arguments for the instance of the shape with this cache key
        (its bound values; None: the values compiled in), `values` given by parameter name."""
        compiled = self.compiled
        extracted = key.bindparams if key else None
        params = compiled.construct_params(values, extracted_parameters=extracted, escape_names=False)
        sql: str = compiled.string
        order: Sequence[str] = compiled.positiontup or ()
        # bind processors (e.g. an enum member → its string), as SQLAlchemy applies them
        processors: Mapping[str, Any] = compiled._bind_processors
        if self.expands:  # IN lists: one parameter per element, rendered now
            state = compiled.construct_expanded_state(params, escape_names=False)
            sql, order, params = state.statement, state.positiontup or (), dict(state.parameters)
            processors = {**processors, **state.processors}
        return sql, [processors[name](params[name]) if name in processors else params[name] for name in order]

    def rows(self, records: list[Record]) -> list[Any]:
        if not records:
            return []
        if self.shape is None:
            self.shape = RowShape(list(records[0].keys()), self.processors)
        return self.shape.rows(records)


_COMPILED: LRUCache[Any, CompiledRead] = LRUCache(STATEMENT_CACHE_SIZE)


def compiled_read(stmt: Select[Any], dialect: Dialect) -> tuple[CompiledRead, CacheKey | None]:
    key = stmt._generate_cache_key()
    if key is None:  # a statement SQLAlchemy cannot cache: compiled every time
        return CompiledRead(stmt, dialect, None), None
    entry = _COMPILED.get((dialect.name, key.key))
    if entry is None:
        entry = _COMPILED[(dialect.name, key.key)] = CompiledRead(stmt, dialect, key)
    return entry, key


NUMERIC_OID, FLOAT8_OID = 1700, 701  # PostgreSQL's type oids, which asyncpg's numeric processors need


def _type_oid(column_type: TypeEngine[Any]) -> int | None:
    """The oid a result processor expects for the column's type (only numbers need one)."""
    if isinstance(column_type, Float):
        return FLOAT8_OID
    if isinstance(column_type, Numeric):
        return NUMERIC_OID
    return None


class DriverReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: DriverConnection | None = None
        self._lock = asyncio.Lock()

    async def _driver_connection(self) -> DriverConnection:
        if self._driver is None:
            self._connection = await self._engine.connect()
            raw = await self._connection.get_raw_connection()
            self._driver = cast(DriverConnection, raw.driver_connection)
        return self._driver

    async def rows(self, stmt: Select[Any], values: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows of `stmt`, as attribute rows (see the module's docstring). `values` binds named
        parameters (`bindparam("name")`): a statement built once and kept can be run with new
        values without building it again (building a statement costs more than running it)."""
        compiled, key = compiled_read(stmt, self._engine.dialect)
        sql, arguments = compiled.arguments(key, values)
        async with self._lock:
            driver = await self._driver_connection()
            records = await driver.fetch(sql, *arguments)
        return compiled.rows(records)

    async def close(self) -> None:
        """Give the connection back to the pool (if one was taken)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> DriverReads:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
