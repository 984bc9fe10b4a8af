"""Revenue analytics through GraphQL, against a dataset whose every figure was worked out by hand.

Prices: Basic 50.00/month, Pro 100.00/seat/month, Pro yearly 1,200.00/seat/year (USD), and
Pro EUR 90.00/month. MRR in cents. The months are January to March 2026 (UTC).

USD customers and their story (=> MRR):
  A  PRO tier     signed up 2025-12-10  Pro x2 = 20000; Feb 10 -> x3 = 30000 (expansion 10000)
  B  KICKSTART    2025-12-05            Pro x1 = 10000; Jan 20 -> Basic = 5000 (contraction 5000)
  C  PRO          2026-01-05            Pro yearly x1 with 25% off forever: 120000 / 12 x 0.75 = 7500 (new)
  D  KICKSTART    2025-11-01            Basic 5000; canceled Feb 15 (churn 5000); a new Basic
                                        subscription Mar 10 (reactivation 5000)
  E  KICKSTART    2026-01-10            trial Jan 10 -> Jan 24, then Basic 5000 (new; trial converted)
  F  PRO          2026-02-01            trial Feb 1 -> canceled Feb 15 (trial not converted; never MRR)
  G  CUSTOM       2025-12-01            Pro x1 with 20.00 off per invoice until 2026-02-01: 8000,
                                        10000 from Feb 1 (expansion 2000); paused Mar 5 (churn 10000)
  J  KICKSTART    2026-03-03            Basic with a 50% `once` coupon: 5000 (one-offs leave MRR alone) (new)
  I  internal account, Basic 5000 and a payment: excluded everywhere
EUR: H  PRO  2026-01-15  Pro EUR 9000 (new in the EUR report, absent from USD).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.roles import Role
from api.catalog.models import Price, PriceInterval
from api.customer.models import Customer, CustomerTier
from api.db import make_engine, make_session_factory
from api.invoice.models import Invoice, Payment, PaymentStatus, Refund, RefundStatus
from api.revenue.daily import recompute
from api.revenue.history import current_facts, latest_change, record_mrr_change
from api.revenue.models import MrrSource, RevenueDay, SubscriptionMrrChange
from api.seed import seed_demo_data
from api.subscription.models import PauseBehavior, Subscription, SubscriptionItem, SubscriptionStatus
from tests.conftest import GraphQLClient
from tests.factories import Builder

ACTIVE, TRIALING, CANCELED = SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.CANCELED


def at(month: int, day: int, year: int = 2026, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


async def move(
    session: AsyncSession,
    sub: Subscription,
    when: datetime,
    *,
    status: SubscriptionStatus | None = None,
    price: Price | None = None,
    quantity: int | None = None,
    paused: bool | None = None,
) -> None:
    """Change the subscription as Stripe would, and record the change the way the mirror does."""
    if status is not None:
        sub.status = status
    if paused is not None:
        sub.pause_behavior = PauseBehavior.VOID if paused else None
    values: dict[str, Any] = {}
    if price is not None:
        values["price_id"] = price.id
    if quantity is not None:
        values["quantity"] = quantity
    if values:
        await session.execute(
            update(SubscriptionItem).where(SubscriptionItem.subscription_id == sub.id).values(**values)
        )
    await session.flush()
    await record_mrr_change(session, sub, source=MrrSource.SEED, effective_at=when)


async def pay(
    session: AsyncSession,
    customer: Customer,
    amount: int,
    when: datetime,
    *,
    failures: int = 0,
    paid: bool = True,
    currency: str = "usd",
) -> Invoice:
    b = Builder(session)
    invoice = await b.invoice(
        customer,
        amount,
        currency=currency,
        status="PAID" if paid else "OPEN",
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid else amount,
        paid_at=when if paid else None,
        attempt_count=failures + int(paid),
        created_at=when - timedelta(days=4),
    )
    for n in range(failures):
        session.add(
            Payment(
                invoice_id=invoice.id,
                customer_id=customer.id,
                amount=amount,
                currency=currency,
                status=PaymentStatus.FAILED,
                created_at=when - timedelta(days=3 - n),
            )
        )
    if paid:
        session.add(
            Payment(
                invoice_id=invoice.id,
                customer_id=customer.id,
                amount=amount,
                currency=currency,
                status=PaymentStatus.SUCCEEDED,
                created_at=when,
            )
        )
    await session.flush()
    return invoice


async def build_fixture(session: AsyncSession) -> dict[str, Any]:
    b = Builder(session)
    basic = await b.product_and_price(5000, product_name="Basic")
    pro = await b.product_and_price(10000, product_name="Pro")
    pro_yearly = Price(
        product_id=pro.product_id,
        unit_amount=120000,
        currency="usd",
        interval=PriceInterval.YEAR,
        usage_type=pro.usage_type,
    )
    pro_eur = Price(
        product_id=pro.product_id,
        unit_amount=9000,
        currency="eur",
        interval=PriceInterval.MONTH,
        usage_type=pro.usage_type,
    )
    session.add_all([pro_yearly, pro_eur])
    await session.flush()

    async def customer(name: str, tier: CustomerTier, created: datetime, **kw: Any) -> Customer:
        return await b.customer(name, tier=tier, created_at=created, **kw)

    async def subscribe(
        c: Customer, price: Price, quantity: int, start: datetime, status: SubscriptionStatus = ACTIVE, **kw: Any
    ) -> Subscription:
        sub = await b.subscription(c, price, quantity, status=status, created_at=start, **kw)
        await record_mrr_change(session, sub, source=MrrSource.SEED, effective_at=start)
        return sub

    a = await customer("A", CustomerTier.PRO, at(12, 10, 2025))
    sub_a = await subscribe(a, pro, 2, at(12, 10, 2025))
    await move(session, sub_a, at(2, 10), quantity=3)

    bc = await customer("B", CustomerTier.KICKSTART, at(12, 5, 2025))
    sub_b = await subscribe(bc, pro, 1, at(12, 5, 2025))
    await move(session, sub_b, at(1, 20), price=basic)

    c = await customer("C", CustomerTier.PRO, at(1, 5))
    await subscribe(c, pro_yearly, 1, at(1, 5), discount_percent_off=Decimal(25), discount_duration="forever")

    d = await customer("D", CustomerTier.KICKSTART, at(11, 1, 2025))
    sub_d = await subscribe(d, basic, 1, at(11, 1, 2025))
    await move(session, sub_d, at(2, 15), status=CANCELED)
    await subscribe(d, basic, 1, at(3, 10))

    e = await customer("E", CustomerTier.KICKSTART, at(1, 10))
    sub_e = await subscribe(e, basic, 1, at(1, 10), status=TRIALING)
    await move(session, sub_e, at(1, 24), status=ACTIVE)

    f = await customer("F", CustomerTier.PRO, at(2, 1, hour=9))
    sub_f = await subscribe(f, pro, 1, at(2, 1, hour=9), status=TRIALING)
    await move(session, sub_f, at(2, 15), status=CANCELED)

    g = await customer("G", CustomerTier.CUSTOM, at(12, 1, 2025))
    sub_g = await subscribe(
        g,
        pro,
        1,
        at(12, 1, 2025),
        discount_amount_off=2000,
        discount_duration="repeating",
        discount_ends_at=datetime(2026, 2, 1, 6, tzinfo=UTC),
    )
    await move(session, sub_g, at(3, 5), paused=True)

    j = await customer("J", CustomerTier.KICKSTART, at(3, 3))
    await subscribe(j, basic, 1, at(3, 3), discount_percent_off=Decimal(50), discount_duration="once")

    internal = await customer("I", CustomerTier.KICKSTART, at(12, 1, 2025), internal_team=True)
    await subscribe(internal, basic, 1, at(12, 1, 2025))
    await pay(session, internal, 5000, at(1, 5))

    h = await customer("H", CustomerTier.PRO, at(1, 15), currency="eur")
    await subscribe(h, pro_eur, 1, at(1, 15))
    await pay(session, h, 9000, at(1, 15), currency="eur")

    # January: A paid 20000; D paid 5000 after one failed attempt (recovered); B's 10000 failed
    # (still open); A was refunded 5000. February: A paid 30000. March: nothing.
    paid_a = await pay(session, a, 20000, at(1, 10))
    await pay(session, d, 5000, at(1, 4), failures=1)
    await pay(session, bc, 10000, at(1, 20), failures=1, paid=False)
    session.add(
        Refund(invoice_id=paid_a.id, amount=5000, currency="usd", status=RefundStatus.SUCCEEDED, created_at=at(1, 25))
    )
    session.add(
        Refund(invoice_id=paid_a.id, amount=700, currency="usd", status=RefundStatus.FAILED, created_at=at(1, 26))
    )
    await pay(session, a, 30000, at(2, 10))
    await session.flush()
    return {"basic": str(basic.product_id), "pro": str(pro.product_id)}


@pytest.fixture(scope="module")
def revenue_db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="module")
async def products(revenue_db: str) -> dict[str, Any]:
    engine = make_engine(revenue_db, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        found = await build_fixture(session)
    await engine.dispose()
    return found


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], revenue_db: str, products: dict[str, Any]) -> GraphQLClient:
    return app_factory(revenue_db)


PERIOD = """
  start end mrr { amount minorUnits currency } arr { minorUnits } arpu { minorUnits }
  activeCustomers trialingCustomers openingMrr { minorUnits } openingCustomers
  movements { new { mrr { minorUnits } customers } expansion { mrr { minorUnits } customers }
              contraction { mrr { minorUnits } customers } churned { mrr { minorUnits } customers }
              reactivation { mrr { minorUnits } customers } net { minorUnits } }
  customerChurnRate grossRevenueChurnRate netRevenueRetention ltv { minorUnits }
  byPlan { key name mrr { minorUnits } customers } byTier { key mrr { minorUnits } customers }
  payments { chargesSucceeded chargesFailed chargedAmount { minorUnits } failedAmount { minorUnits }
             chargeSuccessRate chargeFailureRate refunds refundedAmount { minorUnits } refundRate
             recoveredInvoices recoveredAmount { minorUnits } }
  trials { started ended converted conversionRate }
