"""The Stripe emulator, driven by the real stripe SDK over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from tests.stripe_emulator import EmulatorHandle, run_emulator

# The SDK's httpx client posts raw bytes with `data=`, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

WEBHOOK_SECRET = "whsec_test_emulator"
DAY = 86400


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(webhook_secret=WEBHOOK_SECRET) as handle:
        yield handle


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as session:
        yield session


@pytest.fixture
def client(emulator: EmulatorHandle) -> stripe.StripeClient:
    emulator.reset()  # each test starts from an empty account (the clock keeps its offset)
    return stripe.StripeClient("sk_test_emulator", base_addresses={"api": emulator.url}, max_network_retries=0)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_receiver(emulator: EmulatorHandle) -> Iterator[list[tuple[dict[str, str], bytes]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    emulator.configure_webhooks(f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe")
    try:
        yield received
    finally:
        emulator.flush_webhooks(timeout=10)
        emulator.configure_webhooks(None)
        server.shutdown()
        server.server_close()


async def _paying_customer(client: stripe.StripeClient, token: str = "pm_card_visa") -> stripe.Customer:
    return await client.v1.customers.create_async(
        {
            "email": "billing@example.com",
            "payment_method": token,
            "invoice_settings": {"default_payment_method": token},
        }
    )


async def _monthly_price(client: stripe.StripeClient, unit_amount: int = 1000) -> stripe.Price:
    product = await client.v1.products.create_async({"name": "Seats"})
    return await client.v1.prices.create_async(
        {
            "product": product.id,
            "unit_amount": unit_amount,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )


@pytest.mark.asyncio
async def test_customer_crud(client: stripe.StripeClient) -> None:
    created = await client.v1.customers.create_async(
        {
            "email": "ada@example.com",
            "name": "Ada",
            "metadata": {"tier": "gold"},
            "address": {"city": "Paris", "country": "FR"},
        }
    )
    assert isinstance(created, stripe.Customer)
    assert created.id.startswith("cus_") and created.livemode is False
    assert created.balance == 0
    assert created.metadata is not None and created.metadata["tier"] == "gold"
    assert created.address is not None and created.address.city == "Paris"

    updated = await client.v1.customers.update_async(
        created.id, {"name": "Ada L.", "metadata": {"tier": ""}, "phone": "+33 1"}
    )
    assert updated.name == "Ada L." and updated.phone == "+33 1"
    assert updated.metadata is not None and "tier" not in updated.metadata

    fetched = await client.v1.customers.retrieve_async(created.id)
    assert fetched.name == "Ada L."
    listed = await client.v1.customers.list_async({"email": "ada@example.com"})
    assert [c.id for c in listed.data] == [created.id]

    deleted = await client.v1.customers.delete_async(created.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.customers.update_async(created.id, {"name": "x"})
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert missing.value.param == "id"

    events = await client.v1.events.list_async({"types": ["customer.*"], "limit": 10})
    types = {e.type for e in events.data if e.data.object["id"] == created.id}
    assert {"customer.created", "customer.updated", "customer.deleted"} <= types


@pytest.mark.asyncio
async def test_quantity_change_preview_equals_applied_prorations(
    client: stripe.StripeClient, emulator: EmulatorHandle
) -> None:
    customer = await _paying_customer(client)
    price = await _monthly_price(client, 1000)
    sub = await client.v1.subscriptions.create_async(
        {"customer": customer.id, "items": [{"price": price.id, "quantity": 2}], "expand": ["latest_invoice"]}
    )
    assert sub.status == "active"
    item = sub.items.data[0]
    assert item.current_period_end > item.current_period_start
    first = sub.latest_invoice
    assert isinstance(first, stripe.Invoice)
    assert first.status == "paid" and first.amount_paid == 2000
    assert first.parent is not None and first.parent.subscription_details is not None
    assert first.parent.subscription_details.subscription == sub.id

    proration_date = item.current_period_start + 10 * DAY + 123
    preview = await client.v1.invoices.create_preview_async(
        {
            "customer": customer.id,
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item.id, "quantity": 5}],
                "proration_date": proration_date,
            },
        }
    )
    preview_prorations = [
        line.amount
        for line in preview.lines.data
        if line.parent and line.parent.subscription_item_details and line.parent.subscription_item_details.proration
    ]
    assert len(preview_prorations) == 2
    length = item.current_period_end - item.current_period_start
    remaining = item.current_period_end - proration_date
    assert preview_prorations[0] < 0 < preview_prorations[1]
    assert abs(preview_prorations[1] - 5000 * remaining / length) <= 0.5

    updated = await client.v1.subscriptions.update_async(
        sub.id,
        {"items": [{"id": item.id, "quantity": 5}], "proration_date": proration_date},
    )
    assert updated.items.data[0].quantity == 5
    pending = await client.v1.invoice_items.list_async({"customer": customer.id, "pending": True})
    assert sorted(i.amount for i in pending.data) == sorted(preview_prorations)
    assert all(i.proration for i in pending.data)

    # always_invoice bills the prorations at once, with the amounts the preview showed.
    preview2 = await client.v1.invoices.create_preview_async(
        {
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item.id, "quantity": 3}],
                "proration_date": proration_date,
                "proration_behavior": "always_invoice",
            },
        }
    )
    applied = await client.v1.subscriptions.update_async(
        sub.id,
        {
            "items": [{"id": item.id, "quantity": 3}],
            "proration_date": proration_date,
            "proration_behavior": "always_invoice",
            "expand": ["latest_invoice"],
        },
    )
    invoice = applied.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.billing_reason == "subscription_update"
    assert invoice.total == preview2.total
    assert [line.amount for line in invoice.lines.data] == [line.amount for line in preview2.lines.data]
    assert invoice.status == "paid"


@pytest.mark.asyncio
async def test_declines(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async({"email": "decline@example.com"})
    with pytest.raises(stripe.CardError) as declined:
        await client.v1.payment_methods.attach_async("pm_card_chargeDeclined", {"customer": customer.id})
    assert declined.value.code == "card_declined"
    assert declined.value.http_status == 402
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "generic_decline"

    # 4000000000000341 attaches but fails when charged.
    failing = await _paying_customer(client, "pm_card_chargeCustomerFail")
    price = await _monthly_price(client, 1500)
    with pytest.raises(stripe.CardError):
        await client.v1.subscriptions.create_async(
            {"customer": failing.id, "items": [{"price": price.id}], "payment_behavior": "error_if_incomplete"}
        )
    assert (await client.v1.subscriptions.list_async({"customer": failing.id})).data == []

    sub = await client.v1.subscriptions.create_async(
        {"customer": failing.id, "items": [{"price": price.id}], "expand": ["latest_invoice"]}
    )
    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.status == "open" and invoice.attempt_count == 1
    with pytest.raises(stripe.CardError) as retry:
        await client.v1.invoices.pay_async(invoice.id)
    assert retry.value.code == "card_declined"
    after = await client.v1.invoices.retrieve_async(invoice.id)
    assert after.status == "open" and after.attempt_count == 2
    assert after.next_payment_attempt is not None and after.amount_remaining == 1500

    # A working card settles it and activates the subscription.
    pm = await client.v1.payment_methods.attach_async("pm_card_visa", {"customer": failing.id})
    paid = await client.v1.invoices.pay_async(invoice.id, {"payment_method": pm.id})
    assert paid.status == "paid" and paid.amount_paid == 1500 and paid.amount_remaining == 0
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "active"


@pytest.mark.asyncio
async def test_idempotent_replay(client: stripe.StripeClient, emulator: EmulatorHandle) -> None:
    emulator.clear_requests()
    params: stripe.params.CustomerCreateParams = {"email": "once@example.com"}
    first = await client.v1.customers.create_async(params, {"idempotency_key": "key-once-1"})
    second = await client.v1.customers.create_async(params, {"idempotency_key": "key-once-1"})
    assert first.id == second.id
    log = emulator.requests(method="POST", path="/v1/customers")
    assert [entry["idempotent_replayed"] for entry in log] == [False, True]
    assert all(entry["idempotency_key"] == "key-once-1" for entry in log)
    executed = [entry for entry in log if not entry["idempotent_replayed"]]
    assert len(executed) == 1
    found = await client.v1.customers.list_async({"email": "once@example.com"})
    assert len(found.data) == 1

    with pytest.raises(stripe.IdempotencyError):
        await client.v1.customers.create_async({"email": "other@example.com"}, {"idempotency_key": "key-once-1"})

    # The control endpoint shows the same log over HTTP.
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{emulator.url}/_emulator/requests", params={"method": "POST"})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 3


@pytest.mark.asyncio
async def test_parameter_errors_name_the_param(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await client.v1.customers.create_async({"emial": "typo@example.com"})  # type: ignore[arg-type]
    assert unknown.value.code == "parameter_unknown" and unknown.value.param == "emial"

    with pytest.raises(stripe.InvalidRequestError) as nested:
        await client.v1.customers.create_async({"address": {"citty": "Paris"}})  # type: ignore[arg-type]
    assert nested.value.param == "address[citty]"

    product = await client.v1.products.create_async({"name": "Errors"})
    with pytest.raises(stripe.InvalidRequestError) as negative:
        await client.v1.prices.create_async({"product": product.id, "unit_amount": -5, "currency": "usd"})
    assert negative.value.param == "unit_amount"

    with pytest.raises(stripe.InvalidRequestError) as enum:
        await client.v1.prices.create_async(
            {"product": product.id, "unit_amount": 5, "currency": "usd", "recurring": {"interval": "fortnight"}}
        )
    assert enum.value.param == "recurring[interval]"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.customers.balance_transactions.create_async("cus_x", {"amount": 5})  # type: ignore[typeddict-item]
    assert missing.value.code == "parameter_missing" and missing.value.param == "currency"

    with pytest.raises(stripe.InvalidRequestError) as no_such:
        await client.v1.subscriptions.create_async({"customer": "cus_missing", "items": [{"price": "price_missing"}]})
    assert no_such.value.code == "resource_missing" and no_such.value.param == "customer"


@pytest.mark.asyncio
async def test_refunds_never_exceed_what_was_paid(client: stripe.StripeClient) -> None:
    customer = await _paying_customer(client)
    invoice = await client.v1.invoices.create_async({"customer": customer.id})
    await client.v1.invoice_items.create_async(
        {"customer": customer.id, "invoice": invoice.id, "amount": 4000, "currency": "usd", "description": "Setup"}
    )
    paid = await client.v1.invoices.pay_async(invoice.id, {"expand": ["payments"]})
    assert paid.status == "paid" and paid.amount_paid == 4000 and paid.number
    assert paid.hosted_invoice_url and paid.invoice_pdf
    assert paid.payments is not None
    intent_id = paid.payments.data[0].payment.payment_intent
    assert isinstance(intent_id, str)
    intent = await client.v1.payment_intents.retrieve_async(intent_id)
    assert intent.status == "succeeded" and isinstance(intent.latest_charge, str)

    partial = await client.v1.refunds.create_async({"payment_intent": intent.id, "amount": 1500})
    assert partial.status == "succeeded" and partial.amount == 1500
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await client.v1.refunds.create_async({"charge": intent.latest_charge, "amount": 2501})
    assert too_much.value.param == "amount"
    rest = await client.v1.refunds.create_async({"charge": intent.latest_charge})
    assert rest.amount == 2500
    charge = await client.v1.charges.retrieve_async(intent.latest_charge)
    assert charge.amount_refunded == 4000 and charge.refunded is True
    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.refunds.create_async({"charge": charge.id, "amount": 1})
    assert again.value.code == "charge_already_refunded"

    async with httpx.AsyncClient() as http:
        pdf = await http.get(paid.invoice_pdf)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


@pytest.mark.asyncio
async def test_credits_and_coupons_reduce_what_is_charged(client: stripe.StripeClient) -> None:
    customer = await _paying_customer(client)
    credit = await client.v1.customers.balance_transactions.create_async(
        customer.id, {"amount": -500, "currency": "usd", "description": "Goodwill"}
    )
    assert credit.id.startswith("cbtxn_") and credit.ending_balance == -500
    coupon = await client.v1.coupons.create_async({"percent_off": 20, "duration": "once"})
    promo = await client.v1.promotion_codes.create_async(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SAVE20"}
    )
    assert promo.promotion.coupon == coupon.id
    price = await _monthly_price(client, 3000)
    sub = await client.v1.subscriptions.create_async(
        {
            "customer": customer.id,
            "items": [{"price": price.id}],
            "discounts": [{"promotion_code": promo.id}],
            "expand": ["latest_invoice"],
        }
    )
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.subtotal == 3000 and invoice.total == 2400
    assert invoice.starting_balance == -500 and invoice.ending_balance == 0
    assert invoice.amount_due == 1900 and invoice.amount_paid == 1900
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == 0
    assert (await client.v1.coupons.retrieve_async(coupon.id)).times_redeemed == 1
    # A `once` coupon is used up by the first invoice.
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).discounts == []


def test_clock_advance_renews_and_posts_signed_webhooks(
    client: stripe.StripeClient,
    emulator: EmulatorHandle,
    http: httpx.Client,
    webhook_receiver: list[tuple[dict[str, str], bytes]],
) -> None:
    customer = client.v1.customers.create(
        {"payment_method": "pm_card_visa", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    product = client.v1.products.create({"name": "Renewing"})
    price = client.v1.prices.create(
        {"product": product.id, "unit_amount": 1200, "currency": "usd", "recurring": {"interval": "month"}}
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    first_end = sub.items.data[0].current_period_end

    response = http.post(f"{emulator.url}/_emulator/clock/advance", json={"seconds": first_end - emulator.now() + 60})
    assert response.status_code == 200
    renewed = client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert renewed.items.data[0].current_period_start == first_end
    invoice = renewed.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.billing_reason == "subscription_cycle" and invoice.status == "paid"
    assert invoice.lines.data[0].period.start == first_end

    assert http.post(f"{emulator.url}/_emulator/webhooks/flush").json()["done"] is True
    events = []
    for headers, body in webhook_receiver:
        event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], WEBHOOK_SECRET)
        events.append(event)
    paid = [e for e in events if e.type == "invoice.paid" and e.data.object["id"] == invoice.id]
    assert len(paid) == 1
    assert any(e.type == "customer.subscription.updated" for e in events)
    with pytest.raises(stripe.SignatureVerificationError):
        headers, body = webhook_receiver[0]
        stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], "whsec_wrong")


def test_cancel_at_period_end_and_trial_conversion(client: stripe.StripeClient, emulator: EmulatorHandle) -> None:
    customer = client.v1.customers.create(
        {"payment_method": "pm_card_visa", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    product = client.v1.products.create({"name": "Trials"})
    price = client.v1.prices.create(
        {"product": product.id, "unit_amount": 900, "currency": "usd", "recurring": {"interval": "month"}}
    )
    trial = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 7}
    )
    assert trial.status == "trialing" and trial.trial_end is not None
    leaving = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    leaving = client.v1.subscriptions.update(leaving.id, {"cancel_at_period_end": True})
    assert leaving.cancel_at == leaving.items.data[0].current_period_end

    emulator.advance_clock(8 * DAY)
    converted = client.v1.subscriptions.retrieve(trial.id)
    assert converted.status == "active"
    assert converted.items.data[0].current_period_start == trial.trial_end
    emulator.advance_clock(31 * DAY)
    gone = client.v1.subscriptions.retrieve(leaving.id)
    assert gone.status == "canceled" and gone.ended_at == leaving.cancel_at
    types = [e.type for e in client.v1.events.list({"limit": 100}).data]
    assert "customer.subscription.trial_will_end" in types
    assert "customer.subscription.deleted" in types


@pytest.mark.asyncio
async def test_meter_events_dedup_window_and_billing(client: stripe.StripeClient, emulator: EmulatorHandle) -> None:
    meter = await client.v1.billing.meters.create_async(
        {
            "display_name": "API calls",
            "event_name": "api_call_test",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    assert meter.id.startswith("mtr_") and meter.status == "active"
    customer = await _paying_customer(client)
    product = await client.v1.products.create_async({"name": "Calls"})
    price = await client.v1.prices.create_async(
        {
            "product": product.id,
            "unit_amount": 2,
            "currency": "usd",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    sub = await client.v1.subscriptions.create_async({"customer": customer.id, "items": [{"price": price.id}]})
    now = emulator.now()
    payload = {"stripe_customer_id": customer.id, "value": "40"}
    event = await client.v1.billing.meter_events.create_async(
        {"event_name": "api_call_test", "payload": payload, "identifier": "usage-1", "timestamp": now}
    )
    assert event.identifier == "usage-1"
    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        await client.v1.billing.meter_events.create_async(
            {"event_name": "api_call_test", "payload": payload, "identifier": "usage-1"}
        )
    assert duplicate.value.param == "identifier"
    for stale in (now - 36 * DAY, now + 600):
        with pytest.raises(stripe.InvalidRequestError) as window:
            await client.v1.billing.meter_events.create_async(
                {"event_name": "api_call_test", "payload": payload, "timestamp": stale}
            )
        assert window.value.param == "timestamp"
    await client.v1.billing.meter_events.create_async(
        {"event_name": "api_call_test", "payload": {**payload, "value": "2"}, "identifier": "usage-2"}
    )
    async with httpx.AsyncClient() as http:
        received = (
            await http.get(f"{emulator.url}/_emulator/meter_events", params={"event_name": "api_call_test"})
        ).json()["data"]
    assert [e["identifier"] for e in received] == ["usage-1", "usage-2"]

    summaries = await client.v1.billing.meters.event_summaries.list_async(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert summaries.data[0].aggregated_value == 42

    emulator.advance_clock(sub.items.data[0].current_period_end - emulator.now() + 1)
    invoices = await client.v1.invoices.list_async({"subscription": sub.id})
    cycle = next(i for i in invoices.data if i.billing_reason == "subscription_cycle")
    assert cycle.total == 84 and cycle.lines.data[0].quantity == 42


def test_pause_collection_and_automatic_retries(client: stripe.StripeClient, emulator: EmulatorHandle) -> None:
    product = client.v1.products.create(
        {
            "name": "Dunning",
            "default_price_data": {"currency": "usd", "unit_amount": 700, "recurring": {"interval": "month"}},
        }
    )
    assert isinstance(product.default_price, str)
    paused_customer = client.v1.customers.create(
        {"payment_method": "pm_card_visa", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    paused = client.v1.subscriptions.create(
        {"customer": paused_customer.id, "items": [{"price": product.default_price}]}
    )
    paused = client.v1.subscriptions.update(paused.id, {"pause_collection": {"behavior": "void"}})
    assert paused.pause_collection is not None and paused.status == "active"

    failing = client.v1.customers.create(
        {
            "payment_method": "pm_card_chargeCustomerFail",
            "invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"},
        }
    )
    trial = client.v1.subscriptions.create(
        {"customer": failing.id, "items": [{"price": product.default_price}], "trial_period_days": 1}
    )
    emulator.advance_clock(2 * DAY)
    past_due = client.v1.subscriptions.retrieve(trial.id, {"expand": ["latest_invoice"]})
    assert past_due.status == "past_due"
    assert isinstance(past_due.latest_invoice, stripe.Invoice)
    assert past_due.latest_invoice.next_payment_attempt is not None

    emulator.advance_clock(35 * DAY)
    first_invoice = client.v1.invoices.retrieve(past_due.latest_invoice.id)
    assert first_invoice.attempt_count == 4 and first_invoice.next_payment_attempt is None
    assert client.v1.subscriptions.retrieve(trial.id).status == "unpaid"
    voided = client.v1.invoices.list({"subscription": paused.id, "status": "void"})
    assert [i.billing_reason for i in voided.data] == ["subscription_cycle"]
    found = client.v1.customers.search({"query": "email:null AND -name:'x'"})
    assert isinstance(found, stripe.SearchResultObject)


def test_emulator_control_endpoints(emulator: EmulatorHandle, http: httpx.Client) -> None:
    assert http.get(f"{emulator.url}/_emulator/health").status_code == 200
    before = http.get(f"{emulator.url}/_emulator/clock").json()["now"]
    after = http.post(f"{emulator.url}/_emulator/clock/advance", data={"seconds": "3600"}).json()
    assert after["now"] >= before + 3600
    unauthenticated = http.get(f"{emulator.url}/v1/customers")
    assert unauthenticated.status_code == 401
    body = json.loads(unauthenticated.content)
    assert body["error"]["type"] == "invalid_request_error"
