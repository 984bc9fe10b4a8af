"""Engine, session factory and the declarative Base (with a constraint naming convention)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import DateTime, MetaData, Uuid, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow, server_default=func.now()
    )


def make_engine(database_url: str, *, pool_size: int = 10, null_pool: bool = False) -> AsyncEngine:
    """An asyncpg engine; `null_pool` for engines that cross event loops (CLI one-shots, tests)."""
    if null_pool:
        return create_async_engine(database_url, poolclass=NullPool)
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_recycle=1800
    )


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for single-statement reads (GraphQL queries, DataLoaders): autocommit, so a read
    costs one round trip instead of BEGIN, the statement and ROLLBACK. Never for writes."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, autoflush=False
    )


def sync_url(database_url: str) -> str:
    """The same URL for tools that speak libpq syntax (asyncpg.connect, psql)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def driver_connection(session: AsyncSession, *, transactional: bool = True) -> asyncpg.Connection:
    """The asyncpg connection under `session`, for hot paths that bypass the ORM. With
    `transactional`, inside the session's transaction (begun here when the session has not run a
    statement yet): statements on it commit or roll back with the session. Read sessions
    (autocommit) pass `transactional=False`."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    if transactional and not raw.is_in_transaction():
        await session.execute(select(literal(1)))  # the adapter begins its transaction on first use
    return raw