"""
QUERY = (
    "query($from: DateTime, $to: DateTime, $g: RevenueGranularity!, $c: String!) {"
    " revenue(range: {from: $from, to: $to}, granularity: $g, currency: $c) {"
    " currency granularity start end asOf summary {" + PERIOD + "} series {" + PERIOD + "}"
    " cohorts { month customers retention { monthsSinceSignup customers rate mrr { minorUnits } } } } }"
)
Q1 = {"from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z", "g": "MONTH", "c": "usd"}


async def report(client: GraphQLClient, role: Role = Role.ANALYST, **variables: Any) -> dict[str, Any]:
    body = await client.query(QUERY, {**Q1, **variables}, role=role)
    assert "errors" not in body, body
    return body["data"]["revenue"]  # type: ignore[index,no-any-return]


def minor(period: dict[str, Any], *path: str) -> int:
    node: Any = period
    for key in path:
        node = node[key]
    return int(node["minorUnits"])


def movements(period: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k: (v["mrr"]["minorUnits"], v["customers"]) for k, v in period["movements"].items() if k != "net"}


def cells(segments: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {s["key"]: (s["mrr"]["minorUnits"], s["customers"]) for s in segments}


async def test_monthly_figures_match_the_hand_computation(client: GraphQLClient, products: dict[str, Any]) -> None:
    r = await report(client)
    assert (r["currency"], r["granularity"], r["start"], r["end"]) == (
        "usd",
        "MONTH",
        "2026-01-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
    )
    jan, feb, mar = r["series"]
    basic, pro = products["basic"], products["pro"]

    # Opening (end of 2025-12-31): A 20000 + B 10000 + D 5000 + G 8000 (10000 - 2000 off) = 43000, 4 customers
    assert (minor(jan, "openingMrr"), jan["openingCustomers"]) == (43000, 4)
    # January: new C 7500 + E 5000 = 12500 (2); contraction B 10000 -> 5000
    assert movements(jan) == {
        "new": (12500, 2),
        "expansion": (0, 0),
        "contraction": (5000, 1),
        "churned": (0, 0),
        "reactivation": (0, 0),
    }
    # 43000 + 12500 - 5000 = 50500 across A, B, C, D, E, G
    assert (minor(jan, "mrr"), jan["activeCustomers"], minor(jan["movements"], "net")) == (50500, 6, 7500)
    assert jan["mrr"] == {"amount": "505.00", "minorUnits": 50500, "currency": "usd"}
    assert minor(jan, "arr") == 12 * 50500
    assert minor(jan, "arpu") == 8417  # 50500 / 6 = 8416.67, half up
    assert jan["customerChurnRate"] == 0  # 0 churned / 4
    assert jan["grossRevenueChurnRate"] == pytest.approx(5000 / 43000)
    assert jan["netRevenueRetention"] == pytest.approx((43000 - 5000) / 43000)
    assert jan["ltv"] is None  # no churn: LTV is undefined
    # plans: Pro = A 20000 + C 7500 + G 8000; Basic = B + D + E
    assert cells(jan["byPlan"]) == {pro: (35500, 3), basic: (15000, 3)}
    assert {s["name"] for s in jan["byPlan"]} == {"Pro", "Basic"}
    assert cells(jan["byTier"]) == {"PRO": (27500, 2), "KICKSTART": (15000, 3), "CUSTOM": (8000, 1)}
    assert jan["trials"] == {"started": 1, "ended": 1, "converted": 1, "conversionRate": 1.0}
    assert jan["trialingCustomers"] == 0
    # payments: succeeded A 20000 + D 5000; failed D 5000 (Jan 1) + B 10000 (Jan 17); refunded 5000
    # (the failed 7.00 refund does not count); D's invoice was paid after a failed attempt
    assert jan["payments"] == {
        "chargesSucceeded": 2,
        "chargesFailed": 2,
        "chargedAmount": {"minorUnits": 25000},
        "failedAmount": {"minorUnits": 15000},
        "chargeSuccessRate": 0.5,
        "chargeFailureRate": 0.5,
        "refunds": 1,
        "refundedAmount": {"minorUnits": 5000},
        "refundRate": 0.2,  # 5000 / 25000
        "recoveredInvoices": 1,
        "recoveredAmount": {"minorUnits": 5000},
    }

    # February: G's discount ends Feb 1 (+2000), A 2 -> 3 seats (+10000); D cancels (-5000)
    assert movements(feb) == {
        "new": (0, 0),
        "expansion": (12000, 2),
        "contraction": (0, 0),
        "churned": (5000, 1),
        "reactivation": (0, 0),
    }
    assert (minor(feb, "openingMrr"), minor(feb, "mrr"), feb["activeCustomers"]) == (50500, 57500, 5)
    assert feb["customerChurnRate"] == pytest.approx(1 / 6)
    assert feb["grossRevenueChurnRate"] == pytest.approx(5000 / 50500)
    assert feb["netRevenueRetention"] == pytest.approx((50500 + 12000 - 5000) / 50500)
    assert minor(feb, "arpu") == 11500  # 57500 / 5
    assert minor(feb, "ltv") == 69000  # 11500 / (1/6)
    assert feb["trials"] == {"started": 1, "ended": 1, "converted": 0, "conversionRate": 0.0}
    assert (feb["payments"]["chargesSucceeded"], feb["payments"]["chargeSuccessRate"]) == (1, 1.0)
    assert (feb["payments"]["refundRate"], feb["payments"]["recoveredInvoices"]) == (0.0, 0)
    assert cells(feb["byTier"]) == {"PRO": (37500, 2), "KICKSTART": (10000, 2), "CUSTOM": (10000, 1)}

    # March: J new 5000 (its once coupon ignored); G paused (-10000); D back (+5000)
    assert movements(mar) == {
        "new": (5000, 1),
        "expansion": (0, 0),
        "contraction": (0, 0),
        "churned": (10000, 1),
        "reactivation": (5000, 1),
    }
    assert (minor(mar, "mrr"), mar["activeCustomers"], minor(mar["movements"], "net")) == (57500, 6, 0)
    assert mar["customerChurnRate"] == pytest.approx(0.2)  # 1 / 5
    assert minor(mar, "arpu") == 9583  # 57500 / 6 = 9583.33
    assert minor(mar, "ltv") == 47917  # (57500 / 6) / (1 / 5) = 47916.67
    assert mar["payments"]["chargeSuccessRate"] is None and mar["payments"]["refundRate"] is None
    assert cells(mar["byPlan"]) == {pro: (37500, 2), basic: (20000, 4)}

    # the whole range: 43000 + 17500 + 12000 + 5000 - 5000 - 15000 = 57500
    s = r["summary"]
    assert movements(s) == {
        "new": (17500, 3),
        "expansion": (12000, 2),
        "contraction": (5000, 1),
        "churned": (15000, 2),
        "reactivation": (5000, 1),
    }
    assert (minor(s, "openingMrr"), minor(s, "mrr"), s["customerChurnRate"]) == (43000, 57500, 0.5)
    assert s["trials"] == {"started": 2, "ended": 2, "converted": 1, "conversionRate": 0.5}

    # cohorts (USD customers by signup month): Jan = C, E; Feb = F (never paid); Mar = J
    assert r["cohorts"] == [
        {
            "month": "2026-01",
            "customers": 2,
            "retention": [
                {"monthsSinceSignup": k, "customers": 2, "rate": 1.0, "mrr": {"minorUnits": 12500}} for k in range(3)
            ],
        },
        {
            "month": "2026-02",
            "customers": 1,
            "retention": [
                {"monthsSinceSignup": k, "customers": 0, "rate": 0.0, "mrr": {"minorUnits": 0}} for k in range(2)
            ],
        },
        {
            "month": "2026-03",
            "customers": 1,
            "retention": [{"monthsSinceSignup": 0, "customers": 1, "rate": 1.0, "mrr": {"minorUnits": 5000}}],
        },
    ]


async def test_each_currency_stands_alone(client: GraphQLClient) -> None:
    eur = await report(client, c="EUR", to="2026-02-01T00:00:00Z")
    (jan,) = eur["series"]
    assert (minor(jan, "openingMrr"), minor(jan, "mrr"), movements(jan)["new"]) == (0, 9000, (9000, 1))
    assert jan["mrr"]["currency"] == "eur"
    assert (jan["payments"]["chargesSucceeded"], minor(jan["payments"], "chargedAmount")) == (1, 9000)


async def test_days_and_weeks_add_up_to_the_month(client: GraphQLClient) -> None:
    days = (await report(client, g="DAY", to="2026-03-01T00:00:00Z", **{"from": "2026-02-01T00:00:00Z"}))["series"]
    assert len(days) == 28
    # Feb 1: G's discount ended at 06:00 (expansion 2000) and F started a trial
    assert movements(days[0])["expansion"] == (2000, 1) and days[0]["trials"]["started"] == 1
    assert days[0]["trialingCustomers"] == 1 and days[14]["trialingCustomers"] == 0  # F canceled Feb 15
    for before, after in itertools.pairwise(days):
        assert minor(after, "openingMrr") == minor(before, "mrr")
    assert sum(minor(d["movements"], "net") for d in days) == 57500 - 50500
    weeks = (await report(client, g="WEEK"))["series"]
    # ISO weeks cut at the range: Thu Jan 1 - Sun Jan 4, then Monday to Sunday, the last Mon Mar 30 - Tue Mar 31
    assert (weeks[0]["start"], weeks[0]["end"]) == ("2026-01-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00")
    assert (weeks[-1]["start"], weeks[-1]["end"]) == ("2026-03-30T00:00:00+00:00", "2026-04-01T00:00:00+00:00")
    assert sum(minor(w["movements"], "net") for w in weeks) == 57500 - 43000
    assert sum(w["payments"]["chargesSucceeded"] for w in weeks) == 3


async def test_snapshots_equal_the_live_computation_and_can_be_recomputed(
    client: GraphQLClient, revenue_db: str
) -> None:
    live = await report(client, g="DAY")
    engine = make_engine(revenue_db, null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            written = await recompute(session, datetime(2025, 12, 31).date(), datetime(2026, 3, 31).date())
            assert written == 2 * 91  # usd and eur, Dec 31 to Mar 31
        stored = await report(client, g="DAY")
        assert stored["asOf"] != live["asOf"]
        assert {**stored, "asOf": None} == {**live, "asOf": None}
        # stored days are what the report reads; recomputing a range rebuilds them from the history
        async with make_session_factory(engine)() as session, session.begin():
            await session.execute(update(RevenueDay).where(RevenueDay.currency == "usd").values(mrr=RevenueDay.mrr + 1))
        tampered = await report(client)
        assert minor(tampered["series"][0], "mrr") == 50501
        async with make_session_factory(engine)() as session, session.begin():
            await recompute(session, datetime(2025, 12, 31).date(), datetime(2026, 3, 31).date(), ["usd"])
        assert minor((await report(client))["series"][0], "mrr") == 50500
    finally:
        await engine.dispose()


async def test_today_is_computed_live_on_top_of_yesterdays_snapshot(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]
) -> None:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    now = datetime.now(UTC)
    today = now.date()
    try:
        async with make_session_factory(engine)() as session, session.begin():
            b = Builder(session)
            price = await b.product_and_price(4000)
            early = await b.customer("Early")
            sub = await b.subscription(early, price, created_at=now - timedelta(days=3))
            await record_mrr_change(session, sub, source=MrrSource.SEED, effective_at=now - timedelta(days=3))
            await recompute(session, today - timedelta(days=8), today - timedelta(days=1))
            late = await b.customer("Late")
            sub2 = await b.subscription(late, price, 2, created_at=now - timedelta(seconds=5))
            await record_mrr_change(session, sub2, source=MrrSource.SEED, effective_at=now - timedelta(seconds=5))
        client = app_factory(url)
        body = await client.query(
            'query { revenue(range: {preset: LAST_7_DAYS}, granularity: DAY, currency: "usd") {'
            " asOf series { start mrr { minorUnits } movements { new { mrr { minorUnits } customers } } } } }",
            role=Role.FINANCE,
        )
        assert "errors" not in body, body
        revenue: Any = body["data"]["revenue"]  # type: ignore[index]
        last = revenue["series"][-1]
        assert last["start"].startswith(today.isoformat())
        assert last["mrr"]["minorUnits"] == 4000 + 8000
        assert last["movements"]["new"] == {"mrr": {"minorUnits": 8000}, "customers": 1}
        # the oldest figure used is the stored snapshot's (computed before the query)
        assert datetime.fromisoformat(revenue["asOf"]) <= datetime.now(UTC)
    finally:
        await engine.dispose()


async def test_bad_arguments_name_the_field_and_roles_are_enforced(client: GraphQLClient) -> None:
    body = await client.query(QUERY, {**Q1, "c": "dollars"})
    assert body["errors"][0]["extensions"]["field"] == "currency"  # type: ignore[index]
    body = await client.query(QUERY, {**Q1, "from": None})
    assert body["errors"][0]["extensions"]["field"] == "range.from"  # type: ignore[index]
    body = await client.query(QUERY, {**Q1, "from": "2026-03-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert body["errors"][0]["extensions"]["field"] == "range.from"  # type: ignore[index]
    for role in (Role.OPERATIONS, Role.SUPPORT):
        body = await client.query(QUERY, Q1, role=role)
        assert body["data"] == {"revenue": None}
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]


async def test_history_only_grows_when_mrr_facts_change(revenue_db: str) -> None:
    engine = make_engine(revenue_db, null_pool=True)
    try:
        async with make_session_factory(engine)() as session:  # never committed
            b = Builder(session)
            price = await b.product_and_price(99000, interval=PriceInterval.YEAR)
            c = await b.customer("Yearly", created_at=at(1, 1))
            sub = await b.subscription(
                c, price, 2, status=ACTIVE, created_at=at(1, 1), discount_amount_off=12000, discount_duration="forever"
            )
            first = await record_mrr_change(session, sub, effective_at=at(1, 1))
            assert first is not None
            # 99000 x 2 / 12 = 16500; 120.00 off per yearly invoice = 1000 a month
            assert (first.mrr, first.undiscounted_mrr) == (15500, 16500)
            assert await record_mrr_change(session, sub, effective_at=at(1, 2)) is None
            sub.status = SubscriptionStatus.PAST_DUE
            second = await record_mrr_change(session, sub, effective_at=at(1, 3))
            assert second is not None and second.mrr == 15500  # past due still counts
            sub.status = SubscriptionStatus.UNPAID
            third = await record_mrr_change(session, sub, effective_at=at(1, 1))
            # never earlier than the newest row; unpaid counts 0
            assert third is not None and (third.effective_at, third.mrr) == (at(1, 3), 0)
            rows = (
                await session.execute(
                    select(SubscriptionMrrChange.id).where(SubscriptionMrrChange.subscription_id == sub.id)
                )
            ).all()
            assert len(rows) == 3
    finally:
        await engine.dispose()


async def test_seeded_history_ends_in_each_subscriptions_current_state(
    make_database: Callable[[], str], app_factory: Callable[..., GraphQLClient]
) -> None:
    url = make_database()
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await seed_demo_data(url, customers=80, seed=3, now=now)
    engine = make_engine(url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session:
            subs = (await session.execute(select(Subscription))).scalars().all()
            for sub in subs:
                latest = await latest_change(session, sub.id)
                assert latest is not None
                facts = await current_facts(session, sub)
                assert (latest.status, latest.paused, latest.product_id, latest.quantity, latest.mrr) == (
                    facts.status,
                    facts.paused,
                    facts.product_id,
                    facts.quantity,
                    facts.mrr,
                ), sub.id
            assert any(sub.status is CANCELED for sub in subs) and any(sub.status is TRIALING for sub in subs)
    finally:
        await engine.dispose()
    body = await app_factory(url).query(
        'query { revenue(range: {preset: LAST_12_MONTHS}, currency: "usd") { series { mrr { minorUnits }'
        " openingMrr { minorUnits } movements { net { minorUnits } } } } }"
    )
    assert "errors" not in body, body
    series: Any = body["data"]["revenue"]["series"]  # type: ignore[index]
    assert len(series) in (12, 13)
    for period in series:
        opening, net = period["openingMrr"]["minorUnits"], period["movements"]["net"]["minorUnits"]
        assert opening + net == period["mrr"]["minorUnits"]
    assert series[-1]["mrr"]["minorUnits"] > 0
