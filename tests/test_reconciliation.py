"""Stripe ↔ local reconciliation through the GraphQL endpoint, against the local Stripe emulator:
drift injected on either side is found with its field and both values, resolving corrects the
mirror from Stripe, a dry run changes nothing, missing objects both ways, permissions, jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from arq import func
from sqlalchemy import func as sql_func
from sqlalchemy import select, update

from api.auth.roles import Role
from api.catalog.models import Price
from api.customer.models import Customer
from api.invoice.models import Invoice, InvoiceStatus
from api.reconciliation.models import ReconciliationRun, ReconciliationStatus
from api.subscription.models import Subscription
from tests.conftest import GraphQLClient
from tests.factories import Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import IGNORE_HTTPX_DATA_WARNING, audit_count, run, run_worker, stripe_app
from workers.reconciliation import nightly_reconciliation, run_reconciliation

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message code } } }"""
CREATE_SUBSCRIPTION = """mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) {
  subscription { id stripeSubscriptionId items { quantity stripeSubscriptionItemId } }
  userErrors { field message code } } }"""
RUN = "run { id scope status objectsChecked discrepancyCount error requestedBy customerId }"
RECONCILE = f"""mutation($input: ReconcileInput) {{ reconcile(input: $input) {{ {RUN}
  userErrors {{ field message code }} }} }}"""
DISCREPANCY = "id objectType kind localId stripeId field localValue stripeValue resolvedAt resolution"
RESOLVE = f"""mutation($input: ResolveDiscrepanciesInput!) {{ resolveDiscrepancies(input: $input) {{
  {RUN} applied resolutions {{ action applied note discrepancy {{ {DISCREPANCY} }} }}
  userErrors {{ field message code }} }} }}"""
RESYNC = f"""mutation($input: ResyncCustomerInput!) {{ resyncCustomer(input: $input) {{
  {RUN} applied resolutions {{ action applied note discrepancy {{ {DISCREPANCY} }} }}
  userErrors {{ field message code }} }} }}"""
DISCREPANCIES = f"""query($filter: DiscrepancyFilterInput, $after: String) {{
  discrepancies(filter: $filter, first: 2, after: $after) {{ totalCount
  pageInfo {{ hasNextPage endCursor }} nodes {{ {DISCREPANCY} }} }} }}"""
RUNS = "query { reconciliationRuns(first: 10) { totalCount nodes { id status discrepancyCount } } }"


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


def sdk(emulator: EmulatorHandle) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_drift", base_addresses={"api": emulator.url}, max_network_retries=0)


async def subscribed_customer(client: GraphQLClient, quantity: int = 2) -> dict[str, Any]:
    """A customer and a subscription made through Ledgerline, then resynced (no webhooks here: the
    subscription's first invoice reaches the mirror through reconciliation)."""
    async with client.runtime.session_factory() as session, session.begin():
        price = await Builder(session).product_and_price(1000, "usd", nickname="Seats")
    customer = await run(
        client, CREATE_CUSTOMER, {"input": {"name": "Acme", "email": "ap@acme.test", "paymentMethod": "pm_card_visa"}}
    )
    assert customer["userErrors"] == [], customer
    sub = await run(
        client,
        CREATE_SUBSCRIPTION,
        {"input": {"customer": customer["customer"]["id"], "price": str(price.id), "quantity": quantity}},
    )
    assert sub["userErrors"] == [], sub
    resynced = await run(client, RESYNC, {"input": {"customer": customer["customer"]["id"]}})
    assert resynced["userErrors"] == [] and resynced["applied"] is True
    assert all(r["applied"] for r in resynced["resolutions"]), resynced
    clean = await run(client, RECONCILE, {"input": {"customer": customer["customer"]["id"]}})
    assert clean["run"]["status"] == "COMPLETED" and clean["run"]["discrepancyCount"] == 0, clean
    return {
        "customer": customer["customer"]["id"],
        "stripe_customer": customer["customer"]["stripeCustomerId"],
        "stripe_subscription": sub["subscription"]["stripeSubscriptionId"],
        "stripe_item": sub["subscription"]["items"][0]["stripeSubscriptionItemId"],
        "price": price,
    }


