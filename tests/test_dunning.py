"""Dunning end to end: a declined card in the Stripe emulator → its signed webhook → a case
opens → the emulator's clock and the worker's clock move together → the real arq job runs the
steps (payment retries through Stripe, emails to a real SMTP server on loopback) → the customer
is suspended; the recovery paths; duplicate deliveries; the staff actions and the policy."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import stripe
from arq import create_pool, func
from arq.connections import RedisSettings
from sqlalchemy import func as sql_func
from sqlalchemy import select, update

from api.auth.roles import Role
from api.cli import _start_smtp_sink
from api.dunning.models import DunningCase, DunningStep
from api.mail.models import EmailStatus, OutboundEmail
from api.mail.sink import SmtpSink
from api.settings import Settings, get_settings
from api.subscription.models import Subscription, SubscriptionStatus
from api.webhook.models import WebhookEvent
from tests.conftest import GraphQLClient
from tests.factories import Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import (
    IGNORE_HTTPX_DATA_WARNING,
    audit_count,
    declined_invoice,
    deliver_and_process,
    run,
    run_worker,
    sdk,
    serving_webhooks,
    stripe_app,
)
from tests.test_webhooks import post_signed
from workers.dunning import run_dunning
from workers.webhooks import process_webhook_event

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

SECRET = "whsec_dunning_tests"
DAY = 86400
CASES = """query($filter: DunningCaseFilterInput) { dunningCases(filter: $filter, first: 50) { totalCount nodes {
  id status tier openedAt pausedAt closedAt closeReason invoice { number status } customer { name status }
  steps { position day manual actions scheduledAt executedAt outcome error results { action outcome error } }
  emails { to subject template status sentAt } } } }"""
CREATE_CUSTOMER = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stripeCustomerId } userErrors { field message code } } }"""
UPDATE_CUSTOMER = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
  customer { id } userErrors { field message code } } }"""
CREATE_SUBSCRIPTION = """mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) {
  subscription { id stripeSubscriptionId } userErrors { field message code } } }"""
CUSTOMER = """query($id: ID!) { customer(id: $id) { status } }"""
SUBSCRIPTION = """query($id: ID!) { subscription(id: $id) { status } }"""
ALERTS = """query { alerts(filter: {kind: [PAYMENT_FAILED, TRIAL_ENDING]}) { nodes { kind message } } }"""
CASE_FIELDS = (
    "dunningCase { id status pausedAt closeReason steps { scheduledAt outcome } } userErrors { field message code }"
)


def case_mutation(name: str, input_type: str = "DunningCaseInput") -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {CASE_FIELDS} }} }}"


PAUSE = case_mutation("pauseDunning")
RESUME = case_mutation("resumeDunning")
CLOSE = case_mutation("closeDunningCase", "CloseDunningCaseInput")
RETRY = """mutation($input: DunningCaseInput!) { retryDunningNow(input: $input) {
  dunningCase { status } step { manual actions outcome error results { action outcome error } }
  userErrors { field message code } } }"""
POLICIES = "query { dunningPolicies { tier isDefault updatedBy steps { day actions } } }"
UPDATE_POLICY = """mutation($input: UpdateDunningPolicyInput!) { updateDunningPolicy(input: $input) {
  policy { tier isDefault updatedBy steps { day actions } } userErrors { field message code } } }"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(webhook_secret=SECRET) as handle:
        yield handle


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback: what it received is what a customer would get."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
async def client(
    app_factory: Callable[..., GraphQLClient],
    make_database: Callable[[], str],
    emulator: EmulatorHandle,
    smtp: SmtpSink,
) -> AsyncIterator[GraphQLClient]:
    emulator.reset()
    smtp.clear()
    client = stripe_app(app_factory, make_database(), emulator.url, stripe_webhook_secret=SECRET, smtp_url=smtp.url)
    async with serving_webhooks(client, emulator, SECRET):
        yield client


