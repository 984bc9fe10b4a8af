"""Customer health through GraphQL, against customers whose every input was chosen by hand.

NOW = 2026-03-15 12:00 UTC; DAY1 = a day earlier. Engagement counts the 30 closed days before the
computation's day; support actions and failed payments the 90 days before it.

A   metered plan: api_calls (SUM, quota 1000 per 30-day period that began 10 days ago) and
    exports (COUNT, no quota).
    usage: 250 used so far against 1000 x 10/30 = 333.33 expected → level 0.75; 500 over the same
           10 days one period earlier → trend 0.5; 100 x (0.7 x 0.75 + 0.3 x 0.5) = 67.5
    engagement: usage on 5 days + a staff edit on a 6th → 6/30 → 20
    support: a refund and a trial extension (a failed refund and a credit 100 days ago do not
             count) → 100 - 2 x 25 = 50
    payment: a failed payment (another 100 days ago does not count), an open dunning case (a
             recovered one does not count), an overdue open invoice (one due later does not count)
             → 100 - 20 - 30 - 20 = 30
    adoption: api_calls used, exports not → 50
    score: 0.3 x 67.5 + 0.25 x 20 + 0.2 x 50 + 0.15 x 30 + 0.1 x 50 = 44.75 → MEDIUM
B39, B40, B70, B71  a licensed plan (usage and adoption neutral: 50 each), no payment issue:
    score = 15 + 5 + 0.25 x engagement + 0.2 x support + 15
    B39: 4 credits 60 days ago (support 0), 5 active days → 39.17 HIGH_RISK
    B40: 4 credits, 6 active days → 40.00 MEDIUM; on NOW also an open dunning case and an
         overdue invoice (payment 50) → 32.50 HIGH_RISK
    B70: 18 active days → 70.00 MEDIUM
    B71: 19 active days → 70.83 HEALTHY
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from api.audit.models import AuditOutcome
from api.audit.record import Actor, record_audit
from api.auth.roles import Role
from api.catalog.models import UsageType
from api.cli import app
from api.customer.models import Customer
from api.db import make_engine, make_session_factory
from api.dunning.models import DunningCaseStatus
from api.health.models import CustomerHealthSnapshot, HealthBand
from api.health.scoring import band_of
from api.health.service import prune_snapshots, recompute_health
from api.invoice.models import InvoiceStatus, Payment, PaymentStatus
from api.settings import get_settings
from api.subscription.models import SubscriptionItem
from api.usage.models import MeterAggregation, QuotaKind, UsageQuota
from tests.conftest import GraphQLClient
from tests.factories import Builder
from tests.test_statement_count import statements_of
from workers.health import compute_customer_health

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
DAY1 = NOW - timedelta(days=1)
STAFF = Actor(subject="support@test", role="support", api_key_id=None)

HEALTH = """
  score band asOf computedOn
  components { name weight score detail }
  trend { delta7d delta30d direction }
