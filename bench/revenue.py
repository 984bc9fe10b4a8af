"""Revenue benchmark: the `revenue` query for a 12-month range over 100,000 subscriptions and
1,000,000 invoices.

    .venv/bin/python bench/revenue.py [--subscriptions 100000] [--invoices-per-subscription 10]
                                      [--runs 20] [--reseed]

1. Starts embedded PostgreSQL and Redis under bench/.data/revenue/, migrates, and (when the
   database is empty) writes the data set with asyncpg binary COPY: one customer per subscription
   (tiers, two currencies, internal accounts), an MRR history of 2 to 4 rows per subscription
   (trials, upgrades, downgrades, cancellations, pauses) over two years, monthly invoices with
   payments, failed attempts and refunds. Then stores the daily snapshots of the last 13 months
   (`recompute`, what the nightly job and `ledgerline revenue recompute` do), timed.
2. Runs the query through the real application (Starlette + Strawberry + auth, over an in-process
   ASGI transport) `--runs` times after a warm-up, for MONTH, WEEK and DAY granularity, and prints
   min / median / p95 / max in milliseconds.

A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth.roles import Role  # noqa: E402
from api.auth.tokens import issue_token  # noqa: E402
from api.db import make_engine, make_session_factory, sync_url  # noqa: E402
from api.embedded import embedded_services  # noqa: E402
from api.migrate import upgrade  # noqa: E402
from api.revenue.daily import recompute  # noqa: E402
from api.runtime import Runtime  # noqa: E402
from api.settings import Settings  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / ".data" / "revenue"
JWT_SECRET = "ledgerline-bench-secret"
QUERY = """query($g: RevenueGranularity!) { revenue(range: {preset: LAST_12_MONTHS}, granularity: $g, currency: "usd") {
  asOf summary { mrr { amount } } series { start mrr { amount } arr { amount } arpu { amount } activeCustomers
  trialingCustomers openingMrr { amount }
  movements { new { mrr { amount } customers } expansion { mrr { amount } customers }
  contraction { mrr { amount } customers } churned { mrr { amount } customers }
  reactivation { mrr { amount } customers }
  net { amount } } customerChurnRate grossRevenueChurnRate netRevenueRetention ltv { amount }
  byPlan { name mrr { amount } customers } byTier { key mrr { amount } customers }
  payments { chargeSuccessRate chargeFailureRate refundRate refundedAmount { amount } recoveredAmount { amount } }
  trials { started ended converted conversionRate } }
  cohorts { month customers retention { monthsSinceSignup customers rate } } } }"""

CHUNK = 5_000
DAY = timedelta(days=1)
TIERS = ("KICKSTART", "PRO", "CUSTOM")
# (product, monthly unit amount usd, eur, yearly usd)
PLANS = (("Basic", 2900, 2700, 29000), ("Pro", 9900, 9200, 99000), ("Custom", 49900, 46900, 499000))


def new_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


async def generate(database_url: str, subscriptions: int, invoices_per_subscription: int, now: datetime) -> None:
    rng = random.Random(7)
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customer)"):
            return
        started = time.perf_counter()
        products = [(new_id(rng), name) for name, *_ in PLANS]
        await conn.copy_records_to_table(
            "product", records=[(pid, name, True) for pid, name in products], columns=["id", "name", "active"]
        )
        prices: list[tuple[Any, ...]] = []
        price_of: dict[tuple[int, str, str], tuple[uuid.UUID, int, str]] = {}
        for index, (_, usd, eur, yearly) in enumerate(PLANS):
            for currency, interval, amount in (("usd", "MONTH", usd), ("eur", "MONTH", eur), ("usd", "YEAR", yearly)):
                price_id = new_id(rng)
                prices.append((price_id, products[index][0], amount, currency, interval, "LICENSED", True))
                price_of[(index, currency, interval)] = (price_id, amount, interval)
        await conn.copy_records_to_table(
            "price",
            records=prices,
            columns=["id", "product_id", "unit_amount", "currency", "interval", "usage_type", "active"],
        )
        buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}
        for n in range(subscriptions):
            build_subscription(rng, n, now, products, price_of, invoices_per_subscription, buffers)
            if n % CHUNK == CHUNK - 1:
                await flush(conn, buffers)
        await flush(conn, buffers)
        await conn.execute("ANALYZE")
        print(f"generated {subscriptions:,} subscriptions in {time.perf_counter() - started:.0f}s", flush=True)
    finally:
        await conn.close()


COLUMNS: dict[str, list[str]] = {
    "customer": ["id", "name", "tier", "status", "internal_team", "currency", "created_at", "updated_at"],
    "subscription": [
        "id", "customer_id", "status", "currency", "current_period_start", "current_period_end",
        "pause_behavior", "canceled_at", "created_at", "updated_at",
    ],
    "subscription_item": ["id", "subscription_id", "price_id", "quantity"],
    "subscription_mrr_change": [
        "subscription_id", "customer_id", "effective_at", "currency", "status", "paused", "product_id",
        "quantity", "mrr", "undiscounted_mrr", "source", "recorded_at",
    ],
    "invoice": [
        "id", "customer_id", "subscription_id", "status", "currency", "subtotal", "total", "amount_due",
        "amount_paid", "amount_remaining", "amount_refunded", "attempt_count", "paid_at", "created_at", "updated_at",
    ],
    "payment": ["id", "invoice_id", "customer_id", "amount", "currency", "status", "created_at", "updated_at"],
    "refund": ["id", "invoice_id", "amount", "currency", "status", "created_at", "updated_at"],
}  # fmt: skip


async def flush(conn: Any, buffers: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, rows in buffers.items():
        if rows:
            await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
            rows.clear()


def build_subscription(
    rng: random.Random,
    n: int,
    now: datetime,
    products: list[tuple[uuid.UUID, str]],
    price_of: dict[tuple[int, str, str], tuple[uuid.UUID, int, str]],
    invoices: int,
    out: dict[str, list[tuple[Any, ...]]],
) -> None:
    """One customer, their subscription, its MRR story and its invoices."""
    customer_id, sub_id = new_id(rng), new_id(rng)
    plan = rng.choices((0, 1, 2), (50, 38, 12))[0]
    currency = "eur" if rng.random() < 0.25 else "usd"
    interval = "YEAR" if currency == "usd" and plan < 2 and rng.random() < 0.15 else "MONTH"
    created = now - timedelta(seconds=rng.randrange(730 * 86_400))
    quantity = rng.choice((1, 2, 3, 5, 8)) if plan == 1 else 1
    internal = rng.random() < 0.005
    out["customer"].append((customer_id, f"Customer {n}", TIERS[plan], "ACTIVE", internal, currency, created, created))
    price_id, amount, _ = price_of[(plan, currency, interval)]

    def mrr(qty: int, status: str, paused: bool) -> int:
        if status not in ("ACTIVE", "PAST_DUE") or paused:
            return 0
        return (amount * qty + (6 if interval == "YEAR" else 0)) // (12 if interval == "YEAR" else 1)

    story: list[tuple[datetime, str, bool, int]] = []
    moment = created
    status, paused = "ACTIVE", False
    if rng.random() < 0.3:
        story.append((moment, "TRIALING", False, quantity))
        moment += timedelta(days=14)
        if rng.random() < 0.25 or moment > now:
            status = "CANCELED" if moment <= now else "TRIALING"
    if status != "TRIALING":
        story.append((moment, status, False, quantity))
    for _ in range(rng.choice((0, 0, 1, 2))):  # upgrades, downgrades, pauses, cancellations
        moment += timedelta(seconds=rng.randrange(60 * 86_400, 200 * 86_400))
        if moment > now or status == "CANCELED":
            break
        roll = rng.random()
        if roll < 0.45:
            quantity = max(1, quantity + rng.choice((-2, -1, 1, 2, 3)))
        elif roll < 0.55:
            paused = not paused
        elif roll < 0.65:
            status = "PAST_DUE"
        else:
            status = "CANCELED"
        story.append((moment, status, paused, quantity))
    for at, st, pa, qty in story:
        value = mrr(qty, st, pa)
        out["subscription_mrr_change"].append(
            (sub_id, customer_id, at, currency, st, pa, products[plan][0], qty, value, value, "SEED", at)
        )
    out["subscription"].append(
        (
            sub_id, customer_id, status, currency, now - DAY, now + timedelta(days=29),
            "VOID" if paused else None, moment if status == "CANCELED" else None, created, moment,
        )
    )  # fmt: skip
    out["subscription_item"].append((new_id(rng), sub_id, price_id, quantity))
    for k in range(invoices):
        issued = now - timedelta(days=30 * k + rng.randrange(30), seconds=rng.randrange(86_400))
        total = amount * quantity
        failures = 1 if rng.random() < 0.08 else 0
        paid = rng.random() < 0.97
        invoice_id = new_id(rng)
        paid_at = issued + timedelta(days=3 * failures, minutes=5) if paid else None
        refunded = total // 4 if paid and rng.random() < 0.02 else 0
        out["invoice"].append(
            (
                invoice_id, customer_id, sub_id, "PAID" if paid else "OPEN", currency, total, total, total,
                total if paid else 0, 0 if paid else total, refunded, failures + int(paid), paid_at, issued, issued,
            )
        )  # fmt: skip
        for f in range(failures):
            at = issued + timedelta(minutes=1, days=f)
            out["payment"].append((new_id(rng), invoice_id, customer_id, total, currency, "FAILED", at, at))
        if paid_at is not None:
            out["payment"].append(
                (new_id(rng), invoice_id, customer_id, total, currency, "SUCCEEDED", paid_at, paid_at)
            )
        if refunded:
            at = (paid_at or issued) + timedelta(days=2)
            out["refund"].append((new_id(rng), invoice_id, refunded, currency, "SUCCEEDED", at, at))


async def store_snapshots(database_url: str, now: datetime) -> float:
    today = now.date()
    first = date(today.year - 1, today.month, 1) - timedelta(days=1)
    engine = make_engine(database_url, null_pool=True)
    started = time.perf_counter()
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await recompute(session, first, today - timedelta(days=1))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def measure(database_url: str, redis_url: str, runs: int) -> dict[str, list[float]]:
    from api.app import create_app
    from schema.asgi import graphql_factory

    settings = Settings(database_url=database_url, redis_url=redis_url, jwt_secret=JWT_SECRET, log_level="WARNING")
    runtime = Runtime.create(settings)
    app = create_app(runtime, graphql_factory)
    headers = {"Authorization": f"Bearer {issue_token(settings, 'analyst@bench', Role.ANALYST)}"}
    timings: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for granularity in ("MONTH", "WEEK", "DAY"):
            body = {"query": QUERY, "variables": {"g": granularity}}
            for _ in range(3):  # warm-up: connections, parser and validation caches
                response = await client.post("/graphql", json=body, headers=headers)
                assert response.status_code == 200 and "errors" not in response.json(), response.text[:500]
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.post("/graphql", json=body, headers=headers)
                samples.append((time.perf_counter() - started) * 1000)
                assert "errors" not in response.json()
            timings[granularity] = samples
    await runtime.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--invoices-per-subscription", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reseed", action="store_true", help="delete the data directory first")
    args = parser.parse_args()
    if args.reseed and DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
    now = datetime.now(UTC)
    with embedded_services(DATA_DIR) as urls:
        upgrade(urls.database_url)
        asyncio.run(generate(urls.database_url, args.subscriptions, args.invoices_per_subscription, now))
        seconds = asyncio.run(store_snapshots(urls.database_url, now))
        print(f"stored 13 months of daily snapshots (usd and eur) in {seconds:.1f}s", flush=True)
        timings = asyncio.run(measure(urls.database_url, urls.redis_url, args.runs))
    for granularity, samples in timings.items():
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"revenue LAST_12_MONTHS {granularity:<5} runs={len(samples)}  min {ordered[0]:.1f} ms  "
            f"median {statistics.median(ordered):.1f} ms  p95 {p95:.1f} ms  max {ordered[-1]:.1f} ms"
        )


if __name__ == "__main__":
    main()