def emulator_clock(emulator: EmulatorHandle) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(emulator.now(), UTC)


async def run_dunning_job(client: GraphQLClient, clock: Callable[[], datetime]) -> dict[str, int]:
    """The real arq job, queued and run by a burst worker whose clock is `clock`."""
    assert client.settings.redis_url is not None
    pool = await create_pool(RedisSettings.from_dsn(client.settings.redis_url))
    job = await pool.enqueue_job("run_dunning")
    await pool.aclose()
    assert job is not None
    functions = [func(run_dunning, max_tries=1), func(process_webhook_event, max_tries=50, keep_result=0)]
    worker = await run_worker(client, functions, clock=clock)
    assert worker.jobs_failed == 0
    result: dict[str, int] = await job.result(timeout=5)
    return result


async def cases(client: GraphQLClient, role: Role = Role.OWNER, **flt: Any) -> list[dict[str, Any]]:
    body = await client.query(CASES, {"filter": flt or None}, role=role)
    assert "errors" not in body, body
    return body["data"]["dunningCases"]["nodes"]  # type: ignore[index,no-any-return]


def received(smtp: SmtpSink, to: str) -> list[str]:
    return [m.subject for m in smtp.messages if to in m.recipients]


async def failing_customer(
    client: GraphQLClient, email: str, card: str = "pm_card_chargeCustomerFail"
) -> dict[str, Any]:
    created = await run(client, CREATE_CUSTOMER, {"input": {"name": "Shaky Co", "email": email, "paymentMethod": card}})
    assert created["userErrors"] == [], created
    return created["customer"]  # type: ignore[no-any-return]


async def fix_card(emulator: EmulatorHandle, stripe_customer: str) -> None:
    s = sdk(emulator).v1
    card = await s.payment_methods.attach_async("pm_card_visa", {"customer": stripe_customer})
    assert card.id is not None
    await s.customers.update_async(stripe_customer, {"invoice_settings": {"default_payment_method": card.id}})


async def advance(client: GraphQLClient, emulator: EmulatorHandle, days: float) -> None:
    """Move the emulator's clock (its own renewals and retries happen) and process their webhooks."""
    emulator.advance_clock(int(days * DAY))
    await deliver_and_process(client, emulator)


async def declined_renewal(client: GraphQLClient, emulator: EmulatorHandle, email: str) -> tuple[dict[str, Any], str]:
    """A customer subscribed with a good card; the card starts failing, then the subscription
    renews and its invoice's payment is declined (webhooks processed). The customer and the
    subscription's id."""
    async with client.runtime.session_factory() as session, session.begin():
        price = await Builder(session).product_and_price(1000, "usd", nickname="Seats")
    customer = await failing_customer(client, email, card="pm_card_visa")
    subscribed = await run(client, CREATE_SUBSCRIPTION, {"input": {"customer": customer["id"], "price": str(price.id)}})
    assert subscribed["userErrors"] == []
    await deliver_and_process(client, emulator)
    changed = await run(
        client, UPDATE_CUSTOMER, {"input": {"customer": customer["id"], "paymentMethod": "pm_card_chargeCustomerFail"}}
    )
    assert changed["userErrors"] == []
    remote = await sdk(emulator).v1.subscriptions.retrieve_async(subscribed["subscription"]["stripeSubscriptionId"])
    await advance(client, emulator, (remote.items.data[0].current_period_end - emulator.now() + 60) / DAY)
    return customer, subscribed["subscription"]["id"]


# --- end to end ------------------------------------------------------------------------------------------


