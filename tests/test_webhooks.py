"""The Stripe webhook inbox: POST /webhooks/stripe served over real HTTP to the emulator's signed
deliveries, processing by a burst arq worker, the webhookEvents log and reprocessWebhookEvent."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func as sql_func
from sqlalchemy import select

from api.auth.models import SecurityEvent, SecurityEventKind
from api.auth.roles import Role
from api.customer.models import Customer
from api.invoice.models import Invoice, InvoiceStatus, Payment, PaymentStatus, Refund
from api.subscription.models import Subscription, SubscriptionItem
from api.webhook.models import WebhookEvent, WebhookStatus
from api.webhook.service import RetryPolicy, process_event
from tests.conftest import GraphQLClient
from tests.factories import Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator, sign_payload
from tests.stripe_support import (
    IGNORE_HTTPX_DATA_WARNING,
    audit_count,
    declined_invoice,
    deliver_and_process,
    drain,
    run,
    sdk,
    serving_webhooks,
    stripe_app,
)

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

SECRET = "whsec_webhook_tests"
EVENTS = """query($filter: WebhookEventFilterInput) { webhookEvents(filter: $filter, first: 100) {
  totalCount nodes { id stripeEventId type status attempts lastError customerId receivedAt processedAt
  nextAttemptAt payload } } }"""
REPROCESS = """mutation($input: ReprocessWebhookEventInput!) { reprocessWebhookEvent(input: $input) {
  webhookEvent { id status attempts lastError processedAt } userErrors { field message code } } }"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message code } } }"""
