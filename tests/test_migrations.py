"""The migrations build exactly the schema the models describe: a model change without its
migration (or a migration that drifts from the models) fails here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import api.models  # noqa: F401  (fills Base.metadata)
from api.db import Base, make_engine


def _diff(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrated_database_matches_the_models(make_database: Callable[[], str]) -> None:
    engine = make_engine(make_database(), null_pool=True)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