async def test_a_declined_renewal_is_dunned_until_the_customer_is_suspended(
    client: GraphQLClient, emulator: EmulatorHandle, smtp: SmtpSink
) -> None:
    customer, _ = await declined_renewal(client, emulator, "ap@shaky.test")
    clock = emulator_clock(emulator)

    (case,) = await cases(client)
    assert case["status"] == "OPEN" and case["tier"] == "KICKSTART"
    assert case["invoice"]["status"] == "OPEN" and case["customer"]["name"] == "Shaky Co"
    assert [(s["day"], s["actions"], s["outcome"]) for s in case["steps"]] == [
        (0, ["EMAIL_PAYMENT_FAILED"], None),
        (3, ["RETRY_PAYMENT", "EMAIL_RETRY_FAILED"], None),
        (7, ["RETRY_PAYMENT", "EMAIL_FINAL_NOTICE"], None),
        (14, ["MARK_UNCOLLECTIBLE", "SUSPEND_CUSTOMER"], None),
    ]
    alerts = (await client.query(ALERTS))["data"]["alerts"]["nodes"]  # type: ignore[index]
    assert [a["kind"] for a in alerts] == ["PAYMENT_FAILED"]

    # day 0: the failed-payment email
    assert (await run_dunning_job(client, clock))["steps"] == 1
    number = case["invoice"]["number"]
    assert received(smtp, "ap@shaky.test") == [f"Your payment for invoice {number} failed"]
    # day 3: Stripe's own retry fails (another payment_failed: still one case); ours fails too
    await advance(client, emulator, 3)
    await run_dunning_job(client, clock)
    (case,) = await cases(client)
    step = case["steps"][1]
    assert step["outcome"] == "FAILED" and "declined" in step["error"]
    assert [r["outcome"] for r in step["results"]] == ["FAILED", "SUCCEEDED"]
    assert received(smtp, "ap@shaky.test")[-1] == f"We tried again: invoice {number} is still unpaid"
    # day 7: the last retry and the final notice
    await advance(client, emulator, 4)
    await run_dunning_job(client, clock)
    assert received(smtp, "ap@shaky.test")[-1] == f"Final notice: invoice {number} is unpaid"
    # day 14: uncollectible and suspended; the case is exhausted
    await advance(client, emulator, 7)
    await run_dunning_job(client, clock)
    (case,) = await cases(client)
    assert case["status"] == "EXHAUSTED" and case["closedAt"] is not None
    assert [s["outcome"] for s in case["steps"]] == ["SUCCEEDED", "FAILED", "FAILED", "SUCCEEDED"]
    assert all(s["executedAt"] is not None for s in case["steps"])
    assert case["invoice"]["status"] == "UNCOLLECTIBLE"
    assert case["customer"]["status"] == "SUSPENDED"
    status = (await client.query(CUSTOMER, {"id": customer["id"]}))["data"]["customer"]["status"]  # type: ignore[index]
    assert status == "SUSPENDED"
    assert [e["status"] for e in case["emails"]] == ["SENT"] * 3
    # nothing runs twice: a later run sends nothing, Stripe saw exactly two dunning retries
    assert (await run_dunning_job(client, clock))["steps"] == 0
    assert len(received(smtp, "ap@shaky.test")) == 3
    retries = [r for r in emulator.requests(method="POST") if r["path"].endswith("/pay")]
    assert len([r for r in retries if not r.get("idempotent_replayed")]) == 2
    assert await audit_count(client, "suspendCustomer") == 1
    assert await audit_count(client, "markInvoiceUncollectible") == 1
    assert await audit_count(client, "dunningCaseExhausted") == 1


