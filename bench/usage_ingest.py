"""Usage ingest benchmark: both doors over HTTP and, in the same run, the raw database limit.

    .venv/bin/python bench/usage_ingest.py [--duration 15] [--concurrency 4] [--batch 1000]
                                           [--duplicates 0.1] [--workers 1] [--rounds 2]

1. Starts embedded PostgreSQL and Redis under bench/.data-usage/ (recreated each run), migrates,
   adds 1,000 customers (external ids `ext-N`) and a SUM meter, and an API key with `usage:write`.
2. Builds batches of `--batch` events; a `--duplicates` share of each batch repeats events of the
   batch before (retries), so the database decides duplicates as in real traffic. Customers are
   named by external id, the way integrations send them.
3. For each round, in turn: `POST /v1/usage-events` (JSON array), GraphQL `recordUsage`, and the
   raw limit: the same rows (customer ids resolved beforehand) inserted by asyncpg with
   `INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING`, same batches, same concurrency. The server is
   `ledgerline serve --workers N`; the load comes from keep-alive connections in this process.
4. Prints events/s (accepted + duplicates + rejected, i.e. events answered) per target, the HTTP
   door's share of the raw limit, and writes the figures as JSON under bench/results/.

A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import (
    HOST,
    RESULTS_DIR,
    ROOT,
    _read_response,
    cpu_used,
    git_commit,
    ledgerline_argv,
    machine,
    postmaster_pid,
    running_server,
    tree_cpu_seconds,
)

from api.audit.record import Actor
from api.auth.apikeys import create_api_key
from api.db import make_engine, make_session_factory, sync_url
from api.embedded import embedded_services, free_port
from api.migrate import upgrade

DATA_DIR = Path(__file__).resolve().parent / ".data-usage"
CUSTOMERS = 1000
METER = "api_calls"
# the raw limit: the plain statement the issue names, rows as asyncpg arrays
RAW_INSERT = """
INSERT INTO usage_event (customer_id, meter_id, value, occurred_at, idempotency_key, properties, received_at)
SELECT u.c, u.m, u.v::numeric, u.t, u.k, u.p::jsonb, $7::timestamptz
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[]) AS u(c, m, v, t, k, p)
ON CONFLICT (customer_id, idempotency_key) DO NOTHING
"""
RECORD_USAGE = (
    "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) "
    "{ accepted duplicates rejected errors { index code } } }"
)


def make_batches(count: int, size: int, duplicates: float, seed: int, prefix: str) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    batches: list[list[dict[str, Any]]] = []
    previous: list[dict[str, Any]] = []
    repeat = int(size * duplicates)
    for b in range(count):
        fresh = [
            {
                "customer": f"ext-{rng.randrange(CUSTOMERS)}",
                "meter": METER,
                "value": rng.randrange(1, 50),
                "timestamp": (now - timedelta(seconds=rng.randrange(86_400))).isoformat(),
                "idempotencyKey": f"{prefix}-{b}-{i}",
            }
            for i in range(size - (repeat if previous else 0))
        ]
        batch = fresh + (rng.sample(previous, repeat) if previous else [])
        batches.append(batch)
        previous = batch
    return batches


@dataclass
class Target:
    name: str
    events: int
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float | None = None
    postgres_cpu_s: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms) or [0.0]
        return {
            "target": self.name,
            "events_per_s": round(self.events_per_second),
            "requests": self.requests,
            "failures": self.failures,
            "p50_ms": round(ordered[len(ordered) // 2], 1),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1 if len(ordered) > 1 else 0], 1),
            "server_cpu_ms_per_1k_events": round(1000 * 1000 * self.server_cpu_s / self.events, 2)
            if self.server_cpu_s and self.events
            else None,
            "postgres_cpu_ms_per_1k_events": round(1000 * 1000 * self.postgres_cpu_s / self.events, 2)
            if self.postgres_cpu_s and self.events
            else None,
        }


# --- HTTP doors ----------------------------------------------------------------------------------------


def http_post(path: str, port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answered(path: str, body: bytes) -> int | None:
    """Events the response accounts for; None for a failed request."""
    decoded = orjson.loads(body)
    if path == "/graphql":
        if decoded.get("errors"):
            return None
        decoded = decoded["data"]["recordUsage"]
    return int(decoded["accepted"]) + int(decoded["duplicates"]) + int(decoded["rejected"])


async def http_load(
    path: str, port: int, token: str, requests: list[bytes], seconds: float, concurrency: int
) -> Target:
    queue = iter(requests)
    events = failures = count = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal events, failures, count
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for request in queue:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                writer.write(request)
                status, body, _ = await _read_response(reader)
                latencies.append(1000 * (time.perf_counter() - started))
                count += 1
                done = answered(path, body) if status == 200 else None
                if done is None:
                    failures += 1
                    continue
                events += done
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Target(path, events, count, failures, time.perf_counter() - started, latencies)


# --- the raw limit ---------------------------------------------------------------------------------------


async def raw_load(database_url: str, rows: list[tuple[list[Any], ...]], seconds: float, concurrency: int) -> Target:
    """The same inserts as the ingest service's final statement, straight from asyncpg."""
    pool = await asyncpg.create_pool(sync_url(database_url), min_size=concurrency, max_size=concurrency)
    queue = iter(rows)
    events = count = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    now = datetime.now(UTC)

    async def connection() -> None:
        nonlocal events, count
        async with pool.acquire() as conn:
            for batch in queue:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                await conn.execute(RAW_INSERT, *batch, now)
                latencies.append(1000 * (time.perf_counter() - started))
                count += 1
                events += len(batch[0])

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return Target("raw asyncpg INSERT … unnest … ON CONFLICT", events, count, 0, elapsed, latencies)


