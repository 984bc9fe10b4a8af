"""Usage metering through its public doors: GraphQL (`createMeter`, `recordUsage`,
`Customer.usage`, `usageSummary`, `quotaUsage`, `alerts`, `usageBuckets`, `rollUpUsage`,
`reportUsage`) and `POST /v1/usage-events`, on the real database, with Stripe billing meters in
the local emulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from api.audit.record import Actor
from api.auth.apikeys import create_api_key
from api.auth.roles import Role
from api.catalog.models import UsageType
from api.customer.models import Customer, CustomerStatus
from api.usage.models import Meter, MeterAggregation, ReportStatus, UsageBucket, UsageEvent
from tests.conftest import GraphQLClient, bearer
from tests.factories import Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import CLOSED_PORT_URL, IGNORE_HTTPX_DATA_WARNING, audit_count, run, stripe_app

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

RECORD = """mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) {
  accepted duplicates rejected errors { index code message field } userErrors { field message code } } }"""
ROLL_UP = "mutation { rollUpUsage { events buckets watermark alertsRaised userErrors { code } } }"
REPORT = "mutation { reportUsage { reported failed notBilled unchanged userErrors { code } } }"
USAGE = """query($id: ID!, $meter: String, $from: DateTime, $to: DateTime, $g: UsageGranularity!) {
  customer(id: $id) { usage(meter: $meter, from: $from, to: $to, granularity: $g) {
    meter { key } total eventCount points { start value eventCount } } } }"""
CREATE_METER = """mutation($input: CreateMeterInput!) { createMeter(input: $input) {
  meter { id key aggregation stripeMeterId uniqueProperty } userErrors { field message code } } }"""


def hours_ago(n: float) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=n)


def event(
    customer: Any, meter: str, value: Any = 1, key: str | None = None, at: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"customer": str(customer), "meter": meter, "idempotencyKey": key or uuid.uuid4().hex}
    if value is not None:
        body["value"] = value
    if at is not None:
        body["timestamp"] = at.isoformat()
    body.update(extra)
    return body


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def client(app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]) -> GraphQLClient:
    return app_factory(make_database())


async def meters_and_customers(client: GraphQLClient) -> dict[str, Any]:
    """One meter per aggregation and three customers (one suspended, one with external and Stripe ids)."""
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        for agg in (
            MeterAggregation.SUM,
            MeterAggregation.COUNT,
            MeterAggregation.MAX,
            MeterAggregation.LATEST,
        ):
            await b.meter(agg.value.lower(), agg)
        unique = Meter(
            key="users", name="Active users", aggregation=MeterAggregation.UNIQUE_COUNT, unique_property="user"
        )
        session.add(unique)
        acme = await b.customer("Acme", external_id="acme-ext", stripe_customer_id="cus_acme")
        globex = await b.customer("Globex")
        frozen = await b.customer("Frozen", status=CustomerStatus.SUSPENDED)
    return {"acme": acme.id, "globex": globex.id, "frozen": frozen.id}


async def record(client: GraphQLClient, events: list[dict[str, Any]], role: Role = Role.OWNER) -> dict[str, Any]:
    return await run(client, RECORD, {"events": events}, role=role)


async def stored_events(client: GraphQLClient) -> int:
    async with client.runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(UsageEvent))).scalar_one())


# --- ingest ------------------------------------------------------------------------------------------


async def test_a_batch_keeps_its_good_events_and_says_why_each_bad_one_was_rejected(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    acme, now = ids["acme"], datetime.now(UTC)
    batch = [
        event(acme, "sum", 5, key="a"),  # 0 ok (Ledgerline id)
        event("acme-ext", "sum", "2.5", key="b"),  # 1 ok (external id, decimal string)
        event("cus_acme", "count", None, key="c"),  # 2 ok (Stripe id; COUNT needs no value)
        event(uuid.uuid4(), "sum", 1),  # 3 unknown customer
        event(acme, "nope", 1),  # 4 unknown meter
        event(acme, "sum", None),  # 5 value missing
        event(acme, "sum", -1),  # 6 negative
        event(acme, "sum", 1, at=now - timedelta(days=36)),  # 7 too old
        event(acme, "sum", 1, at=now + timedelta(minutes=10)),  # 8 ahead
        event(ids["frozen"], "sum", 1),  # 9 suspended
        event(acme, "users", None),  # 10 no unique property
        event(acme, "sum", 1, key="a"),  # 11 duplicate of 0 in the same batch
        event(acme, "latest", -3, key="d"),  # 12 ok: LATEST takes negatives
        event(acme, "sum", 1, timestamp="yesterday"),  # 13 bad timestamp
    ]
    result = await record(client, batch)
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (4, 1, 9), result
    codes = {e["index"]: (e["code"], e["field"]) for e in result["errors"]}
    assert codes == {
        3: ("UNKNOWN_CUSTOMER", "customer"),
        4: ("UNKNOWN_METER", "meter"),
        5: ("VALUE_MISSING", "value"),
        6: ("VALUE_NEGATIVE", "value"),
        7: ("TIMESTAMP_TOO_OLD", "timestamp"),
        8: ("TIMESTAMP_IN_FUTURE", "timestamp"),
        9: ("CUSTOMER_SUSPENDED", "customer"),
        10: ("UNIQUE_PROPERTY_MISSING", "properties.user"),
        13: ("TIMESTAMP_INVALID", "timestamp"),
    }
    assert all(e["message"] for e in result["errors"])
    # the same batch again: everything stored is now a duplicate, nothing new is stored
    again = await record(client, batch)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 5, 9)
    assert await stored_events(client) == 4
    assert await audit_count(client, "usage.record") == 2
    # a suspension takes effect on the next batch, however recently the customer was seen
    async with client.runtime.session_factory() as session, session.begin():
        await session.execute(update(Customer).where(Customer.id == acme).values(status=CustomerStatus.SUSPENDED))
    suspended = await record(client, [event("acme-ext", "sum", 1)])
    assert suspended["errors"][0]["code"] == "CUSTOMER_SUSPENDED"


async def test_recordUsage_takes_at_most_1000_events(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    result = await record(client, [event(ids["acme"], "sum", 1) for _ in range(1001)])
    assert result["accepted"] == 0 and result["userErrors"][0]["field"] == "events"
    assert await stored_events(client) == 0


async def post_events(client: GraphQLClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.http.post("/v1/usage-events", content=body, headers=headers)


async def api_key(client: GraphQLClient, scopes: list[str]) -> str:
    actor = Actor(subject="owner@test", role="owner", api_key_id=None)
    async with client.runtime.session_factory() as session, session.begin():
        created = await create_api_key(session, actor, "ingest", scopes, None)
    return created.secret


async def test_http_door_takes_json_and_ndjson_with_the_same_semantics(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    key = await api_key(client, ["usage:write"])
    auth = {"Authorization": f"Bearer {key}"}
    batch = [
        event(ids["acme"], "sum", 3, key="h1"),
        event(ids["acme"], "nope", 1),
        event(ids["acme"], "sum", 3, key="h1"),
        {"customer": "acme-ext", "meter": "sum", "value": 1},
    ]
    response = await post_events(client, orjson.dumps(batch), {**auth, "content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": 2,
        "errors": [
            {"index": 1, "code": "UNKNOWN_METER", "message": "no meter with key 'nope'", "field": "meter"},
            {
                "index": 3,
                "code": "IDEMPOTENCY_KEY_MISSING",
                "message": "`idempotencyKey` is required",
                "field": "idempotencyKey",
            },
        ],
    }
    ndjson = b"\n".join(
        [
            orjson.dumps(event(ids["globex"], "sum", 1, key="n1")),
            b"{not json",
            orjson.dumps(event(ids["acme"], "sum", 3, key="h1")),
        ]
    )
    response = await post_events(client, ndjson, {**auth, "content-type": "application/x-ndjson"})
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["code"] == "INVALID_EVENT"
    assert "line 2" in body["errors"][0]["message"]


async def test_http_door_refuses_without_the_right_credentials_and_bad_bodies(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]
) -> None:
    db = make_database()
    client = app_factory(db)
    ids = await meters_and_customers(client)
    body = orjson.dumps([event(ids["acme"], "sum", 1)])
    assert (await post_events(client, body, {})).status_code == 401
    reader = await api_key(client, ["customers:read"])
    forbidden = await post_events(client, body, {"Authorization": f"Bearer {reader}"})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "FORBIDDEN"
    assert forbidden.json()["error"]["requiredScopes"] == ["usage:write"]
    analyst = await post_events(client, body, bearer(client.settings, Role.ANALYST))
    assert analyst.status_code == 403
    owner = bearer(client.settings, Role.OWNER)
    bad = await post_events(client, b"[{", owner)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "body"
    too_many = orjson.dumps([event(ids["acme"], "sum", 1) for _ in range(11)])
    small = app_factory(db, usage_max_batch=10)
    refused = await post_events(small, too_many, owner)
    assert refused.status_code == 400 and "USAGE_MAX_BATCH" in refused.json()["error"]["message"]
    assert await stored_events(client) == 0


async def test_a_reassigned_external_id_names_its_new_customer_from_the_next_batch(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    assert (await record(client, [event("acme-ext", "sum", 1)]))["accepted"] == 1  # remembered: Acme
    async with client.runtime.session_factory() as session, session.begin():
        acme, globex = await session.get(Customer, ids["acme"]), await session.get(Customer, ids["globex"])
        assert acme is not None and globex is not None
        acme.external_id = "acme-old"
        await session.flush()
        globex.external_id = "acme-ext"
    assert (await record(client, [event("acme-ext", "sum", 2), event("acme-old", "sum", 3)]))["accepted"] == 2
    async with client.runtime.session_factory() as session:
        rows = (await session.execute(select(UsageEvent.customer_id, UsageEvent.value))).all()
    assert sorted((str(c), int(v)) for c, v in rows) == sorted(
        [(str(ids["acme"]), 1), (str(ids["globex"]), 2), (str(ids["acme"]), 3)]
    )


async def test_concurrent_retries_of_the_same_events_store_each_once(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    batch = [event(ids["acme"], "sum", 1, key=f"k{i}") for i in range(300)]
    body = orjson.dumps(batch)
    owner = {**bearer(client.settings, Role.OWNER), "content-type": "application/json"}
    responses = await asyncio.gather(*(post_events(client, body, owner) for _ in range(8)))
    results = [r.json() for r in responses]
    assert sum(r["accepted"] for r in results) == 300
    assert sum(r["duplicates"] for r in results) == 300 * 7
    assert await stored_events(client) == 300


# --- roll-up and reads ---------------------------------------------------------------------------------


async def usage_of(
    client: GraphQLClient, customer: uuid.UUID, granularity: str, meter: str | None = None
) -> dict[str, Any]:
    body = await client.query(
        USAGE,
        {"id": str(customer), "meter": meter, "from": hours_ago(30).isoformat(), "g": granularity},
    )
    assert "errors" not in body, body
    return {s["meter"]["key"]: s for s in body["data"]["customer"]["usage"]}  # type: ignore[index]


async def test_roll_up_aggregates_each_meter_its_own_way_and_counts_every_event_once(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    acme = ids["acme"]
    h2, h1 = hours_ago(2), hours_ago(1)
    first = [
        event(acme, "sum", 2, at=h2 + timedelta(minutes=1)),
        event(acme, "sum", "0.5", at=h2 + timedelta(minutes=2)),
        event(acme, "sum", 4, at=h1 + timedelta(minutes=1)),
        event(acme, "count", None, at=h2 + timedelta(minutes=3)),
        event(acme, "count", 99, at=h2 + timedelta(minutes=4)),  # COUNT ignores the value
        event(acme, "max", 7, at=h2 + timedelta(minutes=5)),
        event(acme, "max", 3, at=h2 + timedelta(minutes=6)),
        event(acme, "latest", 10, at=h2 + timedelta(minutes=30)),
        event(acme, "latest", 20, at=h2 + timedelta(minutes=10)),  # earlier, received later: not the latest
        event(acme, "users", None, at=h2 + timedelta(minutes=1), properties={"user": "ann"}),
        event(acme, "users", None, at=h2 + timedelta(minutes=2), properties={"user": "bob"}),
        event(acme, "users", None, at=h2 + timedelta(minutes=3), properties={"user": "ann"}),
        event(acme, "users", None, at=h1 + timedelta(minutes=3), properties={"user": "ann"}),
    ]
    assert (await record(client, first))["accepted"] == 13
    expected_before = await usage_of(client, acme, "HOUR")  # read before any roll-up: fresh events count
    rolled = await run(client, ROLL_UP)
    assert rolled["events"] == 13 and rolled["buckets"] == 7, rolled
    # a second wave into the same hours: merged into the existing buckets
    second = [
        event(acme, "sum", 1, at=h2 + timedelta(minutes=50)),
        event(acme, "max", 9, at=h2 + timedelta(minutes=51)),
        event(acme, "max", 1, at=h1 + timedelta(minutes=51)),
        event(acme, "latest", 5, at=h2 + timedelta(minutes=20)),  # older than 10 @ :30 → ignored
        event(acme, "latest", 6, at=h2 + timedelta(minutes=40)),  # newer → the latest
        event(acme, "users", None, at=h2 + timedelta(minutes=52), properties={"user": "bob"}),
        event(acme, "users", None, at=h2 + timedelta(minutes=53), properties={"user": "cy"}),
    ]
    assert (await record(client, second))["accepted"] == 7
    assert (await run(client, ROLL_UP))["events"] == 7
    assert (await run(client, ROLL_UP))["events"] == 0  # nothing new: nothing counted twice

    hourly = await usage_of(client, acme, "HOUR")

    def points(key: str) -> list[tuple[datetime, str, int]]:
        return [(datetime.fromisoformat(p["start"]), p["value"], p["eventCount"]) for p in hourly[key]["points"]]

    assert points("sum") == [(h2, "3.5", 3), (h1, "4", 1)]  # 2 + 0.5 + 1 ; 4
    assert points("count") == [(h2, "2", 2)]
    assert points("max") == [(h2, "9", 3), (h1, "1", 1)]
    assert points("latest") == [(h2, "6", 4)]  # @:40 is the newest of :10, :20, :30, :40
    assert points("users") == [(h2, "3", 5), (h1, "1", 1)]  # ann, bob, cy ; ann
    totals = {k: (v["total"], v["eventCount"]) for k, v in hourly.items()}
    assert totals == {
        "sum": ("7.5", 4),
        "count": ("2", 2),
        "max": ("9", 4),
        "latest": ("6", 4),
        "users": ("3", 6),  # distinct over the range: ann, bob, cy
    }
    daily = await usage_of(client, acme, "DAY", meter="users")
    assert daily["users"]["total"] == "3" and sum(p["eventCount"] for p in daily["users"]["points"]) == 6
    # before the roll-up, the reads already had the first wave exactly as rolled up
    assert expected_before["sum"]["total"] == "6.5" and expected_before["users"]["total"] == "2"
    assert expected_before["latest"]["total"] == "10"


async def test_usage_summary_ranks_customers(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    at = hours_ago(3)
    await record(
        client,
        [
            event(ids["acme"], "sum", 5, at=at),
            event(ids["globex"], "sum", 7, at=at),
            event(ids["acme"], "sum", 1, at=at),
        ],
    )
    await run(client, ROLL_UP)
    await record(client, [event(ids["globex"], "sum", 1, at=at)])  # not rolled up yet: still counted
    body = await client.query(
        """query { usageSummary(meter: "sum", top: 1) { total eventCount customerCount
           topCustomers { value eventCount customer { name } } asOf } }"""
    )
    summary = body["data"]["usageSummary"]  # type: ignore[index]
    assert (summary["total"], summary["eventCount"], summary["customerCount"]) == ("14", 4, 2)
    assert summary["topCustomers"] == [{"value": "8", "eventCount": 2, "customer": {"name": "Globex"}}]
    unknown = await client.query('query { usageSummary(meter: "nope") { total } }')
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"  # type: ignore[index]


# --- quotas and alerts -----------------------------------------------------------------------------------

SET_QUOTA = """mutation($input: SetUsageQuotaInput!) { setUsageQuota(input: $input) {
  quota { limit kind } userErrors { field message code } } }"""


async def plan_with_quota(client: GraphQLClient, customer: uuid.UUID, limit: str, kind: str) -> None:
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        price = await b.product_and_price(0, "usd", usage_type=UsageType.METERED)
        acme = await session.get(Customer, customer)
        assert acme is not None
        now = datetime.now(UTC)
        await b.subscription(
            acme, price, current_period_start=now - timedelta(days=3), current_period_end=now + timedelta(days=27)
        )
        price_id = price.id
    result = await run(
        client, SET_QUOTA, {"input": {"price": str(price_id), "meter": "sum", "limit": limit, "kind": kind}}
    )
    assert result["userErrors"] == [] and result["quota"] == {"limit": limit, "kind": kind}, result


async def test_hard_quota_rejects_what_would_go_over_and_retries_stay_duplicates(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    acme = ids["acme"]
    await plan_with_quota(client, acme, "10", "HARD")
    first = await record(client, [event(acme, "sum", 4, key="q1"), event(acme, "sum", 4, key="q2")])
    assert first["accepted"] == 2
    await run(client, ROLL_UP)
    second = await record(
        client, [event(acme, "sum", 1, key="q3"), event(acme, "sum", 2, key="q4"), event(acme, "sum", 1, key="q5")]
    )
    # 8 used: +1 → 9 ok, +2 → 11 refused, +1 → 10 ok (at the limit is allowed)
    assert (second["accepted"], second["rejected"]) == (2, 1), second
    assert second["errors"][0]["index"] == 1 and second["errors"][0]["code"] == "QUOTA_EXCEEDED"
    retry = await record(client, [event(acme, "sum", 4, key="q1")])  # a retry of an accepted event
    assert (retry["accepted"], retry["duplicates"], retry["rejected"]) == (0, 1, 0)
    body = await client.query(
        "query($id: ID!) { customer(id: $id) { quotaUsage { meterKey kind limit used percent } } }", {"id": str(acme)}
    )
    assert body["data"]["customer"]["quotaUsage"] == [  # type: ignore[index]
        {"meterKey": "sum", "kind": "HARD", "limit": "10", "used": "10", "percent": 100.0}
    ]


async def test_soft_quota_alerts_at_80_and_100_percent_once_each(client: GraphQLClient) -> None:
    ids = await meters_and_customers(client)
    acme = ids["acme"]
    await plan_with_quota(client, acme, "10", "SOFT")
    await record(client, [event(acme, "sum", 5)])
    assert (await run(client, ROLL_UP))["alertsRaised"] == 0
    await record(client, [event(acme, "sum", 3)])
    assert (await run(client, ROLL_UP))["alertsRaised"] == 1  # 8 of 10
    await record(client, [event(acme, "sum", 1)])
    assert (await run(client, ROLL_UP))["alertsRaised"] == 0  # 9: the 80% alert is not raised again
    accepted = await record(client, [event(acme, "sum", 6)])
    assert accepted["accepted"] == 1  # soft: over the limit is still recorded
    assert (await run(client, ROLL_UP))["alertsRaised"] == 1  # 15 of 10
    body = await client.query(
        "query { alerts(filter: {kind: [QUOTA_THRESHOLD]}) { totalCount nodes { severity details customerId } } }"
    )
    alerts = body["data"]["alerts"]  # type: ignore[index]
    assert alerts["totalCount"] == 2
    assert sorted((a["severity"], a["details"]["threshold"]) for a in alerts["nodes"]) == [
        ("CRITICAL", 100),
        ("WARNING", 80),
    ]
    # alerts follow what the reader may see: support reads usage, so it sees quota alerts
    support = await client.query("query { alerts { totalCount } }", role=Role.SUPPORT)
    assert support["data"]["alerts"]["totalCount"] == 2  # type: ignore[index]


# --- meters and Stripe reporting ---------------------------------------------------------------------


@pytest.fixture
def billing(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str], emulator: EmulatorHandle
) -> GraphQLClient:
    emulator.reset()
    return stripe_app(app_factory, make_database(), emulator.url)


async def test_create_meter_makes_its_stripe_billing_meter_and_checks_its_input(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    created = await run(
        billing,
        CREATE_METER,
        {
            "input": {
                "key": "seats_active",
                "name": "Active seats",
                "aggregation": "UNIQUE_COUNT",
                "uniqueProperty": "seat",
            }
        },
    )
    assert created["userErrors"] == [], created
    meter_id = created["meter"]["stripeMeterId"]
    stripe_meter = emulator.state.collection("billing.meter")[meter_id]
    assert stripe_meter["event_name"] == "seats_active" and stripe_meter["default_aggregation"]["formula"] == "last"
    again = await run(billing, CREATE_METER, {"input": {"key": "seats_active", "name": "Again", "aggregation": "SUM"}})
    assert again["meter"] is None and again["userErrors"][0]["field"] == "input.key"
    missing = await run(
        billing, CREATE_METER, {"input": {"key": "visitors", "name": "Visitors", "aggregation": "UNIQUE_COUNT"}}
    )
    assert missing["userErrors"][0]["field"] == "input.uniqueProperty"
    bad_key = await run(billing, CREATE_METER, {"input": {"key": "Bad Key", "name": "x", "aggregation": "SUM"}})
    assert bad_key["userErrors"][0]["field"] == "input.key"
    body = await billing.query("query { meters { key aggregation } }")
    assert body["data"]["meters"] == [{"key": "seats_active", "aggregation": "UNIQUE_COUNT"}]  # type: ignore[index]


async def test_meters_and_metered_prices_repeated_with_an_idempotency_key_are_made_once(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    meter_input = {"key": "calls", "name": "API calls", "aggregation": "SUM", "idempotencyKey": "meter-calls-1"}
    first = await run(billing, CREATE_METER, {"input": meter_input})
    again = await run(billing, CREATE_METER, {"input": meter_input})
    assert first["userErrors"] == [] and again == first  # not "a meter with key 'calls' already exists"
    changed = await run(billing, CREATE_METER, {"input": {**meter_input, "name": "Calls"}})
    assert changed["meter"] is None and changed["userErrors"][0]["field"] == "input.idempotencyKey"

    price_input = {"meter": "calls", "unitAmount": {"amount": "0.05", "currency": "usd"}, "idempotencyKey": "p-1"}
    price = await run(billing, CREATE_PRICE, {"input": price_input})
    assert price["userErrors"] == [], price
    assert await run(billing, CREATE_PRICE, {"input": price_input}) == price
    metered = [p for p in emulator.state.collection("price").values() if p.get("recurring")]
    assert [p["id"] for p in metered] == [price["price"]["stripePriceId"]]
    other = await run(billing, CREATE_PRICE, {"input": {**price_input, "idempotencyKey": "p-2"}})
    assert other["price"]["id"] != price["price"]["id"]  # another key: another price
    assert await audit_count(billing, "price.create_metered") == 2


async def metered_customer(
    client: GraphQLClient, emulator: EmulatorHandle, key: str = "calls", aggregation: str = "SUM"
) -> dict[str, Any]:
    """A meter (`calls`, SUM unless told; in Stripe too) and a customer with a live subscription to
    a metered price of it, and one without."""
    created = await run(client, CREATE_METER, {"input": {"key": key, "name": key, "aggregation": aggregation}})
    assert created["userErrors"] == [], created
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        meter = (await session.execute(select(Meter).where(Meter.key == key))).scalar_one()
        price = await b.product_and_price(0, "usd", usage_type=UsageType.METERED, meter_id=meter.id)
        acme = await b.customer("Acme", stripe_customer_id="cus_metered")
        other = await b.customer("Unbilled", stripe_customer_id="cus_unbilled")
        now = datetime.now(UTC)
        await b.subscription(
            acme, price, current_period_start=now - timedelta(days=2), current_period_end=now + timedelta(days=28)
        )
    return {"acme": acme.id, "other": other.id}


def meter_events(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return list(emulator.state.meter_events)


async def bucket_rows(client: GraphQLClient) -> list[UsageBucket]:
    async with client.runtime.session_factory() as session:
        return list(
            (
                await session.execute(select(UsageBucket).order_by(UsageBucket.bucket_start, UsageBucket.customer_id))
            ).scalars()
        )


async def test_closed_buckets_are_reported_once_and_late_usage_as_its_difference(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    ids = await metered_customer(billing, emulator)
    h3 = hours_ago(3)
    await record(
        billing,
        [
            event(ids["acme"], "calls", 5, at=h3),
            event(ids["acme"], "calls", 2, at=h3),
            event(ids["other"], "calls", 1, at=h3),
        ],
    )
    await record(billing, [event(ids["acme"], "calls", 1, at=datetime.now(UTC))])  # this hour: not closed yet
    await run(billing, ROLL_UP)
    first = await run(billing, REPORT)
    assert (first["reported"], first["notBilled"], first["failed"]) == (1, 1, 0), first
    sent = meter_events(emulator)
    assert [(e["payload"], e["timestamp"]) for e in sent] == [
        ({"stripe_customer_id": "cus_metered", "value": "7"}, int((h3 + timedelta(seconds=3541)).timestamp()))
    ]
    assert (await run(billing, REPORT))["reported"] == 0  # nothing new: nothing sent again
    assert len(meter_events(emulator)) == 1
    # a late event in the reported hour: Stripe gets the difference under a new identifier
    await record(billing, [event(ids["acme"], "calls", 3, at=h3 + timedelta(minutes=5))])
    await run(billing, ROLL_UP)
    assert (await run(billing, REPORT))["reported"] == 1
    sent = meter_events(emulator)
    assert [e["payload"]["value"] for e in sent] == ["7", "3"]
    assert len({e["identifier"] for e in sent}) == 2
    assert sent[1]["timestamp"] == sent[0]["timestamp"] + 1  # the second report of the hour: later, same hour
    body = await billing.query(
        'query { usageBuckets(filter: {meter: "calls", status: [REPORTED]}) { totalCount nodes { value reportedValue reportStatus } } }'
    )
    assert body["data"]["usageBuckets"]["nodes"] == [{"value": "10", "reportedValue": "10", "reportStatus": "REPORTED"}]  # type: ignore[index]


async def test_a_late_event_reaches_stripe_in_the_period_to_date_figure_of_a_max_meter(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    """MAX sends the period's maximum so far and Stripe keeps the latest one by time: a late event
    in an earlier hour must also correct the newest hour already reported."""
    ids = await metered_customer(billing, emulator, "peak", "MAX")
    h4, h3 = hours_ago(4), hours_ago(3)
    await record(billing, [event(ids["acme"], "peak", 10, at=h4), event(ids["acme"], "peak", 5, at=h3)])
    await run(billing, ROLL_UP)
    assert (await run(billing, REPORT))["reported"] == 2
    assert latest_figure(emulator) == "10"
    await record(billing, [event(ids["acme"], "peak", 50, at=h4 + timedelta(minutes=30))])  # late
    await run(billing, ROLL_UP)
    assert (await run(billing, REPORT))["reported"] == 2  # its own hour, and the newest reported one
    assert latest_figure(emulator) == "50"
    await record(billing, [event(ids["acme"], "peak", 7, at=h4 + timedelta(minutes=40))])  # late, no new peak
    await run(billing, ROLL_UP)
    again = await run(billing, REPORT)
    assert (again["reported"], again["unchanged"]) == (0, 2)  # Stripe already has 50: nothing sent
    assert latest_figure(emulator) == "50"


async def test_a_latest_meter_that_drops_to_zero_reports_the_zero(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    ids = await metered_customer(billing, emulator, "seats_now", "LATEST")
    h3 = hours_ago(3)
    await record(billing, [event(ids["acme"], "seats_now", 5, at=h3)])
    await run(billing, ROLL_UP)
    assert (await run(billing, REPORT))["reported"] == 1
    await record(billing, [event(ids["acme"], "seats_now", 0, at=h3 + timedelta(minutes=10))])  # late, newer
    await run(billing, ROLL_UP)
    assert (await run(billing, REPORT))["reported"] == 1
    assert latest_figure(emulator) == "0"


def latest_figure(emulator: EmulatorHandle) -> str:
    """What a `last` Stripe meter bills: the value of the newest event by time (never a tie: each
    report of an hour is a second later than the one before)."""
    events = meter_events(emulator)
    times = [e["timestamp"] for e in events]
    assert len(set(times)) == len(times), times
    newest = max(range(len(events)), key=lambda i: times[i])
    return str(events[newest]["payload"]["value"])


async def test_a_report_lost_after_stripe_took_it_is_sent_again_and_counted_once(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    """The reporter dies after Stripe accepted the meter event but before its commit: the next run
    sends the same event (same identifier, same value) and Stripe counts it once."""
    from api.usage import reporting

    ids = await metered_customer(billing, emulator)
    await record(billing, [event(ids["acme"], "calls", 4, at=hours_ago(2))])
    await run(billing, ROLL_UP)
    runtime = billing.runtime
    now = datetime.now(UTC)
    async with runtime.session_factory() as session, session.begin():
        _, claimed = await reporting._claim(session, now, reporting.ReportResult())
    assert len(claimed) == 1
    assert await reporting._send(runtime.stripe, claimed[0], now) is None  # Stripe has it; no commit follows
    # the lease runs out, another run picks the bucket up
    async with runtime.session_factory() as session, session.begin():
        await session.execute(update(UsageBucket).values(next_report_at=now - timedelta(seconds=1)))
    again = await run(billing, REPORT)
    assert again["reported"] == 1
    assert [e["payload"]["value"] for e in meter_events(emulator)] == ["4"]  # once
    (bucket,) = [b for b in await bucket_rows(billing) if b.customer_id == ids["acme"]]
    assert bucket.report_status is ReportStatus.REPORTED and bucket.reported_value == Decimal(4)


async def test_reporting_failures_are_kept_with_their_error_and_retried_later(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str], emulator: EmulatorHandle
) -> None:
    emulator.reset()
    db = make_database()
    up = stripe_app(app_factory, db, emulator.url)
    ids = await metered_customer(up, emulator)
    await record(up, [event(ids["acme"], "calls", 4, at=hours_ago(2))])
    await run(up, ROLL_UP)
    down = stripe_app(app_factory, db, CLOSED_PORT_URL)
    failed = await run(down, REPORT)
    assert failed["failed"] == 1
    body = await down.query(
        "query { usageBuckets(filter: {status: [FAILED]}) { nodes { reportError reportAttempts nextReportAt } } }"
    )
    (node,) = body["data"]["usageBuckets"]["nodes"]  # type: ignore[index]
    assert "unreachable" in node["reportError"] and node["reportAttempts"] == 1 and node["nextReportAt"]
    assert (await run(up, REPORT))["reported"] == 0  # backoff: not due yet
    async with up.runtime.session_factory() as session, session.begin():
        await session.execute(update(UsageBucket).values(next_report_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await run(up, REPORT))["reported"] == 1
    assert [e["payload"]["value"] for e in meter_events(emulator)] == ["4"]


CREATE_PRICE = """mutation($input: CreateMeteredPriceInput!) { createMeteredPrice(input: $input) {
  price { id usageType meterId stripePriceId unitAmount { amount } } userErrors { field message code } } }"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message } } }"""
