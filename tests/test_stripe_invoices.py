"""createInvoice, finalizeInvoice, sendInvoice, voidInvoice, payInvoice, refundInvoice, issueCredit,
createCoupon, createPromotionCode, applyCoupon through the GraphQL endpoint, against the local
Stripe emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from api.audit.models import AuditOutcome
from api.auth.roles import Role
from api.invoice.models import Invoice, Payment, PaymentStatus, Refund
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
from tests.test_stripe_subscriptions import add_price

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

ERRORS = "userErrors { field message code }"
INVOICE = """invoice { id number status currency total { minorUnits } amountDue { minorUnits }
  amountPaid { minorUnits } amountRemaining { minorUnits } amountRefunded { minorUnits } hostedInvoiceUrl
  invoicePdfUrl attemptCount nextPaymentAttempt dueDate stripeInvoiceId
  lines { description amount { minorUnits currency } quantity }
  payments { status amount { minorUnits } failureCode } refunds { amount { amount minorUnits } reason status } }"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message code } } }"""
CREATE = f"mutation($input: CreateInvoiceInput!) {{ createInvoice(input: $input) {{ {INVOICE} {ERRORS} }} }}"
FINALIZE = f"mutation($input: InvoiceActionInput!) {{ finalizeInvoice(input: $input) {{ {INVOICE} {ERRORS} }} }}"
SEND = f"mutation($input: InvoiceActionInput!) {{ sendInvoice(input: $input) {{ {INVOICE} {ERRORS} }} }}"
VOID = f"mutation($input: InvoiceActionInput!) {{ voidInvoice(input: $input) {{ {INVOICE} {ERRORS} }} }}"
PAY = f"mutation($input: InvoiceActionInput!) {{ payInvoice(input: $input) {{ {INVOICE} {ERRORS} }} }}"
REFUND = f"""mutation($input: RefundInvoiceInput!) {{ refundInvoice(input: $input) {{ {INVOICE}
  refund {{ amount {{ minorUnits }} reason stripeRefundId }} {ERRORS} }} }}"""
CREDIT = f"""mutation($input: IssueCreditInput!) {{ issueCredit(input: $input) {{ customer {{ id }}
  credit {{ stripeBalanceTransactionId amount {{ minorUnits }} reason creditBalance {{ minorUnits }} }} {ERRORS} }} }}"""
COUPON = f"""mutation($input: CreateCouponInput!) {{ createCoupon(input: $input) {{ coupon {{ stripeCouponId name
  percentOff amountOff {{ minorUnits currency }} duration durationInMonths valid }} {ERRORS} }} }}"""
PROMO = f"""mutation($input: CreatePromotionCodeInput!) {{ createPromotionCode(input: $input) {{
  promotionCode {{ stripePromotionCodeId code stripeCouponId active }} {ERRORS} }} }}"""
APPLY = f"""mutation($input: ApplyCouponInput!) {{ applyCoupon(input: $input) {{
  subscriptions {{ id stripeSubscriptionId }} {ERRORS} }} }}"""
CREATE_SUBSCRIPTION = """mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) {
  subscription { id stripeSubscriptionId } userErrors { field message code } } }"""


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


async def add_customer(client: GraphQLClient, payment_method: str | None = "pm_card_visa") -> str:
    data: dict[str, Any] = {"name": "Acme", "email": "ap@acme.test"}
    if payment_method:
        data["paymentMethod"] = payment_method
    payload = await run(client, CREATE_CUSTOMER, {"input": data})
    assert payload["userErrors"] == [], payload
    return str(payload["customer"]["id"])


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "usd"}


async def new_invoice(client: GraphQLClient, customer: str, *amounts: str, **extra: Any) -> dict[str, Any]:
    items = [{"description": f"Service {i}", "unitAmount": usd(a)} for i, a in enumerate(amounts or ("150.00",))]
    payload = await run(client, CREATE, {"input": {"customer": customer, "items": items, **extra}})
    assert payload["userErrors"] == [], payload
    return payload["invoice"]  # type: ignore[no-any-return]


