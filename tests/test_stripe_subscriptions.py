"""createSubscription, previewSubscriptionChange / changeSubscription, cancel, reactivate,
pause, resume and extendTrial through the GraphQL endpoint, against the local Stripe emulator."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from api.auth.roles import Role
from api.catalog.models import Price, PriceInterval
from api.subscription.models import Subscription, SubscriptionItem
from tests.conftest import GraphQLClient
from tests.factories import Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import (
    CLOSED_PORT_URL,
    IGNORE_HTTPX_DATA_WARNING,
    audit_count,
    audit_entries,
    run,
    stripe_app,
    writes,
)

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

SUB = """subscription { id status currency cancelAtPeriodEnd paused pauseBehavior pauseResumesAt trialEnd canceledAt
  stripeSubscriptionId currentPeriodStart currentPeriodEnd items { quantity stripeSubscriptionItemId price { id } } }
  userErrors { field message code }"""
AMOUNTS = """prorationLines { description amount { minorUnits currency } quantity periodStart periodEnd }
  prorationTotal { minorUnits } amountDueNow { minorUnits } nextInvoiceTotal { minorUnits }
  prorationDate prorationBehavior"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message code } } }"""
CREATE = f"mutation($input: CreateSubscriptionInput!) {{ createSubscription(input: $input) {{ {SUB} }} }}"
PREVIEW = f"""query($input: PreviewSubscriptionChangeInput!) {{ previewSubscriptionChange(input: $input) {{
  preview {{ {AMOUNTS} }} userErrors {{ field message code }} }} }}"""
CHANGE = f"""mutation($input: ChangeSubscriptionInput!) {{ changeSubscription(input: $input) {{
  applied {{ {AMOUNTS} }} {SUB} }} }}"""
CANCEL = f"mutation($input: CancelSubscriptionInput!) {{ cancelSubscription(input: $input) {{ {SUB} }} }}"
REACTIVATE = f"mutation($input: SubscriptionActionInput!) {{ reactivateSubscription(input: $input) {{ {SUB} }} }}"
PAUSE = f"mutation($input: PauseSubscriptionInput!) {{ pauseSubscription(input: $input) {{ {SUB} }} }}"
RESUME = f"mutation($input: SubscriptionActionInput!) {{ resumeSubscription(input: $input) {{ {SUB} }} }}"
EXTEND = f"mutation($input: ExtendTrialInput!) {{ extendTrial(input: $input) {{ {SUB} }} }}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def client(app_factory: Callable[..., GraphQLClient], db: str, emulator: EmulatorHandle) -> GraphQLClient:
    emulator.reset()
    return stripe_app(app_factory, db, emulator.url)


async def add_price(
    client: GraphQLClient, unit_amount: int = 1000, currency: str = "usd", interval: PriceInterval = PriceInterval.MONTH
) -> str:
    """A local catalog price Stripe does not know yet (the first subscription creates it there)."""
    async with client.runtime.session_factory() as session, session.begin():
        price = await Builder(session).product_and_price(unit_amount, currency, interval=interval, nickname="Seats")
    return str(price.id)


async def add_customer(client: GraphQLClient, payment_method: str = "pm_card_visa") -> str:
    payload = await run(
        client, CREATE_CUSTOMER, {"input": {"name": "Acme", "email": "ap@acme.test", "paymentMethod": payment_method}}
    )
    assert payload["userErrors"] == [], payload
    return str(payload["customer"]["id"])


async def subscribe(client: GraphQLClient, quantity: int = 2, **extra: Any) -> dict[str, Any]:
    customer = extra.pop("customer", None) or await add_customer(client)
    price = extra.pop("price", None) or await add_price(client)
    payload = await run(
        client, CREATE, {"input": {"customer": customer, "price": price, "quantity": quantity, **extra}}
    )
    assert payload["userErrors"] == [], payload
    return payload["subscription"]  # type: ignore[no-any-return]


def stripe_sdk(emulator: EmulatorHandle) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_tests", base_addresses={"api": emulator.url}, max_network_retries=0)


