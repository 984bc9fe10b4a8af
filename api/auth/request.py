"""Authentication of an HTTP request, shared by every authenticated route: failures become
security events, and the caller gets an Unauthenticated error that says why."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from api.audit.record import Actor
from api.auth.apikeys import ApiKeyRejected
from api.auth.authenticate import authenticate
from api.auth.models import SecurityEventKind
from api.auth.permissions import Capability, capabilities_of, forbidden
from api.auth.principal import Principal
from api.auth.security import SecurityEventRecord, record_security_events
from api.common.reads import DriverReads
from api.errors import LedgerlineError, Unauthenticated
from api.runtime import Runtime

log = logging.getLogger("ledgerline.auth")


def request_actor(connection: HTTPConnection, principal: Principal | None) -> Actor:
    client = connection.client
    ip = client.host if client else None
    request_id = connection.scope.get("state", {}).get("request_id")
    user_agent = connection.headers.get("user-agent")
    if principal is None:
        return Actor(
            subject="anonymous", role=None, api_key_id=None, request_id=request_id, ip=ip, user_agent=user_agent
        )
    return Actor.of(principal, request_id=request_id, ip=ip, user_agent=user_agent)


async def authenticate_request(
    connection: HTTPConnection,
    runtime: Runtime,
    reads: DriverReads | None = None,
    authorization: str | None = None,
) -> Principal:
    """The caller, or Unauthenticated (recorded). `reads`: the request's reads, for the staff
    lookup to share their connection (without it, a connection is taken for the lookup alone).
    `authorization` defaults to the request's Authorization header (a WebSocket passes the one its
    client sent in `connection_init`)."""
    if authorization is None:
        authorization = connection.headers.get("authorization")
    try:
        if reads is None:
            async with DriverReads(runtime.engine) as own_reads:
                return await authenticate(authorization, runtime.verifier, runtime.session_factory, own_reads)
        return await authenticate(authorization, runtime.verifier, runtime.session_factory, reads)
    except Unauthenticated as exc:
        actor = request_actor(connection, None)
        kind = SecurityEventKind.AUTHENTICATION_FAILED
        if isinstance(exc, ApiKeyRejected):
            kind = SecurityEventKind.API_KEY_MISUSE
            actor = Actor(
                subject=f"api-key:{exc.api_key_id}",
                role=None,
                api_key_id=exc.api_key_id,
                request_id=actor.request_id,
                ip=actor.ip,
                user_agent=actor.user_agent,
            )
        await record_security_events(
            runtime.session_factory, actor, [SecurityEventRecord(kind, f"{connection.url.path}", exc.message)]
        )
        raise


@dataclass(slots=True)
class WebSocketCredentials:
    """What a WebSocket's client sent to authenticate (in its first message), checked like an HTTP
    request's header whenever the connection needs its principal: at connection and again later,
    so a revoked staff member or API key stops there."""

    connection: HTTPConnection
    runtime: Runtime
    authorization: str | None = None

    async def authenticate(self) -> Principal:
        # "" rather than None: the connection's handshake headers are not credentials here
        return await authenticate_request(self.connection, self.runtime, authorization=self.authorization or "")


def json_error(exc: LedgerlineError, status: int, connection: HTTPConnection, **headers: str) -> JSONResponse:
    """The error body of Ledgerline's REST routes: the GraphQL error's extensions, flattened."""
    request_id = connection.scope.get("state", {}).get("request_id")
    body = {"error": {**exc.extensions, "message": exc.message, "requestId": request_id}}
    return JSONResponse(body, status_code=status, headers=headers or None)


class Refused(Exception):
    """A REST request stopped before its work: `response` says why (401, 403 or 500)."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def authorize_request(
    request: Request, runtime: Runtime, required: Iterable[Capability], what: str
) -> tuple[Principal, frozenset[Capability]]:
    """Authenticates a REST request and checks it holds every `required` capability; a refusal is
    recorded as a security event and raised as `Refused` carrying the JSON response to send."""
    try:
        principal = await authenticate_request(request, runtime)
    except Unauthenticated as exc:
        raise Refused(json_error(exc, 401, request, **{"www-authenticate": "Bearer"})) from None
    except Exception:  # e.g. the database is down: masked, logged with its stack trace
        log.exception("authentication failed unexpectedly")
        raise Refused(json_error(LedgerlineError("Internal error"), 500, request)) from None
    capabilities = capabilities_of(principal)
    for capability in required:
        if capability not in capabilities:
            await record_security_events(
                runtime.session_factory,
                request_actor(request, principal),
                [
                    SecurityEventRecord(
                        SecurityEventKind.FORBIDDEN, f"{request.method} {request.url.path}", f"lacks {capability.value}"
                    )
                ],
            )
            raise Refused(json_error(forbidden(capability, what), 403, request))
    return principal, capabilities