async def discrepancies(client: GraphQLClient, run_id: str, **filters: Any) -> list[dict[str, Any]]:
    """Every discrepancy of the run, walking the connection two at a time."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        body = await client.query(DISCREPANCIES, {"filter": {"run": run_id, **filters}, "after": after})
        assert "errors" not in body, body
        page = body["data"]["discrepancies"]  # type: ignore[index]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def burst(client: GraphQLClient, *functions: Any) -> None:
    await run_worker(client, [func(f, max_tries=1) for f in functions])


def by_field(items: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(d["objectType"], d["field"]): d for d in items}


async def test_drift_on_both_sides_is_found_dry_run_changes_nothing_apply_fixes_it(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    ids = await subscribed_customer(client, quantity=2)
    stripe_sdk = sdk(emulator)
    # Stripe side, no webhook delivered: the email and the seats change in Stripe itself
    await stripe_sdk.v1.customers.update_async(ids["stripe_customer"], {"email": "finance@acme.test"})
    await stripe_sdk.v1.subscriptions.update_async(
        ids["stripe_subscription"],
        {"items": [{"id": ids["stripe_item"], "quantity": 5}], "proration_behavior": "none"},
    )
    # local side: rows edited behind Stripe's back
    async with client.runtime.session_factory() as session, session.begin():
        await session.execute(update(Invoice).values(amount_paid=1, status=InvoiceStatus.OPEN))
        await session.execute(update(Subscription).values(cancel_at_period_end=True))

    reconciled = await run(client, RECONCILE, {"input": {"customer": ids["customer"]}})
    assert reconciled["userErrors"] == []
    run_info = reconciled["run"]
    assert run_info["status"] == "COMPLETED" and run_info["scope"] == "CUSTOMER"
    assert run_info["requestedBy"] == "owner@test" and run_info["objectsChecked"] == 3
    found = by_field(await discrepancies(client, run_info["id"]))
    assert set(found) == {
        ("CUSTOMER", "email"),
        ("SUBSCRIPTION", "quantity"),
        ("SUBSCRIPTION", "cancel_at_period_end"),
        ("INVOICE", "amount_paid"),
        ("INVOICE", "status"),
    }, found
    assert run_info["discrepancyCount"] == 5
    email = found[("CUSTOMER", "email")]
    assert email["kind"] == "FIELD_MISMATCH" and email["stripeId"] == ids["stripe_customer"]
    assert (email["localValue"], email["stripeValue"]) == ("ap@acme.test", "finance@acme.test")
    assert email["localId"] == ids["customer"]
    assert (found[("SUBSCRIPTION", "quantity")]["localValue"], found[("SUBSCRIPTION", "quantity")]["stripeValue"]) == (
        2,
        5,
    )
    cancel = found[("SUBSCRIPTION", "cancel_at_period_end")]
    assert (cancel["localValue"], cancel["stripeValue"]) == (True, False)
    paid = found[("INVOICE", "amount_paid")]
    assert (paid["localValue"], paid["stripeValue"]) == (1, 2000)
    status = found[("INVOICE", "status")]
    assert (status["localValue"], status["stripeValue"]) == ("OPEN", "PAID")

    # dry run: says what would change, changes nothing
    dry = await run(client, RESOLVE, {"input": {"run": run_info["id"], "apply": False}})
    assert dry["userErrors"] == [] and dry["applied"] is False
    assert len(dry["resolutions"]) == 5
    assert {r["action"] for r in dry["resolutions"]} == {"UPDATE_FROM_STRIPE"}
    assert not any(r["applied"] for r in dry["resolutions"])
    async with client.runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        assert customer.email == "ap@acme.test"
        invoice = (await session.execute(select(Invoice))).scalar_one()
        assert invoice.amount_paid == 1
    assert all(d["resolvedAt"] is None for d in await discrepancies(client, run_info["id"]))

    # apply: the mirror takes Stripe's values, the discrepancies are resolved, audited
    applied = await run(client, RESOLVE, {"input": {"run": run_info["id"], "apply": True}})
    assert applied["userErrors"] == [] and applied["applied"] is True
    assert all(r["applied"] for r in applied["resolutions"]), applied
    async with client.runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        sub = (await session.execute(select(Subscription))).scalar_one()
        invoice = (await session.execute(select(Invoice))).scalar_one()
    assert customer.email == "finance@acme.test" and customer.name == "Acme"
    assert sub.cancel_at_period_end is False
    assert invoice.amount_paid == 2000 and invoice.status is InvoiceStatus.PAID
    assert await discrepancies(client, run_info["id"], resolved=False) == []
    resolved = await discrepancies(client, run_info["id"], resolved=True)
    assert len(resolved) == 5 and all(d["resolution"].startswith("UPDATE_FROM_STRIPE") for d in resolved)
    assert await audit_count(client, "resolveDiscrepancies") == 2
    assert await audit_count(client, "reconcile") == 2
    # the seats: the items were re-mirrored
    again = await run(client, RECONCILE, {"input": {"customer": ids["customer"]}})
    assert again["run"]["discrepancyCount"] == 0
    # the list of runs, newest first
    body = await client.query(RUNS)
    runs = body["data"]["reconciliationRuns"]  # type: ignore[index]
    assert runs["totalCount"] == 4 and runs["nodes"][0]["id"] == again["run"]["id"]


async def test_missing_on_either_side_for_all_customers_through_the_job(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    ids = await subscribed_customer(client, quantity=1)
    async with client.runtime.session_factory() as session:
        price = await session.get(Price, ids["price"].id)  # its Stripe id was set by createSubscription
    assert price is not None and price.stripe_price_id is not None
    # a subscription made in Stripe directly (another system): unknown locally
    extra = await sdk(emulator).v1.subscriptions.create_async(
        {"customer": ids["stripe_customer"], "items": [{"price": price.stripe_price_id, "quantity": 3}]}
    )
    # a local invoice naming a Stripe invoice Stripe never had
    async with client.runtime.session_factory() as session, session.begin():
        customer = (await session.execute(select(Customer))).scalar_one()
        ghost = await Builder(session).invoice(customer, stripe_invoice_id="in_ghost_reconciliation")

    started = await run(client, RECONCILE, {"input": {}})
    assert started["userErrors"] == [] and started["run"]["status"] == "RUNNING"
    assert started["run"]["scope"] == "ALL"
    await burst(client, run_reconciliation)
    async with client.runtime.session_factory() as session:
        run_row = await session.get(ReconciliationRun, uuid.UUID(_local(started["run"]["id"])))
    assert run_row is not None and run_row.status is ReconciliationStatus.COMPLETED, run_row and run_row.error
    found = await discrepancies(client, started["run"]["id"])
    kinds = {(d["objectType"], d["kind"], d["stripeId"]) for d in found}
    assert ("SUBSCRIPTION", "MISSING_LOCALLY", extra.id) in kinds
    assert ("INVOICE", "MISSING_LOCALLY", extra.latest_invoice) in kinds
    assert ("INVOICE", "MISSING_IN_STRIPE", "in_ghost_reconciliation") in kinds
    missing = next(d for d in found if d["stripeId"] == "in_ghost_reconciliation")
    assert missing["localId"] is not None and missing["field"] is None
    assert len(found) == 3, found
    subscriptions = await discrepancies(client, started["run"]["id"], objectType=["SUBSCRIPTION"])
    assert [d["stripeId"] for d in subscriptions] == [extra.id]

    applied = await run(client, RESOLVE, {"input": {"run": started["run"]["id"], "apply": True}})
    actions = {r["discrepancy"]["stripeId"]: (r["action"], r["applied"]) for r in applied["resolutions"]}
    assert actions[extra.id] == ("CREATE_FROM_STRIPE", True)
    assert actions[extra.latest_invoice] == ("CREATE_FROM_STRIPE", True)
    assert actions["in_ghost_reconciliation"] == ("NEEDS_REVIEW", False)
    async with client.runtime.session_factory() as session:
        created = (
            await session.execute(select(Subscription).where(Subscription.stripe_subscription_id == extra.id))
        ).scalar_one()
        assert created.customer_id == customer.id
        ghost_row = await session.get(Invoice, ghost.id)
        assert ghost_row is not None  # left as it was, for a person to look at
    again = await run(client, RECONCILE, {"input": {"customer": ids["customer"]}})
    remaining = await discrepancies(client, again["run"]["id"])
    assert [(d["kind"], d["stripeId"]) for d in remaining] == [("MISSING_IN_STRIPE", "in_ghost_reconciliation")]


def _local(global_id: str) -> str:
    import base64

    return base64.b64decode(global_id).decode().split(":", 1)[1]


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.ANALYST])
async def test_support_and_analyst_are_refused(client: GraphQLClient, role: Role) -> None:
    async with client.runtime.session_factory() as session, session.begin():
        customer = await Builder(session).customer("Refused", stripe_customer_id="cus_refused")
    customer_gid = f"Customer:{customer.id}"
    import base64

    gid = base64.b64encode(customer_gid.encode()).decode()
    for document, variables in (
        (RECONCILE, {"input": {"customer": gid}}),
        (RESYNC, {"input": {"customer": gid}}),
        (RESOLVE, {"input": {"run": gid, "apply": True}}),
        (RUNS, None),
        (DISCREPANCIES, {"filter": None}),
    ):
        body = await client.query(document, variables, role=role)
        (error,) = body["errors"]  # type: ignore[misc]
        assert error["extensions"]["code"] == "FORBIDDEN", body
        assert error["extensions"]["requiredRoles"] == ["OWNER", "OPERATIONS", "FINANCE"]
    async with client.runtime.session_factory() as session:
        runs = (await session.execute(select(sql_func.count()).select_from(ReconciliationRun))).scalar_one()
    assert runs == 0


async def test_the_nightly_job_runs_in_a_burst_worker(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    await sdk(emulator).v1.customers.create_async({"name": "Made in Stripe", "email": "direct@stripe.test"})
    assert client.settings.redis_url is not None
    pool = await client.runtime.arq()
    await pool.enqueue_job("nightly_reconciliation", _job_id=f"nightly-test-{uuid.uuid4()}")
    await burst(client, nightly_reconciliation)
    async with client.runtime.session_factory() as session:
        (run_row,) = (await session.execute(select(ReconciliationRun))).scalars()
    assert run_row.status is ReconciliationStatus.COMPLETED, run_row.error
    assert run_row.requested_by == "reconciliation" and run_row.discrepancy_count == 1
    body = await client.query(RUNS, role=Role.FINANCE)
    assert body["data"]["reconciliationRuns"]["nodes"][0]["status"] == "COMPLETED"  # type: ignore[index]