async def local_subscriptions(client: GraphQLClient) -> list[Subscription]:
    async with client.runtime.session_factory() as session:
        return list((await session.execute(select(Subscription))).scalars())


# --- create ------------------------------------------------------------------------------------------


async def test_a_new_customer_subscribes_to_a_seeded_demo_price(client: GraphQLClient, db: str) -> None:
    """What `make run` offers: the demo catalog is created in Stripe on first use (it is seeded
    without Stripe ids), so subscribing a customer to it works against the emulator."""
    from api.seed import seed_demo_data

    await seed_demo_data(db, customers=5, seed=3)
    async with client.runtime.session_factory() as session:
        pro = (await session.execute(select(Price).where(Price.nickname == "Pro per seat, monthly"))).scalars().first()
    assert pro is not None and pro.stripe_price_id is None
    sub = await subscribe(client, quantity=4, price=str(pro.id))
    assert sub["status"] == "ACTIVE" and sub["items"][0]["quantity"] == 4


async def test_create_subscription_charges_the_first_invoice_and_mirrors_stripe(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    price = await add_price(client, unit_amount=1500)
    sub = await subscribe(client, quantity=3, price=price, idempotencyKey="sub-1")
    assert sub["status"] == "ACTIVE" and sub["currency"] == "usd"
    assert sub["cancelAtPeriodEnd"] is False and sub["paused"] is False
    (item,) = sub["items"]
    assert item["quantity"] == 3 and item["stripeSubscriptionItemId"].startswith("si_")
    remote = emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]
    assert remote["status"] == "active"
    remote_item = emulator.state.collection("subscription_item")[item["stripeSubscriptionItemId"]]
    # the period is read from the item (where this API version keeps it)
    assert datetime.fromisoformat(sub["currentPeriodEnd"]) == datetime.fromtimestamp(
        remote_item["current_period_end"], UTC
    )
    invoice = emulator.state.collection("invoice")[remote["latest_invoice"]]
    assert invoice["status"] == "paid" and invoice["amount_paid"] == 4500
    async with client.runtime.session_factory() as session:
        local_price = await session.get(Price, uuid.UUID(price))
    assert local_price is not None and local_price.stripe_price_id in emulator.state.collection("price")
    (entry,) = await audit_entries(client, "createSubscription")
    assert entry.target_type == "Subscription"
    assert base64.b64decode(sub["id"]).decode() == f"Subscription:{entry.target_id}"
    assert entry.after is not None and entry.after["items"][0]["quantity"] == 3
    # replay: the first result, nothing new in Stripe, one audit entry
    before = len(writes(emulator))
    customer = await _customer_of(client)
    again = await run(
        client, CREATE, {"input": {"customer": customer, "price": price, "quantity": 3, "idempotencyKey": "sub-1"}}
    )
    assert again["subscription"]["id"] == sub["id"]
    assert len(writes(emulator)) == before
    assert await audit_count(client, "createSubscription") == 1


async def _customer_of(client: GraphQLClient) -> str:
    body = await client.query("{ customers(first: 1) { edges { node { id } } } }")
    return str(body["data"]["customers"]["edges"][0]["node"]["id"])  # type: ignore[index]


async def test_create_subscription_with_a_trial_and_a_coupon(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    coupon = await stripe_sdk(emulator).v1.coupons.create_async({"percent_off": 20, "duration": "forever"})
    sub = await subscribe(client, quantity=1, trialDays=14, coupon=coupon.id)
    assert sub["status"] == "TRIALING"
    trial_end = datetime.fromisoformat(sub["trialEnd"])
    assert timedelta(days=13, hours=23) < trial_end - datetime.now(UTC) <= timedelta(days=14, minutes=1)
    remote = emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]
    assert len(remote["discounts"]) == 1  # the coupon became the subscription's discount