async def test_invoice_paid_recovers_the_case_and_stops_its_steps(
    client: GraphQLClient, emulator: EmulatorHandle, smtp: SmtpSink
) -> None:
    customer = await failing_customer(client, "pay@late.test")
    invoice_id = await declined_invoice(client, emulator, customer["stripeCustomerId"])
    clock = emulator_clock(emulator)
    await run_dunning_job(client, clock)
    assert len(received(smtp, "pay@late.test")) == 1
    # the customer fixes the card and pays in Stripe (the hosted page); invoice.paid arrives
    await fix_card(emulator, customer["stripeCustomerId"])
    assert (await sdk(emulator).v1.invoices.pay_async(invoice_id)).status == "paid"
    await deliver_and_process(client, emulator)
    (case,) = await cases(client)
    assert case["status"] == "RECOVERED" and case["closeReason"] == "the invoice was paid"
    assert [s["outcome"] for s in case["steps"]] == ["SUCCEEDED", "SKIPPED", "SKIPPED", "SKIPPED"]
    assert [s["executedAt"] is None for s in case["steps"]] == [False, True, True, True]
    # weeks later: nothing more happens
    await advance(client, emulator, 20)
    assert (await run_dunning_job(client, clock))["steps"] == 0
    assert len(received(smtp, "pay@late.test")) == 1
    assert (await client.query(CUSTOMER, {"id": customer["id"]}))["data"]["customer"]["status"] == "ACTIVE"  # type: ignore[index]
    assert await cases(client, status=["RECOVERED"]) and not await cases(client, status=["OPEN"])


async def test_a_scheduled_retry_that_succeeds_recovers_the_case(
    client: GraphQLClient, emulator: EmulatorHandle, smtp: SmtpSink
) -> None:
    customer = await failing_customer(client, "fixed@card.test")
    await declined_invoice(client, emulator, customer["stripeCustomerId"])
    clock = emulator_clock(emulator)
    await run_dunning_job(client, clock)
    await fix_card(emulator, customer["stripeCustomerId"])
    await advance(client, emulator, 3)
    await run_dunning_job(client, clock)
    (case,) = await cases(client)
    assert case["status"] == "RECOVERED" and case["invoice"]["status"] == "PAID"
    retry = case["steps"][1]
    assert retry["outcome"] == "SUCCEEDED"
    assert [(r["action"], r["outcome"]) for r in retry["results"]] == [
        ("RETRY_PAYMENT", "SUCCEEDED"),
        ("EMAIL_RETRY_FAILED", "SKIPPED"),
    ]
    assert [s["outcome"] for s in case["steps"][2:]] == ["SKIPPED", "SKIPPED"]
    assert len(received(smtp, "fixed@card.test")) == 1  # no "retry failed" email
    await deliver_and_process(client, emulator)  # the invoice.paid of our own retry changes nothing more
    assert (await cases(client))[0]["status"] == "RECOVERED"


async def test_duplicate_payment_failed_deliveries_open_one_case(
    client: GraphQLClient, emulator: EmulatorHandle, smtp: SmtpSink
) -> None:
    customer = await failing_customer(client, "dup@shaky.test")
    invoice_id = await declined_invoice(client, emulator, customer["stripeCustomerId"])
    # the same event delivered again, and a second failure of the same invoice (a new event)
    async with client.runtime.session_factory() as session:
        failed = select(WebhookEvent).where(WebhookEvent.type == "invoice.payment_failed")
        (stored,) = (await session.execute(failed)).scalars()
    again = await post_signed(client, json.dumps(stored.payload), secret=SECRET)
    assert again.json()["duplicate"] is True
    with pytest.raises(stripe.CardError):
        await sdk(emulator).v1.invoices.pay_async(invoice_id)
    await deliver_and_process(client, emulator)
    assert len(await cases(client)) == 1
    async with client.runtime.session_factory() as session:
        steps = (await session.execute(select(sql_func.count()).select_from(DunningStep))).scalar_one()
    assert steps == 4
    alerts = (await client.query(ALERTS))["data"]["alerts"]["nodes"]  # type: ignore[index]
    assert len(alerts) == 1
    # two workers at once: the due step runs once, one email
    clock = emulator_clock(emulator)
    first, second = await asyncio.gather(run_dunning_job(client, clock), run_dunning_job(client, clock))
    assert first["steps"] + second["steps"] == 1
    assert len(received(smtp, "dup@shaky.test")) == 1


# --- staff actions -----------------------------------------------------------------------------------------


