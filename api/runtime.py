"""What a running process holds: settings, the database engine and session factory, Redis,
and the token verifier. Built once per process; the edges (GraphQL, workers) borrow from it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.alert.broadcast import AlertPublisher, enable_publishing
from api.alert.feed import AlertFeed
from api.auth.tokens import TokenVerifier
from api.db import make_engine, make_read_session_factory, make_session_factory
from api.settings import Settings
from api.stripe.gateway import StripeGateway


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    verifier: TokenVerifier
    stripe: StripeGateway
    alert_publisher: AlertPublisher
    # new alerts from every process, for this process's `alertRaised` subscribers (connects on first use)
    alert_feed: AlertFeed
    _arq: ArqRedis | None = field(default=None, repr=False)
    _arq_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def arq(self) -> ArqRedis:
        """The arq pool to enqueue jobs with, created on first use (the API enqueues rarely)."""
        async with self._arq_lock:
            if self._arq is None:
                assert self.settings.redis_url is not None
                redis_settings = RedisSettings.from_dsn(self.settings.redis_url)
                # a request waits for Redis at most a couple of seconds (the sweep job catches up)
                redis_settings.conn_retries, redis_settings.conn_timeout = 1, 2
                self._arq = await create_pool(redis_settings)
            return self._arq

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be resolved before the runtime is built")
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        session_factory = make_session_factory(engine)
        publisher = AlertPublisher(redis)
        enable_publishing(session_factory, publisher)  # alerts raised through it go live after commit
        return cls(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            read_session_factory=make_read_session_factory(engine),
            redis=redis,
            verifier=TokenVerifier(settings),
            stripe=StripeGateway(settings),
            alert_publisher=publisher,
            alert_feed=AlertFeed(settings.redis_url),
        )

    async def close(self) -> None:
        await self.alert_feed.close()
        await self.alert_publisher.drain()
        if self._arq is not None:
            await self._arq.aclose()
        await self.redis.aclose()
        await self.stripe.close()
        await self.engine.dispose()
