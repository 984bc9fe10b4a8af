"""The ASGI entry point: the schema mounted into api.app.create_app().

`uvicorn --factory schema.asgi:create_asgi_app` (what `ledgerline serve` runs)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from api.app import create_app
from api.auth.principal import Principal
from api.auth.request import WebSocketCredentials
from api.common.reads import DriverReads
from api.errors import Unauthenticated
from api.logs import configure_logging
from api.process import tune_garbage_collector
from api.runtime import Runtime
from api.settings import Settings, get_settings
from schema.context import Context
from schema.loaders import Loaders
from schema.schema import build_schema, subscription_capabilities
from schema.websocket import NOT_YET_AUTHENTICATED, LedgerlineTransportWS, authenticate_connection


class LedgerlineGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LedgerlineTransportWS

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            build_schema(runtime.settings),
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.runtime = runtime
        self.subscription_capabilities = subscription_capabilities()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        state: dict[str, Any] = request.scope.get("state", {})
        principal: Principal | None = state.get("principal")
        websocket = isinstance(request, WebSocket)
        # a WebSocket authenticates in its first message, and runs subscriptions only: its reads
        # take a connection only if something reads (none does today), never for its lifetime
        reads: DriverReads | None = DriverReads(self.runtime.engine) if websocket else state.get("reads")
        if reads is None or (principal is None and not websocket):  # the endpoint authenticates first
            raise Unauthenticated("not authenticated")
        client = request.client
        context = Context(
            principal=principal or NOT_YET_AUTHENTICATED,  # a WebSocket authenticates in its first message
            settings=self.runtime.settings,
            session_factory=self.runtime.session_factory,
            read_session_factory=self.runtime.read_session_factory,
            reads=reads,
            loaders=Loaders(reads, self.runtime.read_session_factory),
            request_id=state.get("request_id") or uuid.uuid4().hex,
            stripe=self.runtime.stripe,
            client_ip=client.host if client else None,
            user_agent=request.headers.get("user-agent"),
            arq=self.runtime.arq,
        )
        if websocket:
            context.websocket = WebSocketCredentials(request, self.runtime)
            context.alert_feed = self.runtime.alert_feed
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType:
        await authenticate_connection(context, self.runtime, self.subscription_capabilities)
        return UnsetType()  # acknowledged with no payload


def graphql_factory(runtime: Runtime) -> ASGIApp:
    return LedgerlineGraphQL(runtime)


def create_asgi_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(Runtime.create(settings), graphql_factory)
    tune_garbage_collector()
    return app