async def test_pause_resume_retry_and_close(client: GraphQLClient, emulator: EmulatorHandle, smtp: SmtpSink) -> None:
    customer = await failing_customer(client, "ops@shaky.test")
    await declined_invoice(client, emulator, customer["stripeCustomerId"])
    (case,) = await cases(client)
    case_input = {"input": {"case": case["id"]}}
    # support may not act on a case: refused, nothing changes
    refused = await client.query(PAUSE, case_input, role=Role.SUPPORT)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]
    paused = await run(client, PAUSE, case_input, role=Role.OPERATIONS)
    assert paused["dunningCase"]["status"] == "PAUSED" and paused["dunningCase"]["pausedAt"]
    again = await run(client, PAUSE, case_input)
    assert again["userErrors"][0]["field"] == "input.case" and "OPEN" in again["userErrors"][0]["message"]
    # while paused, nothing runs, however late it is
    later = datetime.fromtimestamp(emulator.now(), UTC) + timedelta(days=30)
    assert (await run_dunning_job(client, lambda: later))["steps"] == 0
    assert received(smtp, "ops@shaky.test") == []
    resumed = await run(client, RESUME, case_input, role=Role.FINANCE)
    assert resumed["dunningCase"]["status"] == "OPEN"
    before = [datetime.fromisoformat(s["scheduledAt"]) for s in case["steps"]]
    after = [datetime.fromisoformat(s["scheduledAt"]) for s in resumed["dunningCase"]["steps"]]
    assert all(a > b for a, b in zip(after, before, strict=True))  # moved later by the pause
    # a manual retry: declined, recorded as a manual step, the case stays open
    retried = await run(client, RETRY, case_input, role=Role.FINANCE)
    assert retried["userErrors"] == [] and retried["dunningCase"]["status"] == "OPEN"
    assert retried["step"]["manual"] is True and retried["step"]["outcome"] == "FAILED"
    assert "declined" in retried["step"]["error"]
    # closed by a person: pending steps are skipped, the reason is kept
    empty = await run(client, CLOSE, {"input": {"case": case["id"], "reason": "  "}})
    assert empty["userErrors"][0]["field"] == "input.reason"
    closed = await run(client, CLOSE, {"input": {"case": case["id"], "reason": "paid by bank transfer"}})
    assert closed["dunningCase"]["status"] == "CLOSED"
    assert closed["dunningCase"]["closeReason"] == "paid by bank transfer"
    assert {s["outcome"] for s in closed["dunningCase"]["steps"]} == {"SKIPPED", "FAILED"}
    assert (await run_dunning_job(client, lambda: later + timedelta(days=30)))["steps"] == 0
    for action in ("pauseDunning", "resumeDunning", "retryDunningNow", "closeDunningCase"):
        assert await audit_count(client, action) == 1, action
    missing = await run(client, PAUSE, {"input": {"case": "00000000-0000-0000-0000-000000000000"}})
    assert missing["userErrors"][0]["code"] == "NOT_FOUND"


