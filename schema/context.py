"""The typed per-request context every resolver receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from api.alert.feed import AlertFeed
from api.audit.record import Actor
from api.auth.permissions import Capability, capabilities_of
from api.auth.principal import Principal
from api.auth.request import WebSocketCredentials
from api.common.reads import DriverReads
from api.settings import Settings
from api.stripe.gateway import StripeGateway

if TYPE_CHECKING:
    from schema.loaders import Loaders


@dataclass(slots=True)
class Context:
    principal: Principal
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    read_session_factory: async_sessionmaker[AsyncSession]
    # the request's reads on one connection (see api.common.reads); the loaders use it too
    reads: DriverReads
    loaders: Loaders
    request_id: str
    stripe: StripeGateway
    client_ip: str | None = None
    user_agent: str | None = None
    # the arq pool, for jobs a mutation enqueues after its commit (None: no queue here)
    arq: Callable[[], Awaitable[ArqRedis]] | None = None
    capabilities: frozenset[Capability] = field(default_factory=frozenset)
    # what this request was refused (recorded as security events after the operation)
    denials: set[tuple[Capability, str]] = field(default_factory=set)
    # set on WebSocket connections (subscriptions): the client's credentials, checked again while
    # the connection lives, and the live feed of new alerts
    websocket: WebSocketCredentials | None = None
    alert_feed: AlertFeed | None = None

    def __post_init__(self) -> None:
        if not self.capabilities:
            self.capabilities = capabilities_of(self.principal)

    def actor(self) -> Actor:
        return Actor.of(self.principal, request_id=self.request_id, ip=self.client_ip, user_agent=self.user_agent)

    def session(self) -> AsyncSession:
        """A short session of its own, for a mutation's transaction (sibling resolvers run
        concurrently and must not share one)."""
        return self.session_factory()

    def read_session(self) -> AsyncSession:
        """A short autocommit session for a query's reads (one round trip per statement)."""
        return self.read_session_factory()


Info = StrawberryInfo[Context, None]
