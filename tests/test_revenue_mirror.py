"""The MRR history written by the Stripe mirror: subscription mutations and coupons through
GraphQL against the local Stripe emulator."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from api.revenue.models import MrrSource, SubscriptionMrrChange
from api.subscription.models import Subscription, SubscriptionStatus
from tests.conftest import GraphQLClient
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import IGNORE_HTTPX_DATA_WARNING, run, stripe_app
from tests.test_stripe_invoices import APPLY, COUPON, CREATE_SUBSCRIPTION
from tests.test_stripe_subscriptions import add_customer, add_price

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

CHANGE = """mutation($input: ChangeSubscriptionInput!) { changeSubscription(input: $input) {
  subscription { id } userErrors { field message } } }"""
PAUSE = """mutation($input: PauseSubscriptionInput!) { pauseSubscription(input: $input) {
  subscription { id } userErrors { field message } } }"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def client(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str], emulator: EmulatorHandle
) -> GraphQLClient:
    emulator.reset()
    return stripe_app(app_factory, make_database(), emulator.url)


async def history(client: GraphQLClient) -> list[SubscriptionMrrChange]:
    async with client.runtime.session_factory() as session:
        rows = await session.execute(select(SubscriptionMrrChange).order_by(SubscriptionMrrChange.id))
        return list(rows.scalars())


async def test_subscription_changes_and_coupons_append_to_the_mrr_history(client: GraphQLClient) -> None:
    customer = await add_customer(client)
    price = await add_price(client, unit_amount=4000)
    created = await run(client, CREATE_SUBSCRIPTION, {"input": {"customer": customer, "price": price, "quantity": 2}})
    assert created["userErrors"] == [], created
    subscription = created["subscription"]["id"]
    (first,) = await history(client)
    assert (first.status, first.quantity, first.mrr, first.source) == (
        SubscriptionStatus.ACTIVE,
        2,
        8000,
        MrrSource.MIRROR,
    )

    coupon = await run(client, COUPON, {"input": {"name": "Quarter", "duration": "FOREVER", "percentOff": 25}})
    applied = await run(
        client, APPLY, {"input": {"subscription": subscription, "coupon": coupon["coupon"]["stripeCouponId"]}}
    )
    assert applied["userErrors"] == [], applied
    rows = await history(client)
    assert [(r.mrr, r.undiscounted_mrr) for r in rows] == [(8000, 8000), (6000, 8000)]  # 8000 x 0.75
    async with client.runtime.session_factory() as session:
        sub = (await session.execute(select(Subscription))).scalar_one()
        assert (sub.discount_percent_off, sub.discount_duration) == (Decimal(25), "forever")

    changed = await run(client, CHANGE, {"input": {"subscription": subscription, "quantity": 3}})
    assert changed["userErrors"] == [], changed
    paused = await run(client, PAUSE, {"input": {"subscription": subscription, "behavior": "VOID"}})
    assert paused["userErrors"] == [], paused
    rows = await history(client)
    # 3 x 4000 x 0.75 = 9000; paused: 0 (the subscription stays ACTIVE in Stripe)
    assert [(r.quantity, r.paused, r.mrr) for r in rows[2:]] == [(3, False, 9000), (3, True, 0)]
    assert all(earlier.effective_at <= later.effective_at for earlier, later in itertools.pairwise(rows))