async def test_cases_filter_by_status_customer_and_time(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    first = await failing_customer(client, "one@shaky.test")
    second = await failing_customer(client, "two@shaky.test")
    await declined_invoice(client, emulator, first["stripeCustomerId"])
    await declined_invoice(client, emulator, second["stripeCustomerId"])
    assert len(await cases(client, role=Role.ANALYST)) == 2
    assert len(await cases(client, customer=second["id"])) == 1
    (case,) = await cases(client, customer=first["id"])
    await run(client, PAUSE, {"input": {"case": case["id"]}})
    assert [c["id"] for c in await cases(client, status=["PAUSED"])] == [case["id"]]
    opened = case["openedAt"]
    assert len(await cases(client, **{"from": opened, "to": "2100-01-01T00:00:00Z"})) >= 1
    assert await cases(client, to=opened) == []  # `to` is exclusive; the other case opened no earlier
    bad = await client.query(CASES, {"filter": {"customer": "nope"}})
    assert bad["errors"][0]["extensions"]["field"] == "filter.customer"  # type: ignore[index]


# --- policy ------------------------------------------------------------------------------------------------


async def test_policies_default_edit_and_validation(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    policies = (await client.query(POLICIES, role=Role.SUPPORT))["data"]["dunningPolicies"]  # type: ignore[index]
    assert [p["tier"] for p in policies] == ["KICKSTART", "PRO", "CUSTOM"] and all(p["isDefault"] for p in policies)
    assert [s["day"] for s in policies[0]["steps"]] == [0, 3, 7, 14]
    steps = [
        {"day": 0, "actions": ["EMAIL_PAYMENT_FAILED"]},
        {"day": 2, "actions": ["RETRY_PAYMENT", "EMAIL_RETRY_FAILED"]},
        {"day": 5, "actions": ["CANCEL_SUBSCRIPTION", "SUSPEND_CUSTOMER"]},
    ]
    refused = await client.query(UPDATE_POLICY, {"input": {"tier": "KICKSTART", "steps": steps}}, role=Role.OPERATIONS)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]
    for bad_steps, field in [
        ([], "input.steps"),
        (
            [{"day": 3, "actions": ["RETRY_PAYMENT"]}, {"day": 3, "actions": ["EMAIL_FINAL_NOTICE"]}],
            "input.steps.1.day",
        ),
        ([{"day": 0, "actions": []}], "input.steps.0.actions"),
        ([{"day": 0, "actions": ["EMAIL_RETRY_FAILED"]}], "input.steps.0.actions"),
        ([{"day": 400, "actions": ["SUSPEND_CUSTOMER"]}], "input.steps.0.day"),
    ]:
        payload = await run(
            client, UPDATE_POLICY, {"input": {"tier": "KICKSTART", "steps": bad_steps}}, role=Role.FINANCE
        )
        assert payload["policy"] is None and payload["userErrors"][0]["field"] == field, (bad_steps, payload)
    assert await audit_count(client, "updateDunningPolicy") == 0
    updated = await run(client, UPDATE_POLICY, {"input": {"tier": "KICKSTART", "steps": steps}}, role=Role.FINANCE)
    assert updated["userErrors"] == [] and updated["policy"]["isDefault"] is False
    assert updated["policy"]["updatedBy"] == "finance@test" and updated["policy"]["steps"] == steps
    assert await audit_count(client, "updateDunningPolicy") == 1
    # a case opened now follows the edited policy
    customer = await failing_customer(client, "policy@shaky.test")
    await declined_invoice(client, emulator, customer["stripeCustomerId"])
    (case,) = await cases(client)
    assert [s["day"] for s in case["steps"]] == [0, 2, 5]


async def test_a_policy_that_cancels_the_subscription(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    steps = [
        {"day": 0, "actions": ["RETRY_PAYMENT", "EMAIL_RETRY_FAILED"]},
        {"day": 1, "actions": ["MARK_UNCOLLECTIBLE", "CANCEL_SUBSCRIPTION"]},
    ]
    updated = await run(client, UPDATE_POLICY, {"input": {"tier": "KICKSTART", "steps": steps}})
    assert updated["userErrors"] == []
    _, subscription_id = await declined_renewal(client, emulator, "cancel@shaky.test")
    clock = emulator_clock(emulator)
    await run_dunning_job(client, clock)
    await advance(client, emulator, 1)
    await run_dunning_job(client, clock)
    (case,) = await cases(client)
    assert case["status"] == "EXHAUSTED" and case["invoice"]["status"] == "UNCOLLECTIBLE"
    assert [s["outcome"] for s in case["steps"]] == ["FAILED", "SUCCEEDED"]
    body = await client.query(SUBSCRIPTION, {"id": subscription_id})
    assert body["data"]["subscription"]["status"] == "CANCELED"  # type: ignore[index]
    assert case["customer"]["status"] == "ACTIVE"  # this policy cancels, it does not suspend
    assert await audit_count(client, "cancelSubscription") == 1


# --- trials --------------------------------------------------------------------------------------------------


async def test_a_trial_ending_in_three_days_is_announced_once(client: GraphQLClient, smtp: SmtpSink) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        customer = await b.customer("Trialist", email="trial@ends.test")
        sub = await b.subscription(
            customer, await b.product_and_price(), status=SubscriptionStatus.TRIALING, trial_end=now + timedelta(days=5)
        )
    assert (await run_dunning_job(client, lambda: now))["trials_warned"] == 0
    soon = now + timedelta(days=2, hours=12)
    assert (await run_dunning_job(client, lambda: soon))["trials_warned"] == 1
    assert (await run_dunning_job(client, lambda: soon + timedelta(hours=1)))["trials_warned"] == 0
    ends = (now + timedelta(days=5)).strftime("%d %B %Y")
    assert received(smtp, "trial@ends.test") == [f"Your trial ends on {ends}"]
    alerts = (await client.query(ALERTS))["data"]["alerts"]["nodes"]  # type: ignore[index]
    assert [a["kind"] for a in alerts] == ["TRIAL_ENDING"]
    # the trial is extended: the new end date is announced again, once
    async with client.runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Subscription).where(Subscription.id == sub.id).values(trial_end=now + timedelta(days=10))
        )
    later = now + timedelta(days=7, hours=12)
    assert (await run_dunning_job(client, lambda: later))["trials_warned"] == 1
    assert (await run_dunning_job(client, lambda: later))["trials_warned"] == 0
    assert len(received(smtp, "trial@ends.test")) == 2