"""


def days_ago(n: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=n)


async def audit(session: AsyncSession, action: str, target: Any, when: datetime, **kw: Any) -> None:
    await record_audit(session, STAFF, action, type(target).__name__, str(target.id), occurred_at=when, **kw)


async def build_metered_customer(session: AsyncSession) -> Customer:
    b = Builder(session)
    calls = await b.meter("api_calls", MeterAggregation.SUM)
    exports = await b.meter("exports", MeterAggregation.COUNT)
    calls_price = await b.product_and_price(0, usage_type=UsageType.METERED, meter_id=calls.id)
    exports_price = await b.product_and_price(0, usage_type=UsageType.METERED, meter_id=exports.id)
    session.add(UsageQuota(price_id=calls_price.id, meter_id=calls.id, quota_limit=1000, kind=QuotaKind.SOFT))
    a = await b.customer("A")
    start = days_ago(10)
    sub = await b.subscription(
        a, calls_price, current_period_start=start, current_period_end=start + timedelta(days=30)
    )
    session.add(SubscriptionItem(subscription_id=sub.id, price_id=exports_price.id, quantity=1))
    for n in range(1, 6):
        await b.usage(a, calls, "50", days_ago(n))
    for n in (35, 36):  # the same 10 days of the previous period, outside the engagement window
        await b.usage(a, calls, "250", days_ago(n))
    await audit(session, "updateCustomer", a, days_ago(6))
    paid = await b.invoice(a)
    await audit(session, "refundInvoice", paid, days_ago(45))
    await audit(session, "refundInvoice", paid, days_ago(40), outcome=AuditOutcome.FAILURE)
    await audit(session, "extendTrial", sub, days_ago(50))
    await audit(session, "issueCredit", a, days_ago(100))
    failing = await b.invoice(a, status=InvoiceStatus.OPEN, amount_paid=0)
    await b.dunning_case(failing)
    await b.dunning_case(await b.invoice(a), DunningCaseStatus.RECOVERED)
    await b.invoice(a, status=InvoiceStatus.OPEN, amount_paid=0, due_date=days_ago(3))
    await b.invoice(a, status=InvoiceStatus.OPEN, amount_paid=0, due_date=days_ago(-5))
    for when in (days_ago(10), days_ago(100)):
        session.add(
            Payment(
                invoice_id=failing.id,
                customer_id=a.id,
                amount=9900,
                currency="usd",
                status=PaymentStatus.FAILED,
                created_at=when,
            )
        )
    await session.flush()
    return a


async def build_licensed_customer(
    session: AsyncSession, name: str, active_days: int, credits: int, now: datetime = NOW
) -> Customer:
    b = Builder(session)
    price = await b.product_and_price(5000, product_name=f"Basic {name}")
    customer = await b.customer(name)
    await b.subscription(customer, price)
    for n in range(active_days):
        await audit(session, "updateCustomer", customer, days_ago(n + 2, now))
    for _ in range(credits):
        await audit(session, "issueCredit", customer, days_ago(60, now))
    return customer


async def recompute(url: str, now: datetime) -> None:
    engine = make_engine(url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await recompute_health(session, now)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def health_db(make_database: Callable[[], str]) -> dict[str, Any]:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    ids: dict[str, Any] = {"url": url}
    async with make_session_factory(engine)() as session, session.begin():
        ids["A"] = (await build_metered_customer(session)).id
        for name, days, credits in (("B39", 5, 4), ("B40", 6, 4), ("B70", 18, 0), ("B71", 19, 0)):
            ids[name] = (await build_licensed_customer(session, name, days, credits)).id
    await recompute(url, DAY1)
    async with make_session_factory(engine)() as session, session.begin():
        # B40 after DAY1's computation: an open dunning case and an overdue invoice
        b40 = await session.get(Customer, ids["B40"])
        assert b40 is not None
        b = Builder(session)
        await b.dunning_case(await b.invoice(b40, status=InvoiceStatus.OPEN, amount_paid=0))
        await b.invoice(b40, status=InvoiceStatus.OPEN, amount_paid=0, due_date=days_ago(2))
    await recompute(url, NOW)
    await recompute(url, NOW)  # a rerun the same day replaces the day and raises nothing again
    await engine.dispose()
    return ids


@pytest.fixture
def client(app_factory: Callable[..., GraphQLClient], health_db: dict[str, Any]) -> GraphQLClient:
    return app_factory(health_db["url"])


async def health_of(client: GraphQLClient, customer_id: uuid.UUID, role: Role = Role.ANALYST) -> dict[str, Any]:
    body = await client.query(
        "query($id: ID!) { customer(id: $id) { health {" + HEALTH + "} } }", {"id": str(customer_id)}, role=role
    )
    assert "errors" not in body, body
    return body["data"]["customer"]["health"]  # type: ignore[index,no-any-return]


async def test_each_component_and_the_weighted_score(client: GraphQLClient, health_db: dict[str, Any]) -> None:
    health = await health_of(client, health_db["A"])
    components = {c["name"]: (c["weight"], c["score"]) for c in health["components"]}
    assert components == {
        "usage": (30, 67.5),
        "engagement": (25, 20.0),
        "support": (20, 50.0),
        "payment": (15, 30.0),
        "adoption": (10, 50.0),
    }
    assert [c["name"] for c in health["components"]] == ["usage", "engagement", "support", "payment", "adoption"]
    assert health["score"] == 44.75 and health["band"] == "MEDIUM"
    assert health["computedOn"] == "2026-03-15"
    assert datetime.fromisoformat(health["asOf"]) == NOW
    details = {c["name"]: c["detail"] for c in health["components"]}
    assert "250 used of 333.33 expected" in details["usage"] and "500 over the same span" in details["usage"]
    assert details["engagement"] == "6 active day(s) in the last 30"
    assert details["payment"].startswith("1 failed payment(s)") and "1 open dunning case(s)" in details["payment"]
    assert details["adoption"] == "1 of 2 plan meter(s) used this period"


async def test_band_boundaries(client: GraphQLClient, health_db: dict[str, Any]) -> None:
    found = {name: await health_of(client, health_db[name]) for name in ("B39", "B70", "B71")}
    assert (found["B39"]["score"], found["B39"]["band"]) == (39.17, "HIGH_RISK")
    assert (found["B70"]["score"], found["B70"]["band"]) == (70.0, "MEDIUM")
    assert (found["B71"]["score"], found["B71"]["band"]) == (70.83, "HEALTHY")
    # B40 scored exactly 40.00 on DAY1: MEDIUM
    engine = make_engine(health_db["url"], null_pool=True)
    try:
        async with make_session_factory(engine)() as session:
            day1 = await session.get(CustomerHealthSnapshot, (health_db["B40"], DAY1.date()))
    finally:
        await engine.dispose()
    assert day1 is not None and (day1.score, day1.band) == (Decimal("40.00"), HealthBand.MEDIUM)
    assert [band_of(Decimal(s)) for s in ("39.99", "40", "70", "70.01")] == [
        HealthBand.HIGH_RISK,
        HealthBand.MEDIUM,
        HealthBand.MEDIUM,
        HealthBand.HEALTHY,
    ]


async def test_trend_after_two_days_of_snapshots(client: GraphQLClient, health_db: dict[str, Any]) -> None:
    b40 = await health_of(client, health_db["B40"])
    assert (b40["score"], b40["band"]) == (32.5, "HIGH_RISK")
    assert b40["trend"] == {"delta7d": -7.5, "delta30d": -7.5, "direction": "DECLINING"}
    b70 = await health_of(client, health_db["B70"])
    assert b70["trend"] == {"delta7d": 0.0, "delta30d": 0.0, "direction": "STABLE"}


async def test_customers_filter_by_health_band(client: GraphQLClient, health_db: dict[str, Any]) -> None:
    query = """query($bands: [HealthBand!], $tier: [CustomerTier!]) {
      customers(filter: {healthBand: $bands, tier: $tier}, orderBy: NAME_ASC) {
        totalCount nodes { name health { band } } } }"""

    async def names(**variables: Any) -> list[str]:
        body = await client.query(query, variables, role=Role.SUPPORT)
        assert "errors" not in body, body
        result: Any = body["data"]["customers"]  # type: ignore[index]
        assert result["totalCount"] == len(result["nodes"])
        return [n["name"] for n in result["nodes"]]

    assert await names(bands=["HIGH_RISK"]) == ["B39", "B40"]
    assert await names(bands=["MEDIUM"]) == ["A", "B70"]
    assert await names(bands=["HEALTHY", "MEDIUM"]) == ["A", "B70", "B71"]
    assert await names(bands=["HIGH_RISK"], tier=["KICKSTART"]) == []
    assert await names() == ["A", "B39", "B40", "B70", "B71"]
    body = await client.query("{ customers(filter: {healthBand: [RISKY]}) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"  # type: ignore[index]


async def test_churn_risk_alert_is_raised_once_when_the_band_becomes_high_risk(
    client: GraphQLClient, health_db: dict[str, Any]
) -> None:
    body = await client.query(
        "{ alerts(filter: {kind: [CHURN_RISK]}, first: 10) { totalCount nodes { customerId details } } }",
        role=Role.SUPPORT,
    )
    assert "errors" not in body, body
    alerts: Any = body["data"]["alerts"]  # type: ignore[index]
    assert alerts["totalCount"] == 2
    by_customer = {n["customerId"]: n["details"] for n in alerts["nodes"]}
    ids = {
        name: (await client.query("query($id: ID!) { customer(id: $id) { id } }", {"id": str(health_db[name])}))
        for name in ("B39", "B40")
    }
    b39 = ids["B39"]["data"]["customer"]["id"]  # type: ignore[index]
    b40 = ids["B40"]["data"]["customer"]["id"]  # type: ignore[index]
    # B39 on DAY1, its first computation; B40 on NOW, when it fell from MEDIUM (never twice)
    assert by_customer[b39]["previousBand"] is None and by_customer[b39]["score"] == "39.17"
    assert by_customer[b40]["previousBand"] == "MEDIUM" and by_customer[b40]["score"] == "32.50"


async def test_health_is_null_until_computed_and_readable_by_every_role(
    client: GraphQLClient, health_db: dict[str, Any]
) -> None:
    engine = make_engine(health_db["url"], null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            fresh = await Builder(session).customer("Fresh")
        body = await client.query("query($id: ID!) { customer(id: $id) { health { score } } }", {"id": str(fresh.id)})
        assert body == {"data": {"customer": {"health": None}}}
        for role in Role:
            assert (await health_of(client, health_db["B71"], role))["band"] == "HEALTHY"
    finally:
        async with make_session_factory(engine)() as session, session.begin():
            await session.delete(await session.get(Customer, fresh.id))
        await engine.dispose()


async def test_health_on_a_page_costs_one_statement_whatever_the_page_size(
    app_factory: Callable[..., GraphQLClient], health_db: dict[str, Any]
) -> None:
    # one pooled connection, warmed up, as in the dashboard's statement count
    client = app_factory(health_db["url"], db_pool_size=1)
    page = "query($first: Int) { customers(first: $first) { nodes { name %s } } }"
    with_health = page % "health { score trend { delta7d } }"
    await client.query(with_health, {"first": 1})
    without, _ = await statements_of(client, 5, page % "")
    small, _ = await statements_of(client, 1, with_health)
    large, body = await statements_of(client, 5, with_health)
    assert len(body["data"]["customers"]["nodes"]) == 5
    assert len(small) == len(large) == len(without) + 1
    assert sum("customer_health_snapshot" in statement for statement in large) == 1


async def test_the_cron_job_and_the_cli_compute_today(
    app_factory: Callable[..., GraphQLClient],
    make_database: Callable[[], str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            for name in ("One", "Two"):
                await build_licensed_customer(session, name, active_days=0, credits=4, now=datetime.now(UTC))
        client = app_factory(url)
        assert await compute_customer_health({"runtime": client.runtime}) == 2
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("REDIS_URL", redis_url)
        get_settings.cache_clear()
        # the command runs its own event loop: off this test's loop, as from a shell
        result = await asyncio.to_thread(CliRunner().invoke, app, ["health", "recompute"])
        get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        today = datetime.now(UTC).date()
        assert f"computed the health of 2 customer(s) on {today}" in result.output
        assert "HIGH_RISK 2" in result.output and "0 churn-risk alert(s) raised" in result.output
        async with make_session_factory(engine)() as session:
            rows = (await session.execute(select(CustomerHealthSnapshot))).scalars().all()
        # one row per customer and day, whatever the number of runs; licensed, idle, 4 credits: 35
        assert [(r.computed_on, r.score, r.band) for r in rows] == [(today, Decimal("35.00"), HealthBand.HIGH_RISK)] * 2
        body = await client.query("{ alerts(filter: {kind: [CHURN_RISK]}) { totalCount } }")
        assert body["data"]["alerts"]["totalCount"] == 2  # type: ignore[index]
    finally:
        await engine.dispose()


async def test_the_nightly_job_keeps_health_snapshot_days_of_history(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]
) -> None:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    now = datetime.now(UTC)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            kept = await build_licensed_customer(session, "Kept", active_days=0, credits=0, now=now)
        for days in (100, 20):
            await recompute(url, now - timedelta(days=days))
        async with make_session_factory(engine)() as session, session.begin():
            dormant = await build_licensed_customer(session, "Dormant", active_days=0, credits=0, now=now)
            await recompute_health(session, now - timedelta(days=90), customer_ids=[dormant.id])
        async with make_session_factory(engine)() as session, session.begin():
            # Dormant's only snapshot is its current health: kept, however old
            assert await prune_snapshots(session, 31, now.date()) == 1  # Kept's day -100
            await session.rollback()
        client = app_factory(url, health_snapshot_days=31)
        assert await compute_customer_health({"runtime": client.runtime}) == 2
        async with make_session_factory(engine)() as session:
            rows = (await session.execute(select(CustomerHealthSnapshot))).scalars().all()
        days_kept = sorted(((now.date() - r.computed_on).days, r.customer_id == kept.id) for r in rows)
        assert days_kept == [(0, False), (0, True), (20, True)]  # Dormant's day -90 is history now: gone
    finally:
        await engine.dispose()
