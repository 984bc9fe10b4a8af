"""GraphQL over WebSocket (`graphql-transport-ws`), for subscriptions only.

The client sends its credentials in `connection_init`'s payload — `{"Authorization": "Bearer
<token>"}` or `{"token": "<token>"}`, a staff JWT or an API key — and they are checked exactly as
an HTTP request's Authorization header is (same checks, same security events). Refusals close the
socket: 4401 when the credentials are missing or not accepted, 4403 when the caller may use no
subscription at all; the close reason says why.

Only subscriptions run over a WebSocket: queries and mutations are HTTP POSTs, where each one is
authenticated, rate-limited and gets its own DataLoaders (a WebSocket's context lives as long as
the connection)."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)

from api.auth.models import SecurityEventKind
from api.auth.permissions import Capability, capabilities_of, forbidden
from api.auth.principal import Principal, PrincipalKind
from api.auth.request import request_actor
from api.auth.security import SecurityEventRecord, record_security_events
from api.errors import Invalid, Unauthenticated
from api.runtime import Runtime
from schema.context import Context

log = logging.getLogger("ledgerline.graphql")

UNAUTHENTICATED_CLOSE = 4401
FORBIDDEN_CLOSE = 4403
INTERNAL_CLOSE = 1011
MAX_REASON_BYTES = 123  # the WebSocket protocol's limit on a close reason
ONLY_SUBSCRIPTIONS = "only subscriptions run over a WebSocket: send queries and mutations as HTTP POSTs"
MISSING_CREDENTIALS = 'no credentials: send {"Authorization": "Bearer <token>"} as the connection_init payload'

# a connection's principal until its `connection_init` is accepted: holds no capability
NOT_YET_AUTHENTICATED = Principal(subject="anonymous", kind=PrincipalKind.INTEGRATION)


class ConnectionRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def authorization_of(params: dict[str, Any]) -> str | None:
    """The Authorization value a `connection_init` payload carries, as an HTTP header would."""
    for key in ("Authorization", "authorization"):
        if isinstance(params.get(key), str):
            return str(params[key])
    token = params.get("token")
    return f"Bearer {token}" if isinstance(token, str) else None


async def authenticate_connection(
    context: Context, runtime: Runtime, subscription_capabilities: frozenset[Capability | None]
) -> None:
    """Sets the connection's principal from its credentials, or raises ConnectionRefused."""
    credentials = context.websocket
    assert credentials is not None, "not a WebSocket context"
    try:
        principal = await credentials.authenticate()
    except Unauthenticated as exc:  # recorded as a security event by authenticate_request
        reason = exc.message if credentials.authorization else MISSING_CREDENTIALS
        raise ConnectionRefused(UNAUTHENTICATED_CLOSE, reason) from None
    except Exception:  # e.g. the database is down
        log.exception("WebSocket authentication failed unexpectedly")
        raise ConnectionRefused(INTERNAL_CLOSE, "Internal error") from None
    capabilities = capabilities_of(principal)
    if not subscription_capabilities & (capabilities | {None}):  # no subscription it may use
        needed = sorted(c for c in subscription_capabilities if c is not None)[0]
        actor = request_actor(credentials.connection, principal)
        refusal = SecurityEventRecord(SecurityEventKind.FORBIDDEN, "WebSocket /graphql", f"lacks {needed.value}")
        await record_security_events(runtime.session_factory, actor, [refusal])
        raise ConnectionRefused(FORBIDDEN_CLOSE, forbidden(needed, "subscribe").message)
    context.principal, context.capabilities = principal, capabilities


def operation_type_of(message: SubscribeMessage) -> OperationType | None:
    """The type of the operation a `subscribe` message asks for (None: unparsable or ambiguous,
    which strawberry reports itself)."""
    payload = message.get("payload") or {}
    try:
        operation = get_operation_ast(parse(payload["query"]), payload.get("operationName"))
    except (GraphQLError, KeyError, TypeError):
        return None
    return operation.operation if operation is not None else None


class LedgerlineTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        operation_type = operation_type_of(message)
        if self.connection_acknowledged and operation_type not in (None, OperationType.SUBSCRIPTION):
            refused = Invalid(ONLY_SUBSCRIPTIONS)
            error = GraphQLError(refused.message, extensions=refused.extensions)
            await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[error.formatted]))
            return
        await super().handle_subscribe(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        if isinstance(payload, dict) and self.context.websocket is not None:
            self.context.websocket.authorization = authorization_of(payload)
        try:
            await super().handle_connection_init(message)  # calls the view's on_ws_connect
        except ConnectionRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)
