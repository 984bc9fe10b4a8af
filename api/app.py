"""create_app(): the Starlette application.

The GraphQL endpoint is handed in by the caller (`schema/asgi.py`), so this core module does not
depend on the schema layer: it owns HTTP concerns — request ids, logs, authentication of
/graphql, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.request import authenticate_request
from api.common.reads import DriverReads
from api.errors import Unauthenticated
from api.export.registry import EXPORT_PATHS, export_routes
from api.graphiql import graphiql_asset_routes, graphiql_html
from api.logs import request_id_var
from api.metrics import Metrics
from api.runtime import Runtime
from api.usage.http import usage_ingest_route
from api.webhook.receive import stripe_webhook_route

log = logging.getLogger("ledgerline.http")

GraphQLFactory = Callable[[Runtime], ASGIApp]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Gives every request an id (the client's X-Request-ID if sane), returns it as a header,
    and writes one JSON log line and one metrics observation per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope["path"] if scope["path"] in _KNOWN_ROUTES else "other"
            self.metrics.observe(scope["method"], route, status, elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "path": scope["path"]},
            )
            request_id_var.reset(token)


_KNOWN_ROUTES = {
    "/graphql",
    "/healthz",
    "/readyz",
    "/metrics",
    "/webhooks/stripe",
    "/v1/usage-events",
    *EXPORT_PATHS,
}


def error_body(message: str, code: str, request_id: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": code, "requestId": request_id, **extra}}],
    }


class GraphQLEndpoint:
    """GET with a browser → the offline GraphiQL page; POST → authenticate, then GraphQL;
    WebSocket → GraphQL, which authenticates the connection's first message (subscriptions)."""

    def __init__(self, graphql: ASGIApp, runtime: Runtime) -> None:
        self.graphql = graphql
        self.runtime = runtime
        self.ide_html = graphiql_html()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.graphql(scope, receive, send)
            return
        request = Request(scope, receive)
        request_id = scope["state"].get("request_id")
        if request.method == "GET":
            response: Response = HTMLResponse(self.ide_html)
            await response(scope, receive, send)
            return
        if request.method != "POST":
            await PlainTextResponse("Method Not Allowed", status_code=405)(scope, receive, send)
            return
        # one connection for the request's reads: the staff lookup, then the GraphQL reads
        async with DriverReads(self.runtime.engine) as reads:
            try:
                principal = await authenticate_request(request, self.runtime, reads)
            except Unauthenticated as exc:
                body = error_body(exc.message, exc.code, request_id)
                await JSONResponse(body, status_code=401, headers={"www-authenticate": "Bearer"})(scope, receive, send)
                return
            except Exception:  # e.g. the database is down: masked, logged with its stack trace
                log.exception("authentication failed unexpectedly")
                await JSONResponse(error_body("Internal error", "INTERNAL", request_id), status_code=500)(
                    scope, receive, send
                )
                return
            scope["state"]["principal"] = principal
            scope["state"]["reads"] = reads
            await self.graphql(scope, receive, send)


def create_app(runtime: Runtime, graphql_factory: GraphQLFactory) -> Starlette:
    metrics = Metrics()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        failing: dict[str, str] = {}

        async def check_postgres() -> None:
            try:
                async with runtime.engine.connect() as conn:
                    await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            except Exception as exc:  # any failure means "not ready"; say which and why
                failing["postgresql"] = type(exc).__name__

        async def check_redis() -> None:
            try:
                await asyncio.wait_for(runtime.redis.ping(), timeout=2)
            except Exception as exc:
                failing["redis"] = type(exc).__name__

        await asyncio.gather(check_postgres(), check_redis())
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": sorted(failing), "errors": failing}, status_code=503
            )
        return JSONResponse({"status": "ready", "postgresql": "ok", "redis": "ok"})

    async def metrics_endpoint(_: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await runtime.close()

    graphql = GraphQLEndpoint(graphql_factory(runtime), runtime)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *graphiql_asset_routes(),
            *export_routes(runtime),
            stripe_webhook_route(runtime),
            usage_ingest_route(runtime),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