async def act(client: GraphQLClient, document: str, invoice: str, role: Role = Role.OWNER, **extra: Any) -> Any:
    return await run(client, document, {"input": {"invoice": invoice, **extra}}, role=role)


async def paid_invoice(client: GraphQLClient, *amounts: str) -> dict[str, Any]:
    invoice = await new_invoice(client, await add_customer(client), *amounts)
    await act(client, FINALIZE, invoice["id"])
    paid = await act(client, PAY, invoice["id"])
    assert paid["userErrors"] == [] and paid["invoice"]["status"] == "PAID", paid
    return paid["invoice"]  # type: ignore[no-any-return]


async def count(client: GraphQLClient, model: Any) -> int:
    async with client.runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# --- create, finalize, pay, send, void ---------------------------------------------------------------


async def test_create_finalize_and_pay_an_invoice(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    customer = await add_customer(client)
    variables = {
        "input": {
            "customer": customer,
            "items": [
                {"description": "Onboarding", "unitAmount": usd("250.00")},
                {"description": "Extra seats", "unitAmount": usd("12.50"), "quantity": 4},
            ],
            "idempotencyKey": "inv-1",
        }
    }
    created = await run(client, CREATE, variables)
    invoice = created["invoice"]
    assert created["userErrors"] == [] and invoice["status"] == "DRAFT"
    assert invoice["total"]["minorUnits"] == 30000 and invoice["number"] is None
    assert [(line["description"], line["amount"]["minorUnits"], line["quantity"]) for line in invoice["lines"]] == [
        ("Onboarding", 25000, 1),
        ("Extra seats", 5000, 4),
    ]
    remote = emulator.state.collection("invoice")[invoice["stripeInvoiceId"]]
    assert remote["status"] == "draft" and remote["total"] == 30000
    (entry,) = await audit_entries(client, "createInvoice")
    assert entry.target_type == "Invoice" and entry.after is not None and entry.after["total"] == 30000
    # replay: the first result, no second Stripe write, one audit entry
    emulator.clear_requests()
    assert await run(client, CREATE, variables) == created
    assert writes(emulator) == [] and await audit_count(client, "createInvoice") == 1

    finalized = (await act(client, FINALIZE, invoice["id"]))["invoice"]
    assert finalized["status"] == "OPEN" and finalized["number"]
    assert finalized["hostedInvoiceUrl"].endswith("/hosted") and finalized["invoicePdfUrl"].endswith("/pdf")
    assert finalized["amountDue"]["minorUnits"] == 30000
    again = await act(client, FINALIZE, invoice["id"])
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [("input.invoice", "BAD_USER_INPUT")]

    paid = await act(client, PAY, invoice["id"], idempotencyKey="pay-1")
    assert paid["userErrors"] == []
    assert paid["invoice"]["status"] == "PAID" and paid["invoice"]["amountPaid"]["minorUnits"] == 30000
    assert paid["invoice"]["attemptCount"] == 1 and paid["invoice"]["amountRemaining"]["minorUnits"] == 0
    assert paid["invoice"]["payments"] == [
        {"status": "SUCCEEDED", "amount": {"minorUnits": 30000}, "failureCode": None}
    ]
    emulator.clear_requests()
    assert await act(client, PAY, invoice["id"], idempotencyKey="pay-1") == paid
    assert writes(emulator) == []
    assert await audit_count(client, "finalizeInvoice") == 1 and await audit_count(client, "payInvoice") == 1


async def test_create_invoice_bad_input_names_the_field_before_stripe(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    customer = await add_customer(client)
    emulator.clear_requests()
    item = {"description": "Thing", "unitAmount": usd("10.00")}
    for change, field in (
        ({"items": []}, "input.items"),
        ({"items": [{**item, "unitAmount": usd("10.001")}]}, "input.items.0.unitAmount.amount"),
        (
            {"items": [item, {**item, "unitAmount": {"amount": "5", "currency": "eur"}}]},
            "input.items.1.unitAmount.currency",
        ),
        ({"items": [{**item, "quantity": 0}]}, "input.items.0.quantity"),
        ({"items": [{**item, "description": " "}]}, "input.items.0.description"),
        ({"items": [item], "dueDays": 10}, "input.dueDays"),
        ({"items": [item], "customer": "00000000-0000-0000-0000-000000000000"}, "input.customer"),
    ):
        payload = await run(client, CREATE, {"input": {"customer": customer, **change}})
        assert payload["invoice"] is None
        assert [e["field"] for e in payload["userErrors"]] == [field], (change, payload)
    assert writes(emulator) == []
    assert await count(client, Invoice) == 0


async def test_send_then_void_a_send_invoice_invoice(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    customer = await add_customer(client, payment_method=None)
    invoice = await new_invoice(client, customer, "80.00", collectionMethod="SEND_INVOICE", dueDays=14)
    not_open = await act(client, VOID, invoice["id"])
    assert [e["field"] for e in not_open["userErrors"]] == ["input.invoice"]
    sent = (await act(client, SEND, invoice["id"]))["invoice"]
    assert sent["status"] == "OPEN" and sent["dueDate"] and sent["hostedInvoiceUrl"]
    assert any(e["type"] == "invoice.sent" for e in emulator.state.collection("event").values())
    voided = (await act(client, VOID, invoice["id"]))["invoice"]
    assert voided["status"] == "VOID"
    assert emulator.state.collection("invoice")[invoice["stripeInvoiceId"]]["status"] == "void"
    assert await audit_count(client, "sendInvoice") == 1 and await audit_count(client, "voidInvoice") == 1
    # a charge_automatically invoice cannot be sent: Stripe's refusal, about the invoice
    auto = await new_invoice(client, customer, "5.00")
    refused = await act(client, SEND, auto["id"])
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [("input.invoice", "invoice_not_editable")]


async def test_a_declined_payment_is_a_user_error_and_the_invoice_shows_the_attempt(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    customer = await add_customer(client, payment_method="pm_card_chargeCustomerFail")
    invoice = await new_invoice(client, customer, "40.00")
    await act(client, FINALIZE, invoice["id"])
    declined = await act(client, PAY, invoice["id"])
    (error,) = declined["userErrors"]
    assert error["code"] == "card_declined" and error["field"] == "input.invoice"
    shown = declined["invoice"]
    remote = emulator.state.collection("invoice")[invoice["stripeInvoiceId"]]
    assert shown["status"] == "OPEN" and shown["attemptCount"] == remote["attempt_count"] == 1
    assert shown["nextPaymentAttempt"] is None and remote["next_payment_attempt"] is None  # manual invoice
    assert shown["payments"] == [{"status": "FAILED", "amount": {"minorUnits": 4000}, "failureCode": "card_declined"}]
    (entry,) = await audit_entries(client, "payInvoice")
    assert entry.outcome is AuditOutcome.FAILURE
    second = await act(client, PAY, invoice["id"])
    assert second["invoice"]["attemptCount"] == 2


# --- refunds and credits ---------------------------------------------------------------------------------


async def test_full_refund(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    invoice = await paid_invoice(client, "150.00")
    refunded = await act(client, REFUND, invoice["id"], reason="duplicate charge", idempotencyKey="r-1")
    assert refunded["userErrors"] == []
    assert refunded["refund"]["amount"]["minorUnits"] == 15000 and refunded["refund"]["stripeRefundId"]
    assert refunded["invoice"]["amountRefunded"]["minorUnits"] == 15000
    assert refunded["invoice"]["refunds"][0]["reason"] == "duplicate charge"
    (remote,) = emulator.state.collection("refund").values()
    assert remote["amount"] == 15000 and remote["metadata"]["reason"] == "duplicate charge"
    emulator.clear_requests()
    assert await act(client, REFUND, invoice["id"], reason="duplicate charge", idempotencyKey="r-1") == refunded
    assert writes(emulator) == []
    nothing_left = await act(client, REFUND, invoice["id"], reason="again")
    assert [e["field"] for e in nothing_left["userErrors"]] == ["input.invoice"]
    assert writes(emulator) == []


async def test_partial_refunds_up_to_what_was_paid(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    invoice = await paid_invoice(client, "150.00")
    first = await act(client, REFUND, invoice["id"], amount=usd("50.00"), reason="goodwill")
    assert first["invoice"]["amountRefunded"]["minorUnits"] == 5000
    second = await act(client, REFUND, invoice["id"], amount=usd("60.00"), reason="outage credit")
    assert second["invoice"]["amountRefunded"]["minorUnits"] == 11000
    emulator.clear_requests()
    over = await act(client, REFUND, invoice["id"], amount=usd("40.01"), reason="too much")
    (error,) = over["userErrors"]
    assert error["field"] == "input.amount" and "40.00 USD" in error["message"]
    assert over["invoice"] is None and emulator.requests() == []
    wrong_currency = await act(client, REFUND, invoice["id"], amount={"amount": "1", "currency": "eur"}, reason="x")
    assert [e["field"] for e in wrong_currency["userErrors"]] == ["input.amount.currency"]
    last = await act(client, REFUND, invoice["id"], amount=usd("40.00"), reason="the rest")
    assert last["invoice"]["amountRefunded"]["minorUnits"] == 15000
    assert [r["amount"]["minorUnits"] for r in last["invoice"]["refunds"]] == [5000, 6000, 4000]
    assert await count(client, Refund) == 3 and await audit_count(client, "refundInvoice") == 3


async def test_support_refunds_and_credits_within_the_cap_only(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    invoice = await paid_invoice(client, "250.00")
    within = await act(client, REFUND, invoice["id"], role=Role.SUPPORT, amount=usd("100.00"), reason="cap")
    assert within["userErrors"] == [] and within["invoice"]["amountRefunded"]["minorUnits"] == 10000
    emulator.clear_requests()
    for document, variables in (
        (REFUND, {"invoice": invoice["id"], "amount": usd("100.01"), "reason": "over"}),
        (REFUND, {"invoice": invoice["id"], "reason": "everything left (150.00)"}),
        (CREDIT, {"customer": await _customer_of(client), "amount": usd("100.01"), "reason": "over"}),
    ):
        body = await client.query(document, {"input": variables}, role=Role.SUPPORT)
        assert list(body["data"].values()) == [None], body  # type: ignore[union-attr]
        (error,) = body["errors"]  # type: ignore[misc]
        assert error["extensions"]["code"] == "FORBIDDEN" and error["extensions"]["requiredRoles"] == [
            "OWNER",
            "FINANCE",
        ]
    assert emulator.requests() == []
    assert await audit_count(client, "refundInvoice") == 1 and await audit_count(client, "issueCredit") == 0
    credit = await run(
        client,
        CREDIT,
        {"input": {"customer": await _customer_of(client), "amount": usd("20.00"), "reason": "sorry"}},
        role=Role.SUPPORT,
    )
    assert credit["userErrors"] == [] and credit["credit"]["amount"]["minorUnits"] == 2000


async def _customer_of(client: GraphQLClient) -> str:
    body = await client.query("{ customers(first: 1) { edges { node { id } } } }")
    return str(body["data"]["customers"]["edges"][0]["node"]["id"])  # type: ignore[index]


async def test_a_credit_reduces_the_next_charge(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    customer = await add_customer(client)
    variables = {"input": {"customer": customer, "amount": usd("10.00"), "reason": "outage", "idempotencyKey": "c-1"}}
    credited = await run(client, CREDIT, variables, role=Role.FINANCE)
    assert credited["userErrors"] == []
    assert (
        credited["credit"]["amount"]["minorUnits"] == 1000 and credited["credit"]["creditBalance"]["minorUnits"] == 1000
    )
    stripe_customer = next(iter(emulator.state.collection("customer").values()))
    assert stripe_customer["balance"] == -1000
    emulator.clear_requests()
    assert await run(client, CREDIT, variables, role=Role.FINANCE) == credited
    assert writes(emulator) == [] and await audit_count(client, "issueCredit") == 1
    invoice = await new_invoice(client, customer, "50.00")
    finalized = (await act(client, FINALIZE, invoice["id"]))["invoice"]
    assert finalized["total"]["minorUnits"] == 5000 and finalized["amountDue"]["minorUnits"] == 4000
    paid = (await act(client, PAY, invoice["id"]))["invoice"]
    assert paid["amountPaid"]["minorUnits"] == 4000 and paid["status"] == "PAID"


# --- failures and permissions ------------------------------------------------------------------------------


async def test_stripe_down_changes_nothing_and_the_same_key_succeeds_later(
    app_factory: Callable[..., GraphQLClient], db: str, client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    invoice = await paid_invoice(client, "30.00")
    customer = await _customer_of(client)
    draft = await new_invoice(client, customer, "5.00")
    down = stripe_app(app_factory, db, CLOSED_PORT_URL)
    item = {"description": "Thing", "unitAmount": usd("10.00")}
    create = {"input": {"customer": customer, "items": [item], "idempotencyKey": "while-down"}}
    refund = {"input": {"invoice": invoice["id"], "reason": "down", "idempotencyKey": "refund-down"}}
    credit = {"input": {"customer": customer, "amount": usd("1.00"), "reason": "down"}}
    before = (await count(client, Invoice), await count(client, Refund), await audit_count(client, "createInvoice"))
    for document, variables in (
        (CREATE, create),
        (REFUND, refund),
        (CREDIT, credit),
        (FINALIZE, {"input": {"invoice": draft["id"]}}),
    ):
        body = await down.query(document, variables)
        assert list(body["data"].values()) == [None], body  # type: ignore[union-attr]
        assert body["errors"][0]["extensions"]["code"] == "STRIPE_ERROR"  # type: ignore[index]
    assert (
        await count(client, Invoice),
        await count(client, Refund),
        await audit_count(client, "createInvoice"),
    ) == before
    assert await audit_count(client, "refundInvoice") == 0 and await audit_count(client, "issueCredit") == 0
    async with client.runtime.session_factory() as session:
        local_draft = (await session.execute(select(Invoice).where(Invoice.total == 500))).scalar_one()
    assert local_draft.status.value == "DRAFT" and await audit_count(client, "finalizeInvoice") == 1
    first = await run(client, REFUND, refund)
    assert first["invoice"]["amountRefunded"]["minorUnits"] == 3000
    assert await run(client, REFUND, refund) == first
    assert len(writes(emulator, "/v1/refunds")) == 1


@pytest.mark.parametrize("role", [Role.ANALYST, Role.SUPPORT, Role.OPERATIONS])
async def test_forbidden_roles_get_forbidden_and_stripe_hears_nothing(
    client: GraphQLClient, emulator: EmulatorHandle, role: Role
) -> None:
    invoice = await paid_invoice(client, "20.00")
    customer = await _customer_of(client)
    emulator.clear_requests()
    attempts: list[tuple[str, dict[str, Any]]] = [
        (CREATE, {"customer": customer, "items": [{"description": "x", "unitAmount": usd("1.00")}]}),
        (FINALIZE, {"invoice": invoice["id"]}),
        (SEND, {"invoice": invoice["id"]}),
        (VOID, {"invoice": invoice["id"]}),
        (PAY, {"invoice": invoice["id"]}),
        (COUPON, {"name": "x", "duration": "ONCE", "percentOff": 10}),
        (PROMO, {"coupon": "abc", "code": "ABC"}),
    ]
    if role is not Role.SUPPORT:
        attempts += [
            (REFUND, {"invoice": invoice["id"], "amount": usd("1.00"), "reason": "x"}),
            (CREDIT, {"customer": customer, "amount": usd("1.00"), "reason": "x"}),
        ]
    if role is not Role.OPERATIONS:
        attempts.append((APPLY, {"customer": customer, "coupon": "abc"}))
    for document, variables in attempts:
        body = await client.query(document, {"input": variables}, role=role)
        assert list(body["data"].values()) == [None], body  # type: ignore[union-attr]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]  # type: ignore[attr-defined]
    assert emulator.requests() == []
    async with client.runtime.session_factory() as session:
        payments = (await session.execute(select(Payment))).scalars().all()
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED]


# --- coupons ---------------------------------------------------------------------------------------------------


async def test_coupons_promotion_codes_and_applying_them(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    bad = await run(
        client, COUPON, {"input": {"name": "Both", "duration": "ONCE", "percentOff": 10, "amountOff": usd("5")}}
    )
    assert [e["field"] for e in bad["userErrors"]] == ["input.percentOff"]
    months = await run(client, COUPON, {"input": {"name": "No months", "duration": "REPEATING", "percentOff": 10}})
    assert [e["field"] for e in months["userErrors"]] == ["input.durationInMonths"]
    variables = {"input": {"name": "Spring", "duration": "FOREVER", "percentOff": 25, "idempotencyKey": "cp-1"}}
    percent = await run(client, COUPON, variables, role=Role.FINANCE)
    coupon = percent["coupon"]
    assert coupon["percentOff"] == 25 and coupon["duration"] == "FOREVER" and coupon["valid"] is True
    assert coupon["stripeCouponId"] in emulator.state.collection("coupon")
    emulator.clear_requests()
    assert await run(client, COUPON, variables, role=Role.FINANCE) == percent
    assert writes(emulator) == []
    amount = (
        await run(
            client,
            COUPON,
            {"input": {"name": "Ten off", "duration": "REPEATING", "durationInMonths": 3, "amountOff": usd("10.00")}},
        )
    )["coupon"]
    assert amount["amountOff"] == {"minorUnits": 1000, "currency": "usd"} and amount["durationInMonths"] == 3
    promo = (await run(client, PROMO, {"input": {"coupon": coupon["stripeCouponId"], "code": "SPRING25"}}))[
        "promotionCode"
    ]
    assert (
        promo["code"] == "SPRING25" and promo["active"] is True and promo["stripePromotionCodeId"].startswith("promo_")
    )
    unknown = await run(client, PROMO, {"input": {"coupon": "NOPE", "code": "X1"}})
    assert [(e["field"], e["code"]) for e in unknown["userErrors"]] == [("input.coupon", "resource_missing")]
    assert await audit_count(client, "createCoupon") == 2 and await audit_count(client, "createPromotionCode") == 1

    customer = await add_customer(client)
    no_subscription = await run(client, APPLY, {"input": {"customer": customer, "coupon": coupon["stripeCouponId"]}})
    assert [e["field"] for e in no_subscription["userErrors"]] == ["input.customer"]
    price = await add_price(client)
    subscription = (await run(client, CREATE_SUBSCRIPTION, {"input": {"customer": customer, "price": price}}))[
        "subscription"
    ]
    by_code = await run(client, APPLY, {"input": {"subscription": subscription["id"], "promotionCode": "spring25"}})
    assert by_code["userErrors"] == [] and [s["id"] for s in by_code["subscriptions"]] == [subscription["id"]]
    remote = emulator.state.collection("subscription")[subscription["stripeSubscriptionId"]]
    (discount_id,) = remote["discounts"]
    assert emulator.state.collection("discount")[discount_id]["promotion_code"] == promo["stripePromotionCodeId"]
    by_customer = await run(client, APPLY, {"input": {"customer": customer, "coupon": amount["stripeCouponId"]}})
    assert [s["id"] for s in by_customer["subscriptions"]] == [subscription["id"]]
    (discount_id,) = emulator.state.collection("subscription")[subscription["stripeSubscriptionId"]]["discounts"]
    assert emulator.state.collection("discount")[discount_id]["source"]["coupon"] == amount["stripeCouponId"]
    missing = await run(client, APPLY, {"input": {"subscription": subscription["id"], "promotionCode": "NOSUCH"}})
    assert [(e["field"], e["code"]) for e in missing["userErrors"]] == [("input.promotionCode", "NOT_FOUND")]
    assert await audit_count(client, "applyCoupon") == 2