CREATE_SUBSCRIPTION = """mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) {
  subscription { id stripeSubscriptionId } userErrors { field message code } } }"""


async def test_usage_recorded_in_ledgerline_is_billed_by_stripe_at_renewal(
    billing: GraphQLClient, emulator: EmulatorHandle
) -> None:
    """The whole metering path: a meter and a metered price made through Ledgerline, a customer
    subscribed to it, usage recorded, rolled up and reported: Stripe's renewal invoice bills it."""
    from api.usage.reporting import report_usage

    meter = await run(billing, CREATE_METER, {"input": {"key": "calls", "name": "API calls", "aggregation": "SUM"}})
    assert meter["userErrors"] == []
    price = await run(
        billing, CREATE_PRICE, {"input": {"meter": "calls", "unitAmount": {"amount": "0.05", "currency": "usd"}}}
    )
    assert price["userErrors"] == [], price
    assert price["price"]["usageType"] == "METERED" and price["price"]["meterId"] == meter["meter"]["id"]
    stripe_price = emulator.state.collection("price")[price["price"]["stripePriceId"]]
    assert stripe_price["recurring"]["usage_type"] == "metered"
    assert stripe_price["recurring"]["meter"] == meter["meter"]["stripeMeterId"]
    customer = await run(billing, CREATE_CUSTOMER, {"input": {"name": "Metered Co", "paymentMethod": "pm_card_visa"}})
    sub = await run(
        billing, CREATE_SUBSCRIPTION, {"input": {"customer": customer["customer"]["id"], "price": price["price"]["id"]}}
    )
    assert sub["userErrors"] == [], sub
    stripe_customer = customer["customer"]["stripeCustomerId"]

    now = datetime.now(UTC)
    recorded = await record(
        billing, [event(stripe_customer, "calls", 40), event(stripe_customer, "calls", 2)], Role.OWNER
    )
    assert recorded["accepted"] == 2
    await run(billing, ROLL_UP)
    emulator.advance_clock(2 * 3600)  # the hour closes; Stripe's clock moves with the worker's
    reported = await report_usage(billing.runtime.session_factory, billing.runtime.stripe, now + timedelta(hours=2))
    assert reported.reported == 1, reported
    emulator.advance_clock(32 * 86400)  # past the period's end: Stripe renews and bills the usage
    invoices = [
        i
        for i in emulator.state.collection("invoice").values()
        if i.get("subscription") == sub["subscription"]["stripeSubscriptionId"]
        or (i.get("parent") or {}).get("subscription_details", {}).get("subscription")
        == sub["subscription"]["stripeSubscriptionId"]
    ]
    usage_lines = [line for i in invoices for line in i.get("_lines", []) if "usage" in (line.get("description") or "")]
    assert [line["amount"] for line in usage_lines] == [42 * 5], usage_lines
