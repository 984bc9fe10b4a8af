"""`GET /exports/{dataset}.csv|json`: an export streamed straight from the database cursor.

The response's headers leave only once the snapshot is open, so they carry its time
(`X-Data-As-Of`); the body then goes out one chunk per cursor batch. `X-Withheld-Columns` names
the columns left out because the caller may not read them (empty when none).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from api.auth.request import Refused, authorize_request, json_error, request_actor
from api.errors import Invalid
from api.export.dataset import Dataset
from api.export.encode import FORMATS, MEDIA_TYPES, Format, encoded, encoder
from api.export.run import ExportJob, open_export, plan_export, record_export, required_capabilities
from api.runtime import Runtime

log = logging.getLogger("ledgerline.export")

AS_OF_HEADER = "x-data-as-of"
WITHHELD_HEADER = "x-withheld-columns"


def export_path(dataset: Dataset[Any, Any], kind: Format) -> str:
    return f"/exports/{dataset.name}.{kind}"


class ExportResponse(StreamingResponse):
    """A streaming response that opens the export's snapshot before sending its headers."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], job: ExportJob, kind: Format, headers: dict[str, str]
    ) -> None:
        self.session_factory = session_factory
        self.job = job
        self.kind = kind
        self.status_code = 200
        self.media_type = MEDIA_TYPES[kind]
        self.background = None
        self.init_headers(headers)

    async def stream_response(self, send: Send) -> None:
        async with open_export(self.session_factory, self.job) as rows:
            self.headers[AS_OF_HEADER] = rows.as_of.astimezone(UTC).isoformat()
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in encoded(rows.batches, encoder(self.kind, self.job.column_names)):
                await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def dataset_routes(runtime: Runtime, dataset: Dataset[Any, Any]) -> list[Route]:
    """`/exports/<name>.csv` and `.json` for one dataset."""

    async def export(request: Request, kind: Format) -> Response:
        try:
            principal, capabilities = await authorize_request(
                request, runtime, required_capabilities(dataset), f"export {dataset.noun}"
            )
        except Refused as refused:
            return refused.response
        try:
            job = plan_export(dataset, request.query_params.multi_items(), capabilities)
        except Invalid as exc:
            return json_error(exc, 400, request)
        log.info("%s export (%s) by %s", dataset.name, kind, principal.subject)
        await record_export(runtime.session_factory, request_actor(request, principal), job, kind)
        filename = f"{dataset.name}-{datetime.now(UTC):%Y%m%d}.{kind}"
        headers = {
            "content-disposition": f"attachment; filename={filename}",
            "cache-control": "no-store",
            WITHHELD_HEADER: ",".join(job.withheld),
        }
        return ExportResponse(runtime.session_factory, job, kind, headers)

    def endpoint(kind: Format) -> Route:
        async def handle(request: Request) -> Response:
            return await export(request, kind)

        return Route(export_path(dataset, kind), handle, methods=["GET"])

    return [endpoint(kind) for kind in FORMATS]