# --- set-up ----------------------------------------------------------------------------------------------


async def prepare(database_url: str) -> tuple[str, dict[str, uuid.UUID], uuid.UUID]:
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        await conn.execute(
            """INSERT INTO customer
                   (id, name, tier, status, internal_team, currency, external_id, created_at, updated_at)
               SELECT gen_random_uuid(), 'Bench ' || n, 'PRO', 'ACTIVE', false, 'usd', 'ext-' || n, now(), now()
               FROM generate_series(0, $1 - 1) n""",
            CUSTOMERS,
        )
        meter_id = await conn.fetchval(
            """INSERT INTO meter (id, key, name, aggregation, created_at, updated_at)
               VALUES (gen_random_uuid(), $1, 'API calls', 'SUM', now(), now()) RETURNING id""",
            METER,
        )
        ids = {r["external_id"]: r["id"] for r in await conn.fetch("SELECT id, external_id FROM customer")}
    finally:
        await conn.close()
    engine = make_engine(database_url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        issued = await create_api_key(session, Actor.system("bench"), "bench ingest", ["usage:write"], None)
    await engine.dispose()
    return issued.secret, ids, meter_id


def raw_rows(
    batches: list[list[dict[str, Any]]], ids: dict[str, uuid.UUID], meter_id: uuid.UUID
) -> list[tuple[list[Any], ...]]:
    """The columns the ingest service inserts, in its key order (the order that keeps concurrent
    batches sharing keys from deadlocking)."""
    batches = [sorted(batch, key=lambda e: (ids[e["customer"]], e["idempotencyKey"])) for batch in batches]
    return [
        (
            [ids[e["customer"]] for e in batch],
            [meter_id] * len(batch),
            [str(e["value"]) for e in batch],
            [datetime.fromisoformat(e["timestamp"]) for e in batch],
            [e["idempotencyKey"] for e in batch],
            [None] * len(batch),
        )
        for batch in batches
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15, help="seconds per target per round")
    parser.add_argument("--concurrency", type=int, default=4, help="connections sending batches")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of each batch that repeats the last one")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of `ledgerline serve`")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each target keeps its best")
    parser.add_argument("--max-rate", type=float, default=200_000, help="events/s the pre-built batches can feed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    count = int(args.max_rate * args.duration / args.batch) + 1
    rounds: list[list[Target]] = []
    with embedded_services(DATA_DIR) as services:
        upgrade(services.database_url)
        token, ids, meter_id = asyncio.run(prepare(services.database_url))
        port = free_port()
        env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(port),
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "LOG_LEVEL": "WARNING",
        }
        log = RESULTS_DIR / f"logs-{stamp}" / "ledgerline.log"
        with running_server(ledgerline_argv(args.workers), env, port, log) as pid:
            for number in range(1, args.rounds + 1):
                print(f"round {number}/{args.rounds}: building {3 * count} batches …", flush=True)
                results: list[Target] = []
                for name, path in (("http", "/v1/usage-events"), ("graphql", "/graphql")):
                    batches = make_batches(count, args.batch, args.duplicates, number, f"{name}{number}")
                    if path == "/graphql":
                        bodies = [orjson.dumps({"query": RECORD_USAGE, "variables": {"events": b}}) for b in batches]
                    else:
                        bodies = [orjson.dumps(b) for b in batches]
                    requests = [http_post(path, port, token, body) for body in bodies]
                    before = tree_cpu_seconds(pid), tree_cpu_seconds(postmaster_pid(DATA_DIR))
                    result = asyncio.run(http_load(path, port, token, requests, args.duration, args.concurrency))
                    result.server_cpu_s = cpu_used(before[0], tree_cpu_seconds(pid))
                    result.postgres_cpu_s = cpu_used(before[1], tree_cpu_seconds(postmaster_pid(DATA_DIR)))
                    results.append(result)
                    print(f"  {path}: {result.events_per_second:,.0f} events/s", flush=True)
                batches = make_batches(count, args.batch, args.duplicates, number, f"raw{number}")
                rows = raw_rows(batches, ids, meter_id)
                before_pg = tree_cpu_seconds(postmaster_pid(DATA_DIR))
                raw = asyncio.run(raw_load(services.database_url, rows, args.duration, args.concurrency))
                raw.postgres_cpu_s = cpu_used(before_pg, tree_cpu_seconds(postmaster_pid(DATA_DIR)))
                results.append(raw)
                print(f"  raw: {raw.events_per_second:,.0f} events/s", flush=True)
                rounds.append(results)
    best = [max((r[i] for r in rounds), key=lambda t: t.events_per_second) for i in range(3)]
    http, graphql, raw = best
    print()
    print(f"{'target':<45} {'events/s':>10} {'requests':>9} {'fail':>5} {'p50 ms':>8} {'p95 ms':>8}")
    for target in best:
        row = target.row()
        print(
            f"{row['target']:<45} {row['events_per_s']:>10,} {row['requests']:>9} {row['failures']:>5} "
            f"{row['p50_ms']:>8} {row['p95_ms']:>8}"
        )
    share = http.events_per_second / raw.events_per_second if raw.events_per_second else 0.0
    print(
        f"\nPOST /v1/usage-events: {http.events_per_second:,.0f} events/s = {100 * share:.0f}% of the raw limit "
        f"(target ≥ 30,000 events/s and ≥ 50%); GraphQL recordUsage: {graphql.events_per_second:,.0f} events/s"
    )
    out = RESULTS_DIR / f"usage-ingest-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "usage-ingest",
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "commit": git_commit(),
                "settings": vars(args),
                "machine": machine(),
                "best": [t.row() for t in best],
                "http_share_of_raw": share,
                "rounds": [[{**asdict(t), "latencies_ms": None, **t.row()} for t in r] for r in rounds],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
