"""Crash safety of the usage roll-up: the real `ledgerline worker` process is killed with SIGKILL
in the middle of a roll-up; the next roll-up loses nothing and counts nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
from arq import create_pool
from arq.connections import RedisSettings

from api.db import make_engine, make_session_factory, sync_url
from api.usage.rollup import roll_up

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS, HOURS = 40, 48

SETUP = f"""
INSERT INTO customer (id, name, tier, status, internal_team, currency, created_at, updated_at)
SELECT gen_random_uuid(), 'Crash ' || n, 'PRO', 'ACTIVE', false, 'usd', now(), now() FROM generate_series(1, {CUSTOMERS}) n;
INSERT INTO meter (id, key, name, aggregation, unique_property, created_at, updated_at) VALUES
  (gen_random_uuid(), 'c_sum', 'Sum', 'SUM', NULL, now(), now()),
  (gen_random_uuid(), 'c_max', 'Max', 'MAX', NULL, now(), now()),
  (gen_random_uuid(), 'c_latest', 'Latest', 'LATEST', NULL, now(), now()),
  (gen_random_uuid(), 'c_users', 'Users', 'UNIQUE_COUNT', 'user', now(), now());
"""

# n events spread over the customers, the meters and the last HOURS hours (values and users vary)
EVENTS = f"""
INSERT INTO usage_event (customer_id, meter_id, value, occurred_at, idempotency_key, properties)
SELECT c.id, m.id, (g % 97) + 0.5, date_trunc('hour', now()) - make_interval(secs => (g::bigint * 7919) % ({HOURS} * 3600)),
       $2 || g, jsonb_build_object('user', 'u' || (g % 13))
FROM generate_series(1, $1::int) g
JOIN LATERAL (SELECT id FROM customer ORDER BY id OFFSET (g % {CUSTOMERS}) LIMIT 1) c ON true
JOIN LATERAL (SELECT id FROM meter ORDER BY key OFFSET (g % 4) LIMIT 1) m ON true
"""

# what the buckets must hold, computed straight from the events
TRUTH = """
SELECT e.customer_id, e.meter_id, date_trunc('hour', e.occurred_at, 'UTC') AS hour,
       CASE m.aggregation
         WHEN 'SUM' THEN sum(e.value)
         WHEN 'MAX' THEN max(e.value)
         WHEN 'LATEST' THEN (array_agg(e.value ORDER BY e.occurred_at DESC, e.id DESC))[1]
         ELSE count(DISTINCT e.properties ->> 'user')
       END AS value,
       count(*) AS events
FROM usage_event e JOIN meter m ON m.id = e.meter_id
GROUP BY 1, 2, 3, m.aggregation
"""
BUCKETS = "SELECT customer_id, meter_id, bucket_start AS hour, value, event_count AS events FROM usage_bucket"


async def _rows(conn: asyncpg.Connection, sql: str) -> set[tuple[object, ...]]:
    return {
        (r["customer_id"], r["meter_id"], r["hour"], r["value"].normalize(), r["events"]) for r in await conn.fetch(sql)
    }


ROLLING_UP = """SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
  AND query LIKE '%usage_rollup_fresh%' AND pid <> pg_backend_pid()"""  # any step of a roll-up
IN_TRANSACTION = """SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%usage_rollup_state%'
  AND state <> 'idle' AND pid <> pg_backend_pid()"""


async def _until(conn: asyncpg.Connection, sql: str, want_rows: bool, seconds: float) -> None:
    """Polls `sql` (a count) until it is non-zero (`want_rows`) or zero."""
    async with asyncio.timeout(seconds):
        while bool(await conn.fetchval(sql)) != want_rows:  # noqa: ASYNC110  (the state is in PostgreSQL)
            await asyncio.sleep(0.01)


async def test_a_worker_killed_mid_rollup_loses_nothing_and_counts_nothing_twice(
    make_database: Callable[[], str], redis_url: str
) -> None:
    database_url = make_database()
    conn = await asyncpg.connect(sync_url(database_url))
    engine = make_engine(database_url, null_pool=True)
    try:
        await conn.execute(SETUP)
        await conn.execute(EVENTS, 20_000, "first-")
        first = await roll_up(make_session_factory(engine))  # a first roll-up that completes
        assert first.events == 20_000
        await conn.execute(EVENTS, 200_000, "second-")
        before = await _rows(conn, BUCKETS)

        # the real worker, on its own Redis database (its queue is nobody else's)
        worker_redis = redis_url.rsplit("/", 1)[0] + "/7"
        pool = await create_pool(RedisSettings.from_dsn(worker_redis))
        await pool.flushdb()
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": worker_redis, "LOG_FORMAT": "text"}
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            "worker",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await pool.enqueue_job("roll_up_usage")
            await _until(conn, ROLLING_UP, want_rows=True, seconds=60)
            os.killpg(worker.pid, signal.SIGKILL)
        finally:
            if worker.returncode is None:
                os.killpg(worker.pid, signal.SIGKILL)
            await worker.wait()
            await pool.flushdb()
            await pool.aclose()
        await _until(conn, IN_TRANSACTION, want_rows=False, seconds=120)

        # nothing of the interrupted run is left: watermark and buckets as after the first run
        assert await conn.fetchval("SELECT last_event_id FROM usage_rollup_state") == first.watermark
        assert await _rows(conn, BUCKETS) == before

        again = await roll_up(make_session_factory(engine))
        assert again.events == 200_000
        assert await _rows(conn, BUCKETS) == await _rows(conn, TRUTH)
    finally:
        await conn.close()
        await engine.dispose()
