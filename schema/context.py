"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from api.auth.principal import Principal
from api.settings import Settings

if TYPE_CHECKING:
    from schema.loaders import Loaders


@dataclass(slots=True)
class Context:
    principal: Principal
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    loaders: Loaders
    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None

    def session(self) -> AsyncSession:
        """A short session of its own: sibling resolvers run concurrently and must not share one."""
        return self.session_factory()


Info = StrawberryInfo[Context, None]