CREATE_SUBSCRIPTION = """mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) {
  subscription { id stripeSubscriptionId items { quantity stripeSubscriptionItemId } }
  userErrors { field message code } } }"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(webhook_secret=SECRET) as handle:
        yield handle


@pytest.fixture
async def client(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str], emulator: EmulatorHandle
) -> AsyncIterator[GraphQLClient]:
    """The app on a fresh database, also served over real HTTP (the emulator posts its signed
    webhooks there); the queue is drained afterwards so no job outlives the test."""
    emulator.reset()
    client = stripe_app(
        app_factory,
        make_database(),
        emulator.url,
        stripe_webhook_secret=SECRET,
        webhook_max_attempts=2,
        webhook_retry_base_seconds=0.05,
    )
    async with serving_webhooks(client, emulator, SECRET):
        yield client


def event(event_type: str, obj: dict[str, Any], created: int | None = None, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created or int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        },
        default=str,  # Decimal fields of an SDK object
    )


async def post_signed(client: GraphQLClient, body: str, *, secret: str = SECRET, at: int | None = None) -> Any:
    signature = sign_payload(body, secret, at or int(time.time()))
    return await client.http.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


async def stored_events(client: GraphQLClient, event_type: str | None = None) -> list[WebhookEvent]:
    async with client.runtime.session_factory() as session:
        stmt = select(WebhookEvent).order_by(WebhookEvent.received_at)
        if event_type:
            stmt = stmt.where(WebhookEvent.type == event_type)
        return list((await session.execute(stmt)).scalars())


async def add_stripe_customer(client: GraphQLClient, stripe_id: str, name: str = "Acme") -> Customer:
    async with client.runtime.session_factory() as session, session.begin():
        return await Builder(session).customer(name, stripe_customer_id=stripe_id)


def customer_object(stripe_id: str, name: str, email: str = "ap@acme.test") -> dict[str, Any]:
    return {
        "id": stripe_id,
        "object": "customer",
        "name": name,
        "email": email,
        "phone": None,
        "address": None,
        "currency": "usd",
        "metadata": {},
        "invoice_settings": {"default_payment_method": None},
    }


# --- tests ---------------------------------------------------------------------------------------------


async def test_a_subscription_changed_in_stripe_shows_up_locally(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    async with client.runtime.session_factory() as session, session.begin():
        price = await Builder(session).product_and_price(1000, "usd", nickname="Seats")
    customer = await run(client, CREATE_CUSTOMER, {"input": {"name": "Acme", "paymentMethod": "pm_card_visa"}})
    created = await run(
        client,
        CREATE_SUBSCRIPTION,
        {"input": {"customer": customer["customer"]["id"], "price": str(price.id), "quantity": 2}},
    )
    assert created["userErrors"] == []
    stripe_sub = created["subscription"]["stripeSubscriptionId"]
    item = created["subscription"]["items"][0]["stripeSubscriptionItemId"]
    await deliver_and_process(client, emulator)
    # a change made in Stripe itself (dashboard, another system) …
    await sdk(emulator).v1.subscriptions.update_async(
        stripe_sub, {"items": [{"id": item, "quantity": 7}], "proration_behavior": "none"}
    )
    await deliver_and_process(client, emulator)
    # … arrives signed, is stored, processed, and mirrored
    async with client.runtime.session_factory() as session:
        quantity = (
            await session.execute(
                select(SubscriptionItem.quantity).where(SubscriptionItem.stripe_subscription_item_id == item)
            )
        ).scalar_one()
    assert quantity == 7
    body = await client.query(EVENTS, {"filter": {"type": ["customer.subscription.updated"]}})
    nodes = body["data"]["webhookEvents"]["nodes"]  # type: ignore[index]
    (updated,) = [n for n in nodes if n["payload"]["data"]["object"]["items"]["data"][0]["quantity"] == 7]
    assert updated["status"] == "PROCESSED" and updated["attempts"] == 1 and updated["processedAt"]
    assert updated["payload"]["data"]["object"]["id"] == stripe_sub
    assert updated["customerId"] == customer["customer"]["id"]
    # every delivery is logged; types Ledgerline does not handle are IGNORED, nothing failed
    events = await stored_events(client)
    assert {e.status for e in events} <= {WebhookStatus.PROCESSED, WebhookStatus.IGNORED}
    assert any(e.type == "payment_method.attached" and e.status is WebhookStatus.IGNORED for e in events)
    assert len({e.stripe_event_id for e in events}) == len(events)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature at all
        {"Stripe-Signature": "t=1,v1=abc"},  # garbage
        {"Stripe-Signature": "wrong-secret"},
        {"Stripe-Signature": "stale"},
    ],
    ids=["missing", "garbage", "wrong-secret", "stale"],
)
async def test_a_bad_signature_is_refused_recorded_and_nothing_is_stored(
    client: GraphQLClient, headers: dict[str, str]
) -> None:
    body = event("customer.updated", customer_object("cus_forged", "Forged"))
    if headers.get("Stripe-Signature") == "wrong-secret":
        headers = {"Stripe-Signature": sign_payload(body, "whsec_not_ours", int(time.time()))}
    elif headers.get("Stripe-Signature") == "stale":
        headers = {"Stripe-Signature": sign_payload(body, SECRET, int(time.time()) - 301)}
    response = await client.http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert await stored_events(client) == []
    async with client.runtime.session_factory() as session:
        (recorded,) = (await session.execute(select(SecurityEvent))).scalars()
    assert recorded.kind is SecurityEventKind.WEBHOOK_SIGNATURE_INVALID
    assert recorded.attempted == "POST /webhooks/stripe" and recorded.detail
    # just inside the 300 s tolerance is accepted
    ok = await post_signed(client, body, at=int(time.time()) - 290)
    assert ok.status_code == 200


async def test_a_signature_from_a_rotated_secret_is_accepted_when_one_v1_matches(client: GraphQLClient) -> None:
    body = event("ping.unknown", {"object": "thing", "id": "x_1"})
    now = int(time.time())
    good = sign_payload(body, SECRET, now).split(",")[1]
    old = sign_payload(body, "whsec_old", now).split(",")[1]
    response = await client.http.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": f"t={now},{old},{good}"}
    )
    assert response.status_code == 200
    await drain(client)
    (stored,) = await stored_events(client)
    assert stored.status is WebhookStatus.IGNORED and stored.attempts == 0


async def test_a_duplicate_delivery_is_stored_once_and_processed_once(client: GraphQLClient) -> None:
    customer = await add_stripe_customer(client, "cus_dup", "Before")
    body = event("customer.updated", customer_object("cus_dup", "After"))
    first = await post_signed(client, body)
    second = await post_signed(client, body)
    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    worker = await drain(client)
    assert worker.jobs_complete == 1  # the second delivery queued nothing new
    third = await post_signed(client, body)  # Stripe retrying after we already processed it
    assert third.json()["duplicate"] is True
    await drain(client)
    (stored,) = await stored_events(client)
    assert stored.status is WebhookStatus.PROCESSED and stored.attempts == 1
    assert stored.customer_id == customer.id
    async with client.runtime.session_factory() as session:
        assert (await session.get(Customer, customer.id)).name == "After"  # type: ignore[union-attr]


async def test_an_older_event_arriving_after_a_newer_one_changes_nothing(client: GraphQLClient) -> None:
    customer = await add_stripe_customer(client, "cus_order", "Original")
    now = int(time.time())
    newer = event("customer.updated", customer_object("cus_order", "Newer", "new@acme.test"), created=now)
    older = event("customer.updated", customer_object("cus_order", "Older", "old@acme.test"), created=now - 60)
    assert (await post_signed(client, newer)).status_code == 200
    await drain(client)
    assert (await post_signed(client, older)).status_code == 200
    await drain(client)
    async with client.runtime.session_factory() as session:
        stored = await session.get(Customer, customer.id)
    assert stored is not None and stored.name == "Newer" and stored.email == "new@acme.test"
    assert stored.stripe_updated_at == datetime.fromtimestamp(now, UTC)
    late = [e for e in await stored_events(client) if e.payload["created"] == now - 60]
    assert late[0].status is WebhookStatus.PROCESSED and "older" in (late[0].last_error or "")


async def test_a_failing_event_keeps_its_error_is_retried_then_succeeds_on_reprocess(client: GraphQLClient) -> None:
    """A refund of a payment Ledgerline does not know yet fails, is retried with backoff until
    out of attempts (FAILED); once the payment is there, reprocessWebhookEvent applies it."""
    refund = {
        "id": "re_late",
        "object": "refund",
        "amount": 1500,
        "currency": "usd",
        "charge": "ch_late",
        "payment_intent": "pi_late",
        "reason": "requested_by_customer",
        "status": "succeeded",
        "created": int(time.time()),
        "metadata": {},
    }
    assert (await post_signed(client, event("refund.created", refund))).status_code == 200
    await drain(client)
    (failed,) = await stored_events(client)
    assert failed.status is WebhookStatus.FAILED and failed.attempts == 2  # webhook_max_attempts
    assert "NotYetKnown" in (failed.last_error or "") and failed.next_attempt_at is None
    body = await client.query(EVENTS, {"filter": {"status": ["FAILED"]}}, role=Role.OPERATIONS)
    (node,) = body["data"]["webhookEvents"]["nodes"]  # type: ignore[index]
    assert node["attempts"] == 2 and "not in Ledgerline yet" in node["lastError"]
    # the payment lands (e.g. its invoice.paid event was processed)
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        customer = await b.customer("Late", stripe_customer_id="cus_late")
        invoice = await b.invoice(customer, amount=4000, stripe_invoice_id="in_late")
        session.add(
            Payment(
                invoice_id=invoice.id,
                customer_id=customer.id,
                amount=4000,
                currency="usd",
                status=PaymentStatus.SUCCEEDED,
                stripe_payment_intent_id="pi_late",
            )
        )
    payload = await run(client, REPROCESS, {"input": {"id": node["id"]}}, role=Role.FINANCE)
    assert payload["userErrors"] == []
    assert payload["webhookEvent"]["status"] == "PROCESSED" and payload["webhookEvent"]["attempts"] == 3
    assert payload["webhookEvent"]["lastError"] is None
    async with client.runtime.session_factory() as session:
        (row,) = (await session.execute(select(Refund))).scalars()
        refreshed = await session.get(Invoice, invoice.id)
    assert row.amount == 1500 and row.stripe_refund_id == "re_late" and row.invoice_id == invoice.id
    assert refreshed is not None and refreshed.amount_refunded == 1500
    assert await audit_count(client, "reprocessWebhookEvent") == 1
    # reprocessing again is harmless: still one refund, same amount
    again = await run(client, REPROCESS, {"input": {"id": node["id"]}}, role=Role.OWNER)
    assert again["webhookEvent"]["status"] == "PROCESSED"
    async with client.runtime.session_factory() as session:
        assert (await session.execute(select(sql_func.count()).select_from(Refund))).scalar_one() == 1
        assert (await session.get(Invoice, invoice.id)).amount_refunded == 1500  # type: ignore[union-attr]


async def test_an_event_failing_for_good_raises_one_webhook_failure_alert(client: GraphQLClient) -> None:
    """No alert while retries remain; one WEBHOOK_FAILURE alert once the last attempt failed, still
    one after a reprocess that fails again; only roles that read the webhook log see it."""
    refund = {
        "id": "re_lost",
        "object": "refund",
        "amount": 700,
        "currency": "usd",
        "charge": "ch_lost",
        "payment_intent": "pi_lost",
        "status": "succeeded",
        "created": int(time.time()),
        "metadata": {},
    }
    alerts = "{ alerts(filter: {kind: [WEBHOOK_FAILURE]}) { nodes { kind severity message details } } }"
    assert (await post_signed(client, event("refund.created", refund))).status_code == 200
    (stored,) = await stored_events(client)
    policy = RetryPolicy(max_attempts=2)
    async with client.runtime.session_factory() as session, session.begin():
        first = await process_event(session, stored.id, policy)
    assert first is not None and first.retry_in is not None  # a retry is due: no alert yet
    assert (await client.query(alerts, role=Role.OPERATIONS))["data"] == {"alerts": {"nodes": []}}
    async with client.runtime.session_factory() as session, session.begin():
        last = await process_event(session, stored.id, policy)
    assert last is not None and last.event.status is WebhookStatus.FAILED and last.retry_in is None
    body = await client.query(alerts, role=Role.OPERATIONS)
    (alert,) = body["data"]["alerts"]["nodes"]  # type: ignore[index]
    assert alert["severity"] == "CRITICAL" and "refund.created" in alert["message"]
    assert alert["details"]["attempts"] == 2 and "NotYetKnown" in alert["details"]["last_error"]
    # reprocessing fails again: still one alert
    payload = await run(client, REPROCESS, {"input": {"id": str(stored.id)}}, role=Role.OPERATIONS)
    assert payload["webhookEvent"]["status"] == "FAILED"
    assert len((await client.query(alerts, role=Role.OWNER))["data"]["alerts"]["nodes"]) == 1  # type: ignore[index]
    # support does not read the webhook log, so does not see its failures
    assert (await client.query(alerts, role=Role.SUPPORT))["data"] == {"alerts": {"nodes": []}}


async def test_webhook_log_permissions_filters_and_raw_payload(client: GraphQLClient) -> None:
    customer = await add_stripe_customer(client, "cus_perm", "Perm")
    body = event("customer.updated", customer_object("cus_perm", "Perm Inc"))
    await post_signed(client, body)
    await post_signed(client, event("ping.unknown", {"object": "thing", "id": "x_2"}))
    await drain(client)
    for role in (Role.SUPPORT, Role.ANALYST):
        denied = await client.query(EVENTS, role=role)
        assert denied["data"]["webhookEvents"] is None  # type: ignore[index]
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]
    finance = await client.query(EVENTS, role=Role.FINANCE)
    nodes = finance["data"]["webhookEvents"]["nodes"]  # type: ignore[index]
    assert len(nodes) == 2
    by_type = {n["type"]: n for n in nodes}
    assert by_type["customer.updated"]["payload"] == json.loads(body)  # the raw event, as received
    assert by_type["ping.unknown"]["status"] == "IGNORED"
    customer_gid = by_type["customer.updated"]["customerId"]
    filtered = await client.query(EVENTS, {"filter": {"customer": customer_gid}}, role=Role.FINANCE)
    assert [n["type"] for n in filtered["data"]["webhookEvents"]["nodes"]] == ["customer.updated"]  # type: ignore[index]
    wildcard = await client.query(EVENTS, {"filter": {"type": ["customer.*"], "status": ["PROCESSED"]}})
    assert wildcard["data"]["webhookEvents"]["totalCount"] == 1  # type: ignore[index]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    empty = await client.query(EVENTS, {"filter": {"from": future}})
    assert empty["data"]["webhookEvents"]["totalCount"] == 0  # type: ignore[index]
    # support may not reprocess: FORBIDDEN, nothing run, nothing audited
    refused = await client.query(REPROCESS, {"input": {"id": nodes[0]["id"]}}, role=Role.SUPPORT)
    assert refused["data"]["reprocessWebhookEvent"] is None  # type: ignore[index]
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]
    assert await audit_count(client, "reprocessWebhookEvent") == 0
    assert customer.id


async def test_invoice_payment_failed_then_paid_then_refunded_updates_the_local_invoice(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    created = await run(
        client, CREATE_CUSTOMER, {"input": {"name": "Shaky", "paymentMethod": "pm_card_chargeCustomerFail"}}
    )
    stripe_customer = created["customer"]["stripeCustomerId"]
    s = sdk(emulator).v1
    invoice_id = await declined_invoice(client, emulator, stripe_customer)
    async with client.runtime.session_factory() as session:
        local = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))).scalar_one()
        (failed_payment,) = (await session.execute(select(Payment).where(Payment.invoice_id == local.id))).scalars()
    assert local.status is InvoiceStatus.OPEN and local.attempt_count == 1 and local.amount_remaining == 4200
    assert local.number and local.hosted_invoice_url and local.finalized_at
    assert failed_payment.status is PaymentStatus.FAILED
    failed_events = await stored_events(client, "invoice.payment_failed")
    assert [e.status for e in failed_events] == [WebhookStatus.PROCESSED]
    # the customer fixes the card; the payment is retried and succeeds
    card = await s.payment_methods.attach_async("pm_card_visa", {"customer": stripe_customer})
    assert card.id is not None
    await s.customers.update_async(stripe_customer, {"invoice_settings": {"default_payment_method": card.id}})
    paid = await s.invoices.pay_async(invoice_id)
    assert paid.status == "paid"
    await deliver_and_process(client, emulator)
    async with client.runtime.session_factory() as session:
        local = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))).scalar_one()
        payments = list((await session.execute(select(Payment).where(Payment.invoice_id == local.id))).scalars())
    assert local.status is InvoiceStatus.PAID and local.amount_paid == 4200 and local.paid_at is not None
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED] and payments[0].amount == 4200
    # a partial refund made in Stripe
    assert payments[0].stripe_payment_intent_id is not None
    await s.refunds.create_async({"payment_intent": payments[0].stripe_payment_intent_id, "amount": 1000})
    await deliver_and_process(client, emulator)
    async with client.runtime.session_factory() as session:
        local = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))).scalar_one()
        refunds = list((await session.execute(select(Refund))).scalars())
    assert local.amount_refunded == 1000 and [r.amount for r in refunds] == [1000]
    # a stale invoice.payment_failed delivered again (Stripe's retry) leaves the paid invoice alone
    (failed_event,) = await stored_events(client, "invoice.payment_failed")
    payload = dict(failed_event.payload)
    payload["id"] = "evt_redelivered_failure"
    await post_signed(client, json.dumps(payload))
    await drain(client)
    async with client.runtime.session_factory() as session:
        local = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))).scalar_one()
    assert local.status is InvoiceStatus.PAID and local.amount_paid == 4200


PAY_INVOICE = """mutation($input: InvoiceActionInput!) { payInvoice(input: $input) {
  invoice { status payments { status } } userErrors { field message code } } }"""


async def test_a_payment_the_inbox_saw_fail_then_paid_by_pay_invoice_stays_one_row(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    """The webhook inbox and payInvoice write payments through the same mirror: matched on the
    PaymentIntent, the failed attempt and the successful retry are one Payment, whoever writes."""
    created = await run(
        client, CREATE_CUSTOMER, {"input": {"name": "Shaky", "paymentMethod": "pm_card_chargeCustomerFail"}}
    )
    stripe_customer = created["customer"]["stripeCustomerId"]
    s = sdk(emulator).v1
    invoice_id = await declined_invoice(client, emulator, stripe_customer)
    async with client.runtime.session_factory() as session:
        local = (await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))).scalar_one()
        (failed,) = (await session.execute(select(Payment).where(Payment.invoice_id == local.id))).scalars()
    assert failed.status is PaymentStatus.FAILED and failed.stripe_payment_intent_id is not None
    card = await s.payment_methods.attach_async("pm_card_visa", {"customer": stripe_customer})
    assert card.id is not None
    await s.customers.update_async(stripe_customer, {"invoice_settings": {"default_payment_method": card.id}})
    paid = await run(client, PAY_INVOICE, {"input": {"invoice": str(local.id)}})
    assert paid["userErrors"] == [] and paid["invoice"]["status"] == "PAID", paid
    assert paid["invoice"]["payments"] == [{"status": "SUCCEEDED"}]
    await deliver_and_process(client, emulator)
    async with client.runtime.session_factory() as session:
        payments = list((await session.execute(select(Payment).where(Payment.invoice_id == local.id))).scalars())
    assert [(p.id, p.status) for p in payments] == [(failed.id, PaymentStatus.SUCCEEDED)]
    assert payments[0].amount == 4200 and payments[0].failure_code is None


async def test_subscription_events_out_of_order_keep_the_newest_state(
    client: GraphQLClient, emulator: EmulatorHandle
) -> None:
    async with client.runtime.session_factory() as session, session.begin():
        price = await Builder(session).product_and_price(1000, "usd", nickname="Seats")
    customer = await run(client, CREATE_CUSTOMER, {"input": {"name": "Acme", "paymentMethod": "pm_card_visa"}})
    created = await run(
        client,
        CREATE_SUBSCRIPTION,
        {"input": {"customer": customer["customer"]["id"], "price": str(price.id), "quantity": 2}},
    )
    stripe_sub = created["subscription"]["stripeSubscriptionId"]
    item = created["subscription"]["items"][0]["stripeSubscriptionItemId"]
    await deliver_and_process(client, emulator)
    emulator.advance_clock(120)
    remote = await sdk(emulator).v1.subscriptions.update_async(
        stripe_sub, {"items": [{"id": item, "quantity": 9}], "proration_behavior": "none"}
    )
    await deliver_and_process(client, emulator)
    # an older snapshot (quantity 3, a minute before) delivered late
    stale = remote.to_dict()
    stale["items"]["data"][0]["quantity"] = 3
    await post_signed(client, event("customer.subscription.updated", stale, created=emulator.now() - 60))
    await drain(client)
    async with client.runtime.session_factory() as session:
        quantity = (
            await session.execute(
                select(SubscriptionItem.quantity).where(SubscriptionItem.stripe_subscription_item_id == item)
            )
        ).scalar_one()
        sub = (
            await session.execute(select(Subscription).where(Subscription.stripe_subscription_id == stripe_sub))
        ).scalar_one()
    assert quantity == 9
    assert sub.stripe_updated_at is not None and sub.stripe_updated_at >= datetime.fromtimestamp(
        emulator.now() - 5, UTC
    )


async def test_customer_events_create_update_only_what_changed_and_close(client: GraphQLClient) -> None:
    now = int(time.time())
    created = event("customer.created", customer_object("cus_direct", "Direct Co", "ap@direct.test"), created=now)
    await post_signed(client, created)
    await drain(client)
    async with client.runtime.session_factory() as session:
        local = (
            await session.execute(select(Customer).where(Customer.stripe_customer_id == "cus_direct"))
        ).scalar_one()
    assert local.name == "Direct Co" and local.email == "ap@direct.test"  # made in Stripe: mirrored here
    # a rename: previous_attributes names only `name`; the email in the snapshot is not applied
    renamed = json.loads(event("customer.updated", customer_object("cus_direct", "Direct Inc", "x@y.test"), now + 1))
    renamed["data"]["previous_attributes"] = {"name": "Direct Co"}
    await post_signed(client, json.dumps(renamed))
    await post_signed(client, event("customer.deleted", customer_object("cus_direct", "Direct Inc"), created=now + 2))
    await drain(client)
    async with client.runtime.session_factory() as session:
        local = (
            await session.execute(select(Customer).where(Customer.stripe_customer_id == "cus_direct"))
        ).scalar_one()
    assert local.name == "Direct Inc" and local.email == "ap@direct.test"
    assert local.status.value == "CANCELED"
    assert {e.status for e in await stored_events(client)} == {WebhookStatus.PROCESSED}
