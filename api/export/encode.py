"""CSV and JSON encodings of export batches, one string per batch.

CSV: a header row, then one row per record; JSON objects and lists in a cell are compact JSON,
and cells a spreadsheet would run as a formula (text starting with = + - @ tab or CR) are
prefixed with `'`. JSON: an array of objects keyed by column name, values unchanged. Times are
UTC ISO 8601, enums their names, ids strings; amounts are decimal numbers in CSV and strings
("12.50", like GraphQL's `Money.amount`) in JSON.
"""

from __future__ import annotations

import abc
import csv
import enum
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from api.export.dataset import Values

Format = Literal["csv", "json"]
FORMATS: tuple[Format, ...] = ("csv", "json")
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> Any:
    """A JSON-ready value."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)  # UUIDs, Decimals


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)):  # a number (e.g. -12.50) is no formula
        return value
    value = plain(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


class Encoder(abc.ABC):
    """`head`, then `batch(rows)` for each batch, then `tail`: the whole file."""

    head: str
    tail: str

    @abc.abstractmethod
    def batch(self, rows: Sequence[Values]) -> str: ...


class CsvEncoder(Encoder):
    def __init__(self, columns: Sequence[str]) -> None:
        header = io.StringIO()
        csv.writer(header).writerow(columns)
        self.head, self.tail = header.getvalue(), ""

    def batch(self, rows: Sequence[Values]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([_csv_cell(v) for v in row] for row in rows)
        return buffer.getvalue()


class JsonEncoder(Encoder):
    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.head, self.tail = "[", "\n]\n"
        self.first = True

    def batch(self, rows: Sequence[Values]) -> str:
        parts: list[str] = []
        for row in rows:
            item = dict(zip(self.columns, (plain(v) for v in row), strict=True))
            parts.append(("\n" if self.first else ",\n") + json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            self.first = False
        return "".join(parts)


def encoder(kind: Format, columns: Sequence[str]) -> Encoder:
    return CsvEncoder(columns) if kind == "csv" else JsonEncoder(columns)


async def encoded(
    batches: AsyncIterator[list[Values]], enc: Encoder, on_rows: Callable[[int], None] | None = None
) -> AsyncIterator[str]:
    """The file as chunks: the head, one chunk per batch, the tail. `on_rows` hears each batch's size."""
    yield enc.head
    async for rows in batches:
        yield enc.batch(rows)
        if on_rows is not None:
            on_rows(len(rows))
    if enc.tail:
        yield enc.tail
