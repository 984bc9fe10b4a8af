"""Keyset (cursor) pagination done in SQL.

A cursor is an opaque token naming what it belongs to (e.g. `customer:CREATED_AT_DESC`) and the
sort key of the last row: (sort value, id). Rows are ordered by (sort column, id) in one
direction so that `(col, id) < (:v, :id)` walks the index and ties never skip or repeat a row.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from api.errors import Invalid

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SortKey:
    """How one list can be ordered: a column, a direction and the cursor kind that goes with it."""

    kind: str
    column: InstrumentedAttribute[Any]
    id_column: InstrumentedAttribute[Any]
    descending: bool


@dataclass(frozen=True, slots=True)
class PageArgs:
    first: int
    after: str | None = None


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool


def check_first(first: int | None, *, default: int, maximum: int, field: str = "first") -> int:
    if first is None:
        return default
    if first < 0:
        raise Invalid(f"`{field}` must be between 0 and {maximum}, got {first}", field=field)
    if first > maximum:
        raise Invalid(f"`{field}` must be at most {maximum}, got {first}", field=field)
    return first


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return datetime.fromisoformat(value["t"])
    if isinstance(value, dict) and "u" in value:
        return uuid.UUID(value["u"])
    return value


def encode_cursor(kind: str, sort_value: Any, row_id: Any) -> str:
    raw = json.dumps([kind, _encode_value(sort_value), _encode_value(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, field: str = "after") -> tuple[Any, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        cursor_kind, sort_value, row_id = decoded
        value, ident = _decode_value(sort_value), _decode_value(row_id)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Invalid(f"`{field}` is not a valid cursor", field=field) from None
    if cursor_kind != kind:
        raise Invalid(
            f"`{field}` is a cursor of another list or ordering ({cursor_kind}); expected {kind}", field=field
        )
    return value, ident


def apply_keyset(stmt: Select[Any], key: SortKey, page: PageArgs, field: str = "after") -> Select[Any]:
    """Order by the key, skip past the cursor and fetch one row more than asked (to know if
    there is a next page)."""
    if page.after is not None:
        value, ident = decode_cursor(page.after, key.kind, field)
        pair = tuple_(key.column, key.id_column)
        stmt = stmt.where(pair < (value, ident) if key.descending else pair > (value, ident))
    if key.descending:
        stmt = stmt.order_by(key.column.desc(), key.id_column.desc())
    else:
        stmt = stmt.order_by(key.column.asc(), key.id_column.asc())
    return stmt.limit(page.first + 1)


def make_page(
    rows: Sequence[T], key: SortKey, page: PageArgs, sort_value: Callable[[T], Any], row_id: Callable[[T], Any]
) -> Page[T]:
    items = list(rows[: page.first])
    return Page(
        items=items,
        cursors=[encode_cursor(key.kind, sort_value(r), row_id(r)) for r in items],
        has_next_page=len(rows) > page.first,
        has_previous_page=page.after is not None,
    )
