"""The arq worker starts against the real Redis and runs its jobs."""

from __future__ import annotations

import time

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from api.settings import get_settings
from workers import settings as worker_settings


async def test_worker_runs_heartbeat_job(redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    redis_settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(redis_settings)
    await pool.delete(worker_settings.HEARTBEAT_KEY)
    job = await pool.enqueue_job("heartbeat")
    assert job is not None
    worker = Worker(
        functions=worker_settings.WorkerSettings.functions,
        on_startup=worker_settings.startup,
        on_shutdown=worker_settings.shutdown,
        redis_settings=redis_settings,
        burst=True,
        poll_delay=0,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    beat = await pool.get(worker_settings.HEARTBEAT_KEY)
    assert beat is not None and abs(float(beat) - time.time()) < 60
    await pool.aclose()
    get_settings.cache_clear()
