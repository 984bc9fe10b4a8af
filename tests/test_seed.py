"""Demo data: coverage of every state, consistency, determinism, one transaction, refusal.

Seeding happens in databases of its own (`make_database`), never in the shared one.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from api.audit.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash
from api.db import sync_url
from api.seed import SeedSummary, _Generator, build_demo_data, database_is_empty, default_now, seed_demo_data

NOW = datetime(2026, 11, 21, tzinfo=UTC)
CUSTOMERS = 30


@dataclass
class Seeded:
    url: str
    summary: SeedSummary
    stages: list[tuple[str, int, int]]


@pytest.fixture(scope="module")
async def seeded(make_database: Callable[[], str]) -> Seeded:
    url = make_database()
    stages: list[tuple[str, int, int]] = []
    summary = await seed_demo_data(
        url, customers=CUSTOMERS, seed=42, now=NOW, progress=lambda *args: stages.append(args)
    )
    return Seeded(url, summary, stages)


async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(sync_url(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _values(url: str, query: str) -> set[Any]:
    return {row[0] for row in await _fetch(url, query)}


# ---- pure generation ------------------------------------------------------------------------


def test_same_seed_and_now_give_identical_rows() -> None:
    first = build_demo_data(customers=CUSTOMERS, seed=7, now=NOW)
    second = build_demo_data(customers=CUSTOMERS, seed=7, now=NOW)
    assert first.fingerprint() == second.fingerprint()
    assert build_demo_data(customers=CUSTOMERS, seed=8, now=NOW).fingerprint() != first.fingerprint()
    later = build_demo_data(customers=CUSTOMERS, seed=7, now=datetime(2026, 11, 22, tzinfo=UTC))
    assert later.fingerprint() != first.fingerprint()


def test_fast_ids_equal_standard_version_4_uuids() -> None:
    generator = _Generator(random.Random(11), NOW, lambda *_: None)
    reference = random.Random(11)
    for _ in range(2_000):
        made, expected = generator.uid(), uuid.UUID(int=reference.getrandbits(128), version=4)
        assert made == expected and str(made) == str(expected) and hash(made) == hash(expected)
        assert made.version == 4 and made.variant == uuid.RFC_4122


def test_now_defaults_to_today_midnight_utc() -> None:
    now = default_now()
    assert now.tzinfo is UTC
    assert (now.hour, now.minute, now.second, now.microsecond) == (0, 0, 0, 0)
    assert now.date() == datetime.now(UTC).date()


def test_generated_rows_are_consistent() -> None:
    data = build_demo_data(customers=200, seed=3, now=NOW)
    invoices = data.table("invoice")
    col = {name: i for i, name in enumerate(invoices.columns)}
    lines_total: dict[Any, int] = {}
    for line in data.table("invoice_line").rows:
        lines_total[line[1]] = lines_total.get(line[1], 0) + line[3]
    numbers = [row[col["number"]] for row in invoices.rows if row[col["number"]] is not None]
    assert len(numbers) == len(set(numbers))
    assert all(re.fullmatch(r"LL-20\d\d-\d{6}", number) for number in numbers)
    for row in invoices.rows:
        total, paid, refunded = row[col["total"]], row[col["amount_paid"]], row[col["amount_refunded"]]
        assert total == row[col["subtotal"]] == lines_total[row[col["id"]]] >= 0
        if total == 0:  # only a trial's opening invoice is free, and it is paid at once
            assert row[col["status"]] == "PAID" and row[col["paid_at"]] == row[col["created_at"]]
        assert 0 <= refunded <= paid <= total
        assert row[col["created_at"]] <= NOW and row[col["updated_at"]] <= NOW
        assert row[col["period_start"]] < row[col["period_end"]]
        status = row[col["status"]]
        assert (row[col["number"]] is None) == (status == "DRAFT") == (row[col["finalized_at"]] is None)
        assert (status == "PAID") == (paid == total) == (row[col["paid_at"]] is not None)
        if row[col["paid_at"]] is not None:
            assert row[col["finalized_at"]] <= row[col["paid_at"]] <= NOW
        assert (status == "VOID") == (row[col["voided_at"]] is not None)
        url = row[col["hosted_invoice_url"]]
        assert url is None or url.startswith("https://invoice.example.test/i/in_demo")
    keys = [(row[0], row[4]) for row in data.table("usage_event").rows]
    assert len(keys) == len(set(keys))
    assert all(row[3] <= NOW for row in data.table("usage_event").rows)


# ---- a seeded database ----------------------------------------------------------------------


async def test_every_tier_and_customer_status(seeded: Seeded) -> None:
    assert await _values(seeded.url, "SELECT tier FROM customer") == {"KICKSTART", "PRO", "CUSTOM"}
    assert await _values(seeded.url, "SELECT status FROM customer") == {
        "TRIAL",
        "ACTIVE",
        "PAST_DUE",
        "SUSPENDED",
        "CANCELED",
    }
    assert await _values(seeded.url, "SELECT currency FROM customer") == {"usd", "eur"}
    assert True in await _values(seeded.url, "SELECT internal_team FROM customer")
    rows = await _fetch(seeded.url, "SELECT external_id, stripe_customer_id, email FROM customer")
    assert all(re.fullmatch(r"acct_\d{6}", row["external_id"]) for row in rows)
    assert all(row["stripe_customer_id"].startswith("cus_demo") for row in rows)
    # cards are mirrored for card payers; Custom pays by bank transfer
    assert await _values(seeded.url, "SELECT payment_method_brand FROM customer WHERE tier = 'CUSTOM'") == {None}
    brands = await _values(seeded.url, "SELECT payment_method_brand FROM customer WHERE tier <> 'CUSTOM'")
    assert brands - {None} and brands <= {"visa", "mastercard", "amex", "discover", None}


async def test_subscriptions_follow_customer_status(seeded: Seeded) -> None:
    rows = await _fetch(
        seeded.url,
        """SELECT c.status AS customer_status, s.status, s.trial_end, s.canceled_at,
                  s.current_period_start, s.current_period_end
           FROM subscription s JOIN customer c ON c.id = s.customer_id""",
    )
    assert len(rows) == CUSTOMERS
    expected = {
        "TRIAL": {"TRIALING"},
        "ACTIVE": {"ACTIVE"},
        "PAST_DUE": {"PAST_DUE"},
        "SUSPENDED": {"PAST_DUE", "UNPAID"},
        "CANCELED": {"CANCELED"},
    }
    for row in rows:
        assert row["status"] in expected[row["customer_status"]]
        assert row["current_period_start"] < row["current_period_end"]
        if row["status"] == "TRIALING":
            assert row["trial_end"] > NOW
        assert (row["status"] == "CANCELED") == (row["canceled_at"] is not None)
        if row["status"] != "CANCELED":
            assert row["current_period_start"] <= NOW < row["current_period_end"]


async def test_invoices_in_every_status_with_refunds_and_failed_payments(seeded: Seeded) -> None:
    url = seeded.url
    assert await _values(url, "SELECT status FROM invoice") == {"DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"}
    mismatched = await _fetch(
        url,
        """SELECT i.id FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id
           GROUP BY i.id, i.subtotal HAVING sum(l.amount) <> i.subtotal""",
    )
    assert mismatched == []
    refunds = await _fetch(
        url,
        """SELECT r.amount, i.amount_paid, i.amount_refunded, i.status, p.status AS payment_status
           FROM refund r JOIN invoice i ON i.id = r.invoice_id JOIN payment p ON p.id = r.payment_id""",
    )
    assert refunds
    assert {r["amount"] == r["amount_paid"] for r in refunds} == {True, False}  # full and partial
    for refund in refunds:
        assert refund["status"] == "PAID" and refund["payment_status"] == "SUCCEEDED"
        assert refund["amount_refunded"] == refund["amount"]
    failed = await _fetch(
        url,
        """SELECT p.failure_code, i.status, i.attempt_count FROM payment p JOIN invoice i ON i.id = p.invoice_id
           WHERE p.status = 'FAILED'""",
    )
    assert failed and {row["failure_code"] for row in failed} == {"card_declined"}
    assert {row["status"] for row in failed} >= {"OPEN", "UNCOLLECTIBLE"}
    assert all(row["attempt_count"] >= 1 for row in failed)
    dunning = await _fetch(
        url,
        """SELECT i.next_payment_attempt FROM invoice i JOIN customer c ON c.id = i.customer_id
           WHERE c.status = 'PAST_DUE' AND i.status = 'OPEN'""",
    )
    assert dunning and all(row["next_payment_attempt"] > NOW for row in dunning)
    unpaid = await _fetch(
        url,
        """SELECT i.next_payment_attempt FROM invoice i JOIN subscription s ON s.id = i.subscription_id
           WHERE s.status = 'UNPAID' AND i.status IN ('OPEN', 'UNCOLLECTIBLE')""",
    )
    assert all(row["next_payment_attempt"] is None for row in unpaid)  # retries have stopped


async def test_catalog_and_usage(seeded: Seeded) -> None:
    url = seeded.url
    meters = await _fetch(url, "SELECT key, aggregation, unique_property FROM meter ORDER BY key")
    assert [(m["key"], m["aggregation"], m["unique_property"]) for m in meters] == [
        ("active_users", "UNIQUE_COUNT", "user_id"),
        ("api_calls", "SUM", None),
        ("storage_gb", "MAX", None),
    ]
    prices = {
        (row["name"], row["unit_amount"], row["currency"], row["interval"], row["usage_type"], row["metered"])
        for row in await _fetch(
            url,
            """SELECT p.name, pr.unit_amount, pr.currency, pr.interval, pr.usage_type,
                      pr.meter_id IS NOT NULL AS metered
               FROM price pr JOIN product p ON p.id = pr.product_id WHERE pr.active""",
        )
    }
    assert {
        ("Kickstart", 2900, "usd", "MONTH", "LICENSED", False),
        ("Kickstart", 29000, "usd", "YEAR", "LICENSED", False),
        ("Pro", 9900, "usd", "MONTH", "LICENSED", False),
        ("Pro", 99000, "usd", "YEAR", "LICENSED", False),
        ("Custom", 49900, "usd", "MONTH", "LICENSED", False),
        ("API calls", 1, "usd", "MONTH", "METERED", True),
    } <= prices
    assert any(price[2] == "eur" for price in prices)
    events = await _fetch(
        url,
        """SELECT m.key, u.properties, u.occurred_at FROM usage_event u JOIN meter m ON m.id = u.meter_id""",
    )
    assert {event["key"] for event in events} == {"api_calls", "active_users", "storage_gb"}
    for event in events:
        assert (NOW - event["occurred_at"]).days < 31
        properties = json.loads(event["properties"])
        if event["key"] == "active_users":
            assert properties["user_id"].startswith("usr_")


async def test_audit_trail_is_a_valid_hash_chain(seeded: Seeded) -> None:
    rows = await _fetch(seeded.url, "SELECT * FROM audit_entry ORDER BY id")
    assert len(rows) == seeded.summary.audit_entries > CUSTOMERS
    previous = GENESIS_HASH
    last_at = None
    for row in rows:
        entry = {name: row[name] for name in HASHED_FIELDS}
        for name in ("before", "after"):
            entry[name] = None if row[name] is None else json.loads(row[name])
        assert row["prev_hash"] == previous
        assert row["entry_hash"] == entry_hash(previous, entry)
        assert last_at is None or last_at <= row["occurred_at"] <= NOW
        previous, last_at = row["entry_hash"], row["occurred_at"]
    actions = {row["action"] for row in rows}
    assert {"createCustomer", "changeSubscription", "refundInvoice", "suspendCustomer", "cancelSubscription"} <= (
        actions
    )
    assert {row["actor_role"] for row in rows} >= {"owner", "operations", "finance", "support", None}
    by_key = [row for row in rows if row["api_key_id"] is not None]
    assert by_key and all(row["actor_role"] is None for row in by_key)
    keys = await _values(seeded.url, "SELECT id FROM api_key")
    assert {row["api_key_id"] for row in by_key} <= keys


async def test_summary_and_progress_match_the_database(seeded: Seeded) -> None:
    summary = seeded.summary
    for table, expected in (
        ("customer", summary.customers),
        ("subscription", summary.subscriptions),
        ("invoice", summary.invoices),
        ("payment", summary.payments),
        ("refund", summary.refunds),
        ("usage_event", summary.usage_events),
        ("audit_entry", summary.audit_entries),
    ):
        rows = await _fetch(seeded.url, f"SELECT count(*) FROM {table}")
        assert rows[0][0] == expected > 0, table
    assert summary.seconds > 0
    finished = {stage: (done, total) for stage, done, total in seeded.stages}
    assert finished["Generating demo data"] == (CUSTOMERS, CUSTOMERS)
    assert finished["Writing invoices"] == (summary.invoices, summary.invoices)
    assert finished["Writing audit entries"] == (summary.audit_entries, summary.audit_entries)


async def test_database_rows_are_the_pure_build(seeded: Seeded) -> None:
    data = build_demo_data(customers=CUSTOMERS, seed=42, now=NOW)
    customers = data.table("customer")
    assert await _values(seeded.url, "SELECT id FROM customer") == {row[0] for row in customers.rows}
    invoice_numbers = {row[3] for row in data.table("invoice").rows}
    assert await _values(seeded.url, "SELECT number FROM invoice") == invoice_numbers
    hashes = [row[-1] for row in data.table("audit_entry").rows]
    assert [row[0] for row in await _fetch(seeded.url, "SELECT entry_hash FROM audit_entry ORDER BY id")] == hashes


async def test_refuses_a_database_that_has_customers(seeded: Seeded) -> None:
    assert not await database_is_empty(seeded.url)
    with pytest.raises(ValueError, match="already has customers"):
        await seed_demo_data(seeded.url, customers=5, seed=1, now=NOW)
    rows = await _fetch(seeded.url, "SELECT count(*) FROM customer")
    assert rows[0][0] == CUSTOMERS


async def test_a_failure_half_way_leaves_nothing(make_database: Callable[[], str]) -> None:
    url = make_database()
    assert await database_is_empty(url)

    def fail_while_writing_invoices(stage: str, done: int, total: int) -> None:
        if stage == "Writing invoices" and done > 0:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        await seed_demo_data(url, customers=20, seed=5, now=NOW, progress=fail_while_writing_invoices)
    assert await database_is_empty(url)
    for table in ("meter", "product", "price", "api_key", "subscription", "invoice", "audit_entry"):
        rows = await _fetch(url, f"SELECT count(*) FROM {table}")
        assert rows[0][0] == 0, table
    # and the same database can then be seeded
    summary = await seed_demo_data(url, customers=20, seed=5, now=NOW)
    assert summary.customers == 20


def test_every_trialing_customer_has_its_opening_invoice() -> None:
    data = build_demo_data(customers=200, seed=5, now=NOW)
    customers = data.table("customer")
    ccol = {name: i for i, name in enumerate(customers.columns)}
    invoices = data.table("invoice")
    icol = {name: i for i, name in enumerate(invoices.columns)}
    invoiced = {row[icol["customer_id"]] for row in invoices.rows}
    trials = [row[ccol["id"]] for row in customers.rows if row[ccol["status"]] == "TRIAL"]
    assert trials and all(customer in invoiced for customer in trials)