async def test_create_subscription_bad_input_names_the_field_before_stripe(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    customer = await add_customer(client)
    price = await add_price(client)
    eur_price = await add_price(client, currency="eur")
    emulator.clear_requests()
    for extra, field in (
        ({"quantity": 0}, "input.quantity"),
        ({"trialDays": 0}, "input.trialDays"),
        ({"price": eur_price}, "input.price"),
        ({"customer": "00000000-0000-0000-0000-000000000000"}, "input.customer"),
        ({"price": "not-an-id"}, "input.price"),
    ):
        payload = await run(client, CREATE, {"input": {"customer": customer, "price": price, **extra}})
        assert payload["subscription"] is None
        assert [e["field"] for e in payload["userErrors"]] == [field], (extra, payload)
    assert writes(emulator) == []
    # a coupon Stripe does not know: Stripe's refusal, naming the field
    payload = await run(client, CREATE, {"input": {"customer": customer, "price": price, "coupon": "NOPE"}})
    (error,) = payload["userErrors"]
    assert error["field"] == "input.coupon" and error["code"] == "resource_missing"
    assert await local_subscriptions(client) == []


async def test_a_declined_first_payment_is_a_user_error_and_nothing_is_created(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    customer = await add_customer(client, payment_method="pm_card_chargeCustomerFail")
    payload = await run(client, CREATE, {"input": {"customer": customer, "price": await add_price(client)}})
    assert payload["subscription"] is None
    (error,) = payload["userErrors"]
    assert error["code"] == "card_declined" and "declined" in error["message"].lower()
    assert emulator.state.collection("subscription") == {}
    assert await local_subscriptions(client) == []
    assert await audit_count(client, "createSubscription") == 0


# --- preview and change ------------------------------------------------------------------------------


@pytest.mark.parametrize("behavior", ["CREATE_PRORATIONS", "ALWAYS_INVOICE"])
async def test_applied_amounts_equal_the_preview(
    client: GraphQLClient, emulator: EmulatorHandle, behavior: str
) -> None:
    sub = await subscribe(client, quantity=2)
    emulator.advance_clock(10 * 86400)  # a third of the way into the month
    change = {"subscription": sub["id"], "quantity": 5, "prorationBehavior": behavior}
    preview = (await run(client, PREVIEW, {"input": change}))["preview"]
    assert len(preview["prorationLines"]) == 2  # unused time on 2, remaining time on 5
    assert preview["prorationTotal"]["minorUnits"] > 0
    assert preview["nextInvoiceTotal"]["minorUnits"] >= 5000
    if behavior == "ALWAYS_INVOICE":
        assert preview["amountDueNow"]["minorUnits"] == preview["prorationTotal"]["minorUnits"]
    else:
        assert preview["amountDueNow"]["minorUnits"] == 0
    assert await local_subscriptions(client) and (await local_subscriptions(client))[0].status.value == "ACTIVE"
    payload = await run(client, CHANGE, {"input": {**change, "prorationDate": preview["prorationDate"]}})
    assert payload["userErrors"] == []
    assert payload["applied"] == preview
    assert payload["subscription"]["items"][0]["quantity"] == 5
    (entry,) = await audit_entries(client, "changeSubscription")
    assert entry.before is not None and entry.before["items"][0]["quantity"] == 2
    assert entry.after is not None and entry.after["items"][0]["quantity"] == 5


async def test_plan_change_to_another_price(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    sub = await subscribe(client, quantity=1)
    bigger = await add_price(client, unit_amount=3000)
    change = {"subscription": sub["id"], "price": bigger}
    preview = (await run(client, PREVIEW, {"input": change}))["preview"]
    payload = await run(client, CHANGE, {"input": {**change, "prorationDate": preview["prorationDate"]}})
    assert payload["applied"] == preview
    assert payload["subscription"]["items"][0]["price"]["id"] != sub["items"][0]["price"]["id"]
    async with client.runtime.session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(SubscriptionItem))).scalar_one() == 1


async def test_change_bad_input_and_replay(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    sub = await subscribe(client, quantity=2)
    for change, field in (
        ({"quantity": 0}, "input.quantity"),
        ({}, "input.quantity"),
        ({"quantity": 3, "prorationDate": "2000-01-01T00:00:00Z"}, "input.prorationDate"),
    ):
        payload = await run(client, CHANGE, {"input": {"subscription": sub["id"], **change}})
        assert [e["field"] for e in payload["userErrors"]] == [field], change
    preview = await run(client, PREVIEW, {"input": {"subscription": sub["id"], "quantity": -1}})
    assert preview["preview"] is None and [e["field"] for e in preview["userErrors"]] == ["input.quantity"]
    variables = {"input": {"subscription": sub["id"], "quantity": 4, "idempotencyKey": "seats-4"}}
    first = await run(client, CHANGE, variables)
    emulator.clear_requests()
    assert await run(client, CHANGE, variables) == first
    assert writes(emulator) == [] and emulator.requests() == []
    assert await audit_count(client, "changeSubscription") == 1
    reused = await run(client, CHANGE, {"input": {**variables["input"], "quantity": 6}})
    assert [(e["field"], e["code"]) for e in reused["userErrors"]] == [
        ("input.idempotencyKey", "IDEMPOTENCY_KEY_REUSED")
    ]


async def test_stripe_down_changes_nothing_and_the_same_key_succeeds_later(
    app_factory: Callable[..., GraphQLClient], db: str, client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    sub = await subscribe(client, quantity=2)
    down = stripe_app(app_factory, db, CLOSED_PORT_URL)
    variables = {"input": {"subscription": sub["id"], "quantity": 7, "idempotencyKey": "while-down"}}
    body = await down.query(CHANGE, variables)
    assert body["data"] == {"changeSubscription": None}
    assert body["errors"][0]["extensions"]["code"] == "STRIPE_ERROR"  # type: ignore[index]
    assert len(await local_subscriptions(client)) == 1
    async with client.runtime.session_factory() as session:
        item = (await session.execute(select(SubscriptionItem))).scalar_one()
    assert item.quantity == 2 and await audit_count(client, "changeSubscription") == 0
    emulator.clear_requests()
    first = await run(client, CHANGE, variables)
    assert first["subscription"]["items"][0]["quantity"] == 7
    assert await run(client, CHANGE, variables) == first
    assert len(writes(emulator, "/v1/subscriptions")) == 1
    assert await audit_count(client, "changeSubscription") == 1


# --- cancel, reactivate, pause, resume, trial ---------------------------------------------------------


async def test_cancel_at_period_end_then_reactivate_then_cancel_now(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    sub = await subscribe(client)
    nothing_pending = await run(client, REACTIVATE, {"input": {"subscription": sub["id"]}})
    assert [e["field"] for e in nothing_pending["userErrors"]] == ["input.subscription"]
    pending = (await run(client, CANCEL, {"input": {"subscription": sub["id"]}}))["subscription"]
    assert pending["cancelAtPeriodEnd"] is True and pending["status"] == "ACTIVE"
    assert emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]["cancel_at_period_end"] is True
    reactivated = (await run(client, REACTIVATE, {"input": {"subscription": sub["id"]}}))["subscription"]
    assert reactivated["cancelAtPeriodEnd"] is False
    canceled = (await run(client, CANCEL, {"input": {"subscription": sub["id"], "atPeriodEnd": False}}))["subscription"]
    assert canceled["status"] == "CANCELED" and canceled["canceledAt"]
    assert emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]["status"] == "canceled"
    again = await run(client, CANCEL, {"input": {"subscription": sub["id"], "atPeriodEnd": False}})
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [("input.subscription", "BAD_USER_INPUT")]
    assert await audit_count(client, "cancelSubscription") == 2
    assert await audit_count(client, "reactivateSubscription") == 1


async def test_pause_and_resume_collection(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    sub = await subscribe(client)
    past = await run(
        client,
        PAUSE,
        {"input": {"subscription": sub["id"], "behavior": "VOID", "resumesAt": "2020-01-01T00:00:00Z"}},
    )
    assert [e["field"] for e in past["userErrors"]] == ["input.resumesAt"]
    not_paused = await run(client, RESUME, {"input": {"subscription": sub["id"]}})
    assert [e["field"] for e in not_paused["userErrors"]] == ["input.subscription"]
    resumes_at = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    paused = (
        await run(
            client,
            PAUSE,
            {"input": {"subscription": sub["id"], "behavior": "KEEP_AS_DRAFT", "resumesAt": resumes_at.isoformat()}},
        )
    )["subscription"]
    assert paused["paused"] is True and paused["pauseBehavior"] == "KEEP_AS_DRAFT" and paused["status"] == "ACTIVE"
    assert datetime.fromisoformat(paused["pauseResumesAt"]) == resumes_at
    remote = emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]
    assert remote["pause_collection"] == {"behavior": "keep_as_draft", "resumes_at": int(resumes_at.timestamp())}
    resumed = (await run(client, RESUME, {"input": {"subscription": sub["id"]}}))["subscription"]
    assert resumed["paused"] is False and resumed["pauseBehavior"] is None
    assert emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]["pause_collection"] is None


async def test_extend_trial(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    sub = await subscribe(client, trialDays=7)
    trial_end = datetime.fromisoformat(sub["trialEnd"])
    earlier = await run(
        client, EXTEND, {"input": {"subscription": sub["id"], "until": (trial_end - timedelta(days=1)).isoformat()}}
    )
    assert [(e["field"], e["code"]) for e in earlier["userErrors"]] == [("input.until", "BAD_USER_INPUT")]
    until = trial_end + timedelta(days=14)
    # support may extend trials
    extended = (
        await run(client, EXTEND, {"input": {"subscription": sub["id"], "until": until.isoformat()}}, role=Role.SUPPORT)
    )["subscription"]
    assert datetime.fromisoformat(extended["trialEnd"]) == until and extended["status"] == "TRIALING"
    assert emulator.state.collection("subscription")[sub["stripeSubscriptionId"]]["trial_end"] == int(until.timestamp())
    (entry,) = await audit_entries(client, "extendTrial")
    assert entry.actor_role == "support" and entry.before is not None and "trial_end" in entry.before
    active = await subscribe(client, customer=await _customer_of(client))
    not_trialing = await run(client, EXTEND, {"input": {"subscription": active["id"], "until": until.isoformat()}})
    assert [e["field"] for e in not_trialing["userErrors"]] == ["input.subscription"]


# --- permissions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ANALYST, Role.SUPPORT])
async def test_roles_without_subscription_change_are_forbidden_and_stripe_hears_nothing(
    client: GraphQLClient, emulator: EmulatorHandle, role: Role
) -> None:
    sub = await subscribe(client)
    customer = await _customer_of(client)
    price = sub["items"][0]["price"]["id"]
    emulator.clear_requests()
    attempts: list[tuple[str, dict[str, Any]]] = [
        (CREATE, {"customer": customer, "price": price}),
        (PREVIEW, {"subscription": sub["id"], "quantity": 3}),
        (CHANGE, {"subscription": sub["id"], "quantity": 3}),
        (CANCEL, {"subscription": sub["id"], "atPeriodEnd": False}),
        (REACTIVATE, {"subscription": sub["id"]}),
        (PAUSE, {"subscription": sub["id"], "behavior": "VOID"}),
        (RESUME, {"subscription": sub["id"]}),
    ]
    if role is Role.ANALYST:
        attempts.append((EXTEND, {"subscription": sub["id"], "until": "2100-01-01T00:00:00Z"}))
    for document, variables in attempts:
        body = await client.query(document, {"input": variables}, role=role)
        assert list(body["data"].values()) == [None], body  # type: ignore[union-attr]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]  # type: ignore[attr-defined]
    assert emulator.requests() == []
    assert len(await local_subscriptions(client)) == 1
    assert await audit_count(client, "cancelSubscription") == 0
