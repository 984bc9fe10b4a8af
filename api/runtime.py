"""What a running process holds: settings, the database engine and session factory, Redis,
and the token verifier. Built once per process; the edges (GraphQL, workers) borrow from it."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenVerifier
from api.db import make_engine, make_session_factory
from api.settings import Settings
from api.stripe.gateway import StripeGateway


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    verifier: TokenVerifier
    stripe: StripeGateway

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be resolved before the runtime is built")
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            redis=Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2),
            verifier=TokenVerifier(settings),
            stripe=StripeGateway(settings),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.stripe.close()
        await self.engine.dispose()
