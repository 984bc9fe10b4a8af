"""createCustomer, updateCustomer, suspendCustomer, reactivateCustomer through the GraphQL
endpoint, against the local Stripe emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from api.auth.roles import Role
from api.customer.models import Customer
from tests.conftest import GraphQLClient
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

CUSTOMER_FIELDS = """customer { id name email phone tier industry status internalTeam currency externalId
  stripeCustomerId suspendedReason address { city country } paymentMethod { brand last4 } }
  userErrors { field message code }"""
CREATE = f"""mutation($input: CreateCustomerInput!) {{ createCustomer(input: $input) {{ {CUSTOMER_FIELDS} }} }}"""
UPDATE = f"""mutation($input: UpdateCustomerInput!) {{ updateCustomer(input: $input) {{ {CUSTOMER_FIELDS} }} }}"""
SUSPEND = f"""mutation($input: SuspendCustomerInput!) {{ suspendCustomer(input: $input) {{ {CUSTOMER_FIELDS} }} }}"""
REACTIVATE = (
    f"""mutation($input: ReactivateCustomerInput!) {{ reactivateCustomer(input: $input) {{ {CUSTOMER_FIELDS} }} }}"""
)

ACME: dict[str, Any] = {
    "name": "Acme",
    "email": "billing@acme.test",
    "phone": "+33 1 23 45 67 89",
    "address": {"line1": "1 rue de la Paix", "city": "Paris", "postalCode": "75002", "country": "FR"},
    "taxId": "FR12345678901",
    "tier": "PRO",
    "industry": "Logistics",
    "currency": "eur",
    "externalId": "acme-1",
    "paymentMethod": "pm_card_visa",
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def client(app_factory: Callable[..., GraphQLClient], db: str, emulator: EmulatorHandle) -> GraphQLClient:
    emulator.reset()  # an empty Stripe account per test
    return stripe_app(app_factory, db, emulator.url)


async def customer_count(client: GraphQLClient) -> int:
    async with client.runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(Customer))).scalar_one())


async def test_create_customer_creates_it_in_stripe_with_the_default_card(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    payload = await run(client, CREATE, {"input": ACME})
    assert payload["userErrors"] == []
    customer = payload["customer"]
    assert customer["name"] == "Acme" and customer["tier"] == "PRO" and customer["status"] == "ACTIVE"
    assert customer["currency"] == "eur" and customer["externalId"] == "acme-1"
    assert customer["address"] == {"city": "Paris", "country": "FR"}
    assert customer["paymentMethod"] == {"brand": "visa", "last4": "4242"}
    stripe_id = customer["stripeCustomerId"]
    assert stripe_id.startswith("cus_")
    remote = emulator.state.collection("customer")[stripe_id]
    assert remote["email"] == "billing@acme.test" and remote["address"]["city"] == "Paris"
    assert remote["invoice_settings"]["default_payment_method"]
    (create,) = writes(emulator, "/v1/customers")
    assert create["idempotency_key"].startswith("ledgerline-createCustomer-customer-")
    (entry,) = await audit_entries(client, "createCustomer")
    assert entry.target_type == "Customer" and entry.before is None
    assert entry.after is not None and entry.after["name"] == "Acme" and entry.actor_subject == "owner@test"


async def test_create_customer_without_card_and_bad_input_names_the_field(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    payload = await run(client, CREATE, {"input": {"name": "Solo"}})
    assert payload["userErrors"] == [] and payload["customer"]["paymentMethod"] is None
    assert payload["customer"]["tier"] == "KICKSTART"
    emulator.clear_requests()
    for bad, field in (
        ({"name": "  "}, "input.name"),
        ({"name": "X", "email": "not-an-email"}, "input.email"),
        ({"name": "X", "currency": "euro"}, "input.currency"),
        ({"name": "X", "address": {"country": "France"}}, "input.address.country"),
    ):
        refused = await run(client, CREATE, {"input": bad})
        assert refused["customer"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(field, "BAD_USER_INPUT")], bad
    assert writes(emulator) == []  # validation happens before Stripe is called


async def test_declined_card_is_a_user_error_with_stripes_code_and_nothing_changes(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    payload = await run(client, CREATE, {"input": {**ACME, "paymentMethod": "pm_card_chargeDeclined"}})
    assert payload["customer"] is None
    (error,) = payload["userErrors"]
    assert error["code"] == "card_declined" and error["field"] == "input.paymentMethod"
    assert "declined" in error["message"].lower()
    assert await customer_count(client) == 0
    assert await audit_count(client, "createCustomer") == 0
    assert emulator.state.collection("customer") == {}  # Stripe refused the whole creation


async def test_same_idempotency_key_returns_the_first_result_without_a_second_stripe_call(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    first = await run(client, CREATE, {"input": {**ACME, "idempotencyKey": "create-acme-1"}})
    again = await run(client, CREATE, {"input": {**ACME, "idempotencyKey": "create-acme-1"}})
    assert again == first and first["userErrors"] == []
    assert len(emulator.requests(path="/v1/customers")) == 1  # the replay never reached Stripe
    assert await audit_count(client, "createCustomer") == 1
    assert await customer_count(client) == 1
    other = await run(client, CREATE, {"input": {**ACME, "name": "Acme 2", "idempotencyKey": "create-acme-1"}})
    assert other["customer"] is None
    assert other["userErrors"] == [
        {
            "field": "input.idempotencyKey",
            "message": "this idempotencyKey was already used for a different createCustomer input",
            "code": "IDEMPOTENCY_KEY_REUSED",
        }
    ]
    # the key belongs to its actor: another staff member using it does its own work
    finance = await run(
        client,
        CREATE,
        {"input": {**ACME, "externalId": "acme-2", "idempotencyKey": "create-acme-1"}},
        role=Role.FINANCE,
    )
    assert finance["userErrors"] == [] and finance["customer"]["id"] != first["customer"]["id"]


async def test_stripe_down_is_a_stripe_error_and_the_same_key_succeeds_once_it_is_back(
    app_factory: Callable[..., GraphQLClient], db: str, client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    down = stripe_app(app_factory, db, CLOSED_PORT_URL)
    variables = {"input": {**ACME, "idempotencyKey": "while-down"}}
    body = await down.query(CREATE, variables)
    assert body["data"] == {"createCustomer": None}
    (error,) = body["errors"]  # type: ignore[misc]
    assert error["extensions"]["code"] == "STRIPE_ERROR"
    assert error["message"] == "Stripe is unreachable, nothing was changed; retry with the same idempotencyKey"
    assert await customer_count(client) == 0 and await audit_count(client, "createCustomer") == 0
    # Stripe is back (the same database, the same actor, the same key)
    first = await run(client, CREATE, variables)
    assert first["userErrors"] == [] and first["customer"]["stripeCustomerId"]
    assert await run(client, CREATE, variables) == first
    assert len(writes(emulator, "/v1/customers")) == 1
    assert await customer_count(client) == 1 and await audit_count(client, "createCustomer") == 1


async def test_a_failed_local_commit_is_retried_with_stripes_idempotent_answer(
    client: GraphQLClient, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.customer.commands as commands

    real_record_audit = commands.record_audit
    calls = 0

    async def fail_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away after Stripe answered")
        return await real_record_audit(*args, **kwargs)

    monkeypatch.setattr(commands, "record_audit", fail_once)
    variables = {"input": {**ACME, "idempotencyKey": "commit-fails"}}
    body = await client.query(CREATE, variables)
    assert body["data"] == {"createCustomer": None}
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"  # type: ignore[index]
    assert await customer_count(client) == 0
    retried = await run(client, CREATE, variables)
    assert retried["userErrors"] == []
    creates = emulator.requests(method="POST", path="/v1/customers")
    assert [r["idempotent_replayed"] for r in creates] == [False, True]  # Stripe created one customer
    assert list(emulator.state.collection("customer")) == [retried["customer"]["stripeCustomerId"]]
    assert await customer_count(client) == 1 and await audit_count(client, "createCustomer") == 1


async def test_update_customer_changes_local_fields_and_the_stripe_customer(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    created = (await run(client, CREATE, {"input": {**ACME, "paymentMethod": None}}))["customer"]
    changes = {
        "customer": created["id"],
        "name": "Acme Corp",
        "email": "ap@acme.test",
        "tier": "CUSTOM",
        "industry": "Retail",
        "address": {"city": "Lyon", "country": "FR"},
        "paymentMethod": "pm_card_mastercard",
        "idempotencyKey": "update-1",
    }
    payload = await run(client, UPDATE, {"input": changes})
    assert payload["userErrors"] == []
    customer = payload["customer"]
    assert (customer["name"], customer["email"], customer["tier"], customer["industry"]) == (
        "Acme Corp",
        "ap@acme.test",
        "CUSTOM",
        "Retail",
    )
    assert customer["address"] == {"city": "Lyon", "country": "FR"}
    assert customer["paymentMethod"] == {"brand": "mastercard", "last4": "4444"}
    remote = emulator.state.collection("customer")[created["stripeCustomerId"]]
    assert (remote["name"], remote["email"], remote["address"]["city"]) == ("Acme Corp", "ap@acme.test", "Lyon")
    assert remote["address"]["line1"] == "1 rue de la Paix"  # the parts not given stay (here and in Stripe)
    (entry,) = await audit_entries(client, "updateCustomer")
    assert entry.before is not None and entry.after is not None
    assert entry.before["name"] == "Acme" and entry.after["name"] == "Acme Corp"
    assert "currency" not in entry.after  # only what changed
    # the same key again: the first result, no Stripe call
    emulator.clear_requests()
    assert await run(client, UPDATE, {"input": changes}) == payload
    assert writes(emulator) == []


async def test_update_with_a_declined_card_changes_nothing(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    created = (await run(client, CREATE, {"input": ACME}))["customer"]
    payload = await run(
        client,
        UPDATE,
        {"input": {"customer": created["id"], "tier": "CUSTOM", "paymentMethod": "pm_card_chargeDeclined"}},
    )
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("input.paymentMethod", "card_declined")]
    async with client.runtime.session_factory() as session:
        row = (await session.execute(select(Customer))).scalar_one()
    assert row.tier.value == "PRO" and row.payment_method_last4 == "4242"
    assert await audit_count(client, "updateCustomer") == 0


async def test_update_unknown_customer_names_the_field(client: GraphQLClient) -> None:
    payload = await run(
        client, UPDATE, {"input": {"customer": "00000000-0000-0000-0000-000000000000", "name": "Nobody"}}
    )
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("input.customer", "NOT_FOUND")]


async def test_suspend_and_reactivate_are_local_only(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    created = (await run(client, CREATE, {"input": ACME}))["customer"]
    emulator.clear_requests()
    missing_reason = await run(client, SUSPEND, {"input": {"customer": created["id"], "reason": " "}})
    assert [e["field"] for e in missing_reason["userErrors"]] == ["input.reason"]
    suspended = await run(client, SUSPEND, {"input": {"customer": created["id"], "reason": "chargeback fraud"}})
    assert suspended["customer"]["status"] == "SUSPENDED"
    assert suspended["customer"]["suspendedReason"] == "chargeback fraud"
    twice = await run(client, SUSPEND, {"input": {"customer": created["id"], "reason": "again"}})
    assert [(e["field"], e["code"]) for e in twice["userErrors"]] == [("input.customer", "BAD_USER_INPUT")]
    reactivated = await run(client, REACTIVATE, {"input": {"customer": created["id"]}})
    assert reactivated["customer"]["status"] == "ACTIVE" and reactivated["customer"]["suspendedReason"] is None
    assert emulator.requests() == []  # no Stripe call at all
    (suspend_entry,) = await audit_entries(client, "suspendCustomer")
    assert suspend_entry.before == {"status": "ACTIVE", "suspended_reason": None}
    assert suspend_entry.after == {"status": "SUSPENDED", "suspended_reason": "chargeback fraud"}
    assert await audit_count(client, "reactivateCustomer") == 1


@pytest.mark.parametrize(
    ("role", "document", "allowed"),
    [
        (Role.ANALYST, CREATE, False),
        (Role.ANALYST, UPDATE, False),
        (Role.SUPPORT, UPDATE, True),
        (Role.SUPPORT, SUSPEND, False),
        (Role.SUPPORT, REACTIVATE, False),
        (Role.ANALYST, SUSPEND, False),
    ],
)
async def test_roles_without_the_capability_are_forbidden_before_stripe_is_called(
    client: GraphQLClient, emulator: EmulatorHandle, role: Role, document: str, allowed: bool
) -> None:
    created = (await run(client, CREATE, {"input": ACME}))["customer"]
    emulator.clear_requests()
    if document is CREATE:
        variables: dict[str, Any] = {"input": {**ACME, "externalId": "other"}}
    elif document is SUSPEND:
        variables = {"input": {"customer": created["id"], "reason": "r"}}
    elif document is REACTIVATE:
        variables = {"input": {"customer": created["id"]}}
    else:
        variables = {"input": {"customer": created["id"], "name": "Renamed"}}
    body = await client.query(document, variables, role=role)
    if allowed:  # support edits, but cannot read the card: only that field is refused
        assert body["data"]["updateCustomer"]["customer"]["name"] == "Renamed"  # type: ignore[index]
        assert {tuple(e["path"][-1:]) for e in body["errors"]} == {("paymentMethod",)}  # type: ignore[attr-defined]
        return
    (error,) = body["errors"]  # type: ignore[misc]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert list(body["data"].values()) == [None]  # type: ignore[union-attr]
    assert emulator.requests() == []
    assert await customer_count(client) == 1