# --- email delivery ------------------------------------------------------------------------------------------


async def test_emails_wait_while_the_smtp_server_is_down(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str], smtp: SmtpSink
) -> None:
    """Side effects after commit: a refused delivery leaves the email PENDING, sent on a later run."""
    smtp.clear()
    down = app_factory(make_database(), smtp_url="smtp://127.0.0.1:9")  # nothing listens on the discard port
    now = datetime.now(UTC)
    async with down.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        customer = await b.customer("Later", email="later@mail.test")
        await b.subscription(
            customer, await b.product_and_price(), status=SubscriptionStatus.TRIALING, trial_end=now + timedelta(days=2)
        )
    result = await run_dunning_job(down, lambda: now)
    assert result["trials_warned"] == 1 and result["emails_refused"] == 1
    async with down.runtime.session_factory() as session:
        (email,) = (await session.execute(select(OutboundEmail))).scalars()
    assert email.status is EmailStatus.PENDING and email.attempts == 1 and email.last_error
    up = app_factory(down.settings.database_url, smtp_url=smtp.url)
    assert (await run_dunning_job(up, lambda: now))["emails_sent"] == 1
    assert received(smtp, "later@mail.test") == [email.subject]
    async with up.runtime.session_factory() as session:
        (email,) = (await session.execute(select(OutboundEmail))).scalars()
        assert (await session.execute(select(sql_func.count()).select_from(DunningCase))).scalar_one() == 0
    assert email.status is EmailStatus.SENT and email.sent_at is not None


def test_ledgerline_run_prints_every_email_its_sink_receives(capsys: pytest.CaptureFixture[str]) -> None:
    """Without SMTP_URL, `ledgerline run` points the API and worker at a local sink that prints
    who each email was for, so the demo's emails can be watched offline."""
    sink = _start_smtp_sink(Settings(smtp_url=None))
    assert sink is not None
    try:
        assert os.environ["SMTP_URL"] == sink.url
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "billing@ledgerline.test", "a@b.test", "Hello"
        message.set_content("body")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as server:
            server.send_message(message)
        assert "email to a@b.test: Hello" in capsys.readouterr().err
        assert [m.subject for m in sink.messages] == ["Hello"]
    finally:
        sink.stop()
        os.environ.pop("SMTP_URL", None)
        get_settings.cache_clear()
    assert _start_smtp_sink(Settings(smtp_url="smtp://mail.example.test:25")) is None  # a configured server is used
