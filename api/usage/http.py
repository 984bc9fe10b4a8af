"""`POST /v1/usage-events`: the high-volume door of usage ingest (API keys with `usage:write`, or
an owner's token). The body is a JSON array of events (or `{"events": [...]}`) or NDJSON, one
event per line. Same semantics as GraphQL `recordUsage`: the answer counts accepted, duplicates
and rejected events, with an error per rejected one (index, code, message, field)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth.permissions import Capability
from api.auth.request import Refused, authorize_request, json_error
from api.errors import Invalid
from api.runtime import Runtime
from api.usage.ingest import Malformed
from api.usage.service import record_usage

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


def parse_body(body: bytes, content_type: str) -> list[Any]:
    """The events of a request body; an NDJSON line that is not JSON becomes a `Malformed` entry
    (rejected alone, at its index), while a JSON body that does not parse is refused whole."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    stripped = body.lstrip()
    if media_type in NDJSON_TYPES or (stripped[:1] not in (b"[", b"") and b"\n" in stripped.strip()):
        return [_line(number, line) for number, line in enumerate(body.splitlines(), start=1) if line.strip()]
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            f"the body is not valid JSON ({exc}); send a JSON array of events or NDJSON", field="body"
        ) from None
    if isinstance(decoded, dict) and isinstance(decoded.get("events"), list):
        decoded = decoded["events"]
    if isinstance(decoded, dict):
        return [decoded]
    if not isinstance(decoded, list):
        raise Invalid("the body must be a JSON array of events (or NDJSON, one event per line)", field="body")
    return decoded


def _line(number: int, line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return Malformed(f"line {number} is not valid JSON")


def usage_ingest_route(runtime: Runtime) -> Route:
    settings = runtime.settings

    async def ingest(request: Request) -> Response:
        try:
            await authorize_request(request, runtime, [Capability.USAGE_WRITE], "record usage")
        except Refused as refused:
            return refused.response
        body = await request.body()
        try:
            events = parse_body(body, request.headers.get("content-type", ""))
            if len(events) > settings.usage_max_batch:
                raise Invalid(
                    f"{len(events)} events in one request; at most {settings.usage_max_batch} (USAGE_MAX_BATCH)",
                    field="body",
                )
        except Invalid as exc:
            return json_error(exc, 400, request)
        async with runtime.session_factory() as session, session.begin():
            result = await record_usage(session, events)
        return Response(orjson.dumps(result.as_dict()), media_type="application/json")

    return Route("/v1/usage-events", ingest, methods=["POST"])
