"""CSV and JSON exports of the audit trail: `GET /exports/audit-entries.csv|json`.

The query parameters are those of the GraphQL `auditEntries(filter:)` (actor, action,
targetType, targetId, from, to) and select rows with the same SQL conditions. Rows stream from a
server-side cursor straight into the response, one batch at a time, so an export of any size
holds one batch in memory. Columns follow the field permissions: `ip` and `user_agent` only for
callers who may read them (the columns are not even selected otherwise), the chain hashes only
for those who may read the chain.

CSV cells that a spreadsheet would run as a formula (text starting with = + - @ tab or CR) are
prefixed with `'`; the JSON export carries the values unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from api.audit.models import AuditEntry
from api.audit.service import AuditFilter, audit_conditions
from api.auth.permissions import Capability
from api.auth.request import Refused, authorize_request, json_error
from api.common.daterange import DateRange
from api.errors import Invalid
from api.runtime import Runtime

log = logging.getLogger("ledgerline.export")

CSV_PATH = "/exports/audit-entries.csv"
JSON_PATH = "/exports/audit-entries.json"
BATCH_SIZE = 1000
REQUIRED = (Capability.AUDIT_READ, Capability.DATA_EXPORT)

BASE_COLUMNS = (
    "id",
    "occurred_at",
    "actor_subject",
    "actor_role",
    "api_key_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "before",
    "after",
)
NETWORK_COLUMNS = ("ip", "user_agent")  # AUDIT_NETWORK_READ
CHAIN_COLUMNS = ("prev_hash", "entry_hash")  # AUDIT_CHAIN_READ

# query parameter → AuditFilter field (the names of the GraphQL filter)
TEXT_PARAMS = {"actor": "actor", "action": "action", "targetType": "target_type", "targetId": "target_id"}
TIME_PARAMS = ("from", "to")

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def export_columns(capabilities: frozenset[Capability]) -> tuple[str, ...]:
    columns: tuple[str, ...] = BASE_COLUMNS
    if Capability.AUDIT_NETWORK_READ in capabilities:
        columns += NETWORK_COLUMNS
    if Capability.AUDIT_CHAIN_READ in capabilities:
        columns += CHAIN_COLUMNS
    return columns


def _parse_time(name: str, value: str) -> datetime:
    candidates = [value]
    if " " in value:
        # an unencoded `+02:00` offset arrives as ` 02:00`
        head, _, tail = value.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise Invalid(f"`{name}` is not an ISO 8601 date or date-time: {value[:64]!r}", field=name)


def parse_filter(params: QueryParams) -> AuditFilter:
    """The filter from the query string; unknown or repeated parameters are refused (a typo must
    not silently export everything)."""
    allowed = set(TEXT_PARAMS) | set(TIME_PARAMS)
    for name in params:
        if name not in allowed:
            raise Invalid(f"unknown query parameter `{name}`; expected one of {', '.join(sorted(allowed))}", field=name)
        if len(params.getlist(name)) > 1:
            raise Invalid(f"`{name}` is given more than once", field=name)
    text = {field: params.get(name) or None for name, field in TEXT_PARAMS.items()}
    start, end = (_parse_time(name, params[name]) if params.get(name) else None for name in TIME_PARAMS)
    if start is not None and end is not None and start > end:
        raise Invalid(f"`from` ({start.isoformat()}) is after `to` ({end.isoformat()})", field="from")
    return AuditFilter(**text, occurred=DateRange(start=start, end=end))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)  # UUIDs


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_chunks(columns: Sequence[str]) -> tuple[str, Callable[[Sequence[Any]], str], str]:
    def encode(rows: Sequence[Any]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows([_csv_cell(_plain(v)) for v in row] for row in rows)
        return buffer.getvalue()

    header = io.StringIO()
    csv.writer(header).writerow(columns)
    return header.getvalue(), encode, ""


def _json_chunks(columns: Sequence[str]) -> tuple[str, Callable[[Sequence[Any]], str], str]:
    first = True

    def encode(rows: Sequence[Any]) -> str:
        nonlocal first
        parts: list[str] = []
        for row in rows:
            item = dict(zip(columns, (_plain(v) for v in row), strict=True))
            parts.append(("\n" if first else ",\n") + json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            first = False
        return "".join(parts)

    return "[", encode, "\n]\n"


async def _stream_rows(
    session_factory: async_sessionmaker[AsyncSession],
    columns: Sequence[str],
    conditions: Sequence[ColumnElement[bool]],
    chunks: tuple[str, Callable[[Sequence[Any]], str], str],
) -> AsyncIterator[bytes]:
    head, encode, tail = chunks
    yield head.encode()
    statement = (
        select(*(getattr(AuditEntry, c) for c in columns))
        .where(*conditions)
        .order_by(AuditEntry.occurred_at, AuditEntry.id)
        .execution_options(yield_per=BATCH_SIZE)
    )
    async with session_factory() as session:
        result = await session.stream(statement)
        try:
            async for batch in result.partitions():
                yield encode(batch).encode()
        finally:
            await result.close()
    yield tail.encode()


def audit_export_routes(runtime: Runtime) -> list[Route]:
    """The two export routes; mount them in the application's routes."""

    async def export(request: Request, kind: str) -> Response:
        try:
            principal, capabilities = await authorize_request(request, runtime, REQUIRED, "export audit entries")
        except Refused as refused:
            return refused.response
        try:
            flt = parse_filter(request.query_params)
        except Invalid as exc:
            return json_error(exc, 400, request)
        columns = export_columns(capabilities)
        chunks = _csv_chunks(columns) if kind == "csv" else _json_chunks(columns)
        filename = f"audit-entries-{datetime.now(UTC):%Y%m%d}.{kind}"
        media_type = "text/csv; charset=utf-8" if kind == "csv" else "application/json"
        log.info("audit export (%s) by %s", kind, principal.subject)
        return StreamingResponse(
            _stream_rows(runtime.session_factory, columns, audit_conditions(flt), chunks),
            media_type=media_type,
            headers={"content-disposition": f"attachment; filename={filename}", "cache-control": "no-store"},
        )

    async def export_csv(request: Request) -> Response:
        return await export(request, "csv")

    async def export_json(request: Request) -> Response:
        return await export(request, "json")

    return [
        Route(CSV_PATH, export_csv, methods=["GET"]),
        Route(JSON_PATH, export_json, methods=["GET"]),
    ]
