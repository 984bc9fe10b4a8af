"""Usage roll-up benchmark: 1,000,000 new events into hourly buckets.

    .venv/bin/python bench/usage_rollup.py [--events 1000000] [--customers 1000] [--spans 1 720] [--runs 2]

1. Starts embedded PostgreSQL and Redis under bench/.data-rollup/ (recreated each run), migrates,
   adds the customers and five meters (one per aggregation: SUM, COUNT, MAX, UNIQUE_COUNT with 50
   distinct users, LATEST).
2. For each time span (hours before now) and run: empties the usage tables, inserts `--events`
   events spread over the customers, the meters and the span (in SQL, not timed), then times one
   `roll_up()` — the function the worker's cron and `rollUpUsage` call — from the first statement
   to its commit. Span 1: the steady state (the cron runs every minute, new events fall in the
   current hours); span 720: a catch-up of 30 days (after an outage or a backfill), where nearly
   every event opens a bucket of its own.
3. Checks the buckets against an aggregation computed straight from the events, and prints the
   time, events/s and buckets written; JSON figures go to bench/results/.

A benchmark, not a test: it asserts nothing about speed (the correctness check does fail loudly).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import RESULTS_DIR, ROOT, git_commit, machine

from api.db import make_engine, make_session_factory, sync_url
from api.embedded import embedded_services
from api.migrate import upgrade
from api.usage.rollup import roll_up

DATA_DIR = Path(__file__).resolve().parent / ".data-rollup"

SETUP = """
INSERT INTO customer (id, name, tier, status, internal_team, currency, created_at, updated_at)
SELECT gen_random_uuid(), 'Rollup ' || n, 'PRO', 'ACTIVE', false, 'usd', now(), now()
FROM generate_series(1, $1::int) n;
INSERT INTO meter (id, key, name, aggregation, unique_property, created_at, updated_at) VALUES
  (gen_random_uuid(), 'b_sum', 'Sum', 'SUM', NULL, now(), now()),
  (gen_random_uuid(), 'b_count', 'Count', 'COUNT', NULL, now(), now()),
  (gen_random_uuid(), 'b_max', 'Max', 'MAX', NULL, now(), now()),
  (gen_random_uuid(), 'b_users', 'Users', 'UNIQUE_COUNT', 'user', now(), now()),
  (gen_random_uuid(), 'b_latest', 'Latest', 'LATEST', NULL, now(), now());
"""

EVENTS = """
WITH c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM customer),
     m AS (SELECT id, key, row_number() OVER (ORDER BY key) - 1 AS n FROM meter)
INSERT INTO usage_event (customer_id, meter_id, value, occurred_at, idempotency_key, properties)
SELECT c.id, m.id, (g % 97) + 1, now() - make_interval(secs => (g::bigint * 7919) % ($3::int * 3600)),
       'e' || g, CASE WHEN m.key = 'b_users' THEN jsonb_build_object('user', 'u' || (g % 50)) END
FROM generate_series(1, $1::int) g
JOIN c ON c.n = g % $2::int
JOIN m ON m.n = (g / $2::int) % 5  -- every customer uses every meter
"""

TRUTH = """
SELECT count(*) FROM (
  SELECT e.customer_id, e.meter_id, date_trunc('hour', e.occurred_at, 'UTC') AS hour,
         CASE m.aggregation
           WHEN 'SUM' THEN sum(e.value) WHEN 'COUNT' THEN count(*) WHEN 'MAX' THEN max(e.value)
           WHEN 'LATEST' THEN (array_agg(e.value ORDER BY e.occurred_at DESC, e.id DESC))[1]
           ELSE count(DISTINCT e.properties ->> 'user') END AS value,
         count(*) AS events
  FROM usage_event e JOIN meter m ON m.id = e.meter_id GROUP BY 1, 2, 3, m.aggregation
) t
FULL JOIN usage_bucket b
  ON b.customer_id = t.customer_id AND b.meter_id = t.meter_id AND b.bucket_start = t.hour
 AND b.value = t.value AND b.event_count = t.events
WHERE t.customer_id IS NULL OR b.customer_id IS NULL
"""


async def run_once(database_url: str, args: argparse.Namespace, span_hours: int) -> dict[str, float | int]:
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        await conn.execute(
            "TRUNCATE usage_event, usage_bucket, usage_bucket_value; UPDATE usage_rollup_state SET last_event_id = 0"
        )
        await conn.execute(EVENTS, args.events, args.customers, span_hours)
        await conn.execute("VACUUM ANALYZE usage_event")
    finally:
        await conn.close()
    engine = make_engine(database_url, null_pool=True)
    started = time.perf_counter()
    result = await roll_up(make_session_factory(engine))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        mismatches = await conn.fetchval(TRUTH)
    finally:
        await conn.close()
    if mismatches:
        raise SystemExit(f"roll-up wrong: {mismatches} buckets differ from the events")
    return {"span_hours": span_hours, "seconds": round(elapsed, 3), "events": result.events, "buckets": result.buckets}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument(
        "--spans", type=int, nargs="+", default=[1, 720], help="the events' time spans, in hours up to now"
    )
    parser.add_argument("--runs", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, float | int]] = []
    with embedded_services(DATA_DIR) as services:
        upgrade(services.database_url)

        async def setup() -> None:
            conn = await asyncpg.connect(sync_url(services.database_url))
            try:
                await conn.execute(SETUP.replace("$1::int", str(int(args.customers))))
            finally:
                await conn.close()

        asyncio.run(setup())
        for span in args.spans:
            for number in range(1, args.runs + 1):
                figures = asyncio.run(run_once(services.database_url, args, span))
                runs.append(figures)
                rate = figures["events"] / figures["seconds"]
                print(
                    f"span {span} h, run {number}: {figures['events']:,} events → {figures['buckets']:,} buckets in "
                    f"{figures['seconds']:.2f} s ({rate:,.0f} events/s); buckets checked against the events",
                    flush=True,
                )
    best = [min((r for r in runs if r["span_hours"] == span), key=lambda r: r["seconds"]) for span in args.spans]
    for b in best:
        print(f"best over {b['span_hours']} h: {b['seconds']:.2f} s for {b['events']:,} events (target ≤ 10 s)")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"usage-rollup-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "usage-rollup",
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "commit": git_commit(),
                "settings": vars(args),
                "machine": machine(),
                "runs": runs,
                "best": best,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
