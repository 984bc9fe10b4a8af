"""Data exports (`GET /exports/{dataset}.csv|json`, `ledgerline export`): the rows of the GraphQL
list under the same filter, only the columns the role may read, one database snapshot with its
time, constant memory however many rows, errors naming the parameter, 401/403 like the API.

The audit-entries export runs on the same mechanism; its own tests are in tests/test_audit.py."""

from __future__ import annotations

import asyncio
import base64
import csv
import getpass
import io
import json
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.audit.models import AuditEntry
from api.auth.models import SecurityEvent, SecurityEventKind
from api.auth.roles import Role
from api.cli import app as cli_app
from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.db import driver_connection, make_engine, make_session_factory
from api.export.dataset import BATCH_SIZE
from api.export.registry import DATASETS
from api.invoice.models import Invoice
from api.runtime import Runtime
from api.seed import seed_demo_data
from tests.conftest import GraphQLClient, bearer, make_settings

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
PII_COLUMNS = {
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "tax_id",
}
CARD_COLUMNS = {"payment_method_brand", "payment_method_last4", "payment_method_exp_month", "payment_method_exp_year"}


def _auth(role: Role) -> dict[str, str]:
    return bearer(make_settings("postgresql+asyncpg://unused/x", "redis://unused"), role)


def _local_id(global_id: str) -> str:
    return base64.b64decode(global_id).decode().partition(":")[2]


def _read_csv(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


# --- a realistic back office: the demo seed plus alerts of every kind ------------------------------


@pytest.fixture(scope="module")
async def seeded_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    await seed_demo_data(url, customers=80, seed=11, now=TODAY)
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        customers = (await session.execute(select(Customer.id).order_by(Customer.created_at).limit(6))).scalars()
        for n, customer_id in enumerate(customers):
            for kind in AlertKind:
                await raise_alert(
                    session,
                    NewAlert(
                        kind=kind,
                        severity=AlertSeverity.WARNING if n % 2 else AlertSeverity.CRITICAL,
                        message=f"{kind.value} for customer {n}",
                        dedup_key=f"test:{kind.value}:{customer_id}",
                        customer_id=customer_id,
                        details={"n": n},
                    ),
                )
    await engine.dispose()
    return url


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], seeded_url: str) -> GraphQLClient:
    return app_factory(seeded_url)


async def _graphql_ids(client: GraphQLClient, field: str, filter_: dict[str, Any], role: Role) -> list[str]:
    """Every id of the GraphQL list under `filter_`, newest first, page by page."""
    query = (
        f"query($filter: {field[0].upper()}{field[1:-1]}FilterInput, $after: String) "
        f"{{ {field}(filter: $filter, first: 100, after: $after) "
        "{ pageInfo { hasNextPage endCursor } nodes { id } } }"
    )
    ids: list[str] = []
    after = None
    while True:
        body = await client.query(query, {"filter": filter_, "after": after}, role=role)
        assert "errors" not in body, body
        connection: Any = body["data"][field]  # type: ignore[index]
        ids.extend(_local_id(node["id"]) for node in connection["nodes"])
        if not connection["pageInfo"]["hasNextPage"]:
            return ids
        after = connection["pageInfo"]["endCursor"]


async def _export_ids(client: GraphQLClient, dataset: str, kind: str, params: dict[str, str], role: Role) -> list[str]:
    response = await client.http.get(f"/exports/{dataset}.{kind}", params=params, headers=_auth(role))
    assert response.status_code == 200, response.text
    if kind == "csv":
        return [row["id"] for row in _read_csv(response)[1]]
    return [item["id"] for item in response.json()]


async def _first_customer_with_subscriptions(url: str) -> uuid.UUID:
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session:
        customer_id = (
            await session.execute(
                select(Invoice.customer_id).group_by(Invoice.customer_id).order_by(func.count().desc())
            )
        ).scalar()
    await engine.dispose()
    assert customer_id is not None
    return customer_id


FILTER_CASES = [
    # (dataset, GraphQL list, export parameters, the same GraphQL filter, role, format)
    ("customers", "customers", {}, {}, Role.ANALYST, "csv"),
    (
        "customers",
        "customers",
        {"tier": "pro,CUSTOM", "status": "ACTIVE,PAST_DUE", "from": (TODAY - timedelta(days=400)).isoformat()},
        {
            "tier": ["PRO", "CUSTOM"],
            "status": ["ACTIVE", "PAST_DUE"],
            "createdAt": {"from": (TODAY - timedelta(days=400)).isoformat()},
        },
        Role.OWNER,
        "json",
    ),
    (
        "customers",
        "customers",
        {"search": "a", "internalTeam": "false"},
        {"search": "a", "internalTeam": False},
        Role.SUPPORT,
        "csv",
    ),
    (
        "customers",
        "customers",
        {"preset": "LAST_90_DAYS"},
        {"createdAt": {"preset": "LAST_90_DAYS"}},
        Role.FINANCE,
        "json",
    ),
    (
        "subscriptions",
        "subscriptions",
        {"status": "ACTIVE,TRIALING"},
        {"status": ["ACTIVE", "TRIALING"]},
        Role.SUPPORT,
        "csv",
    ),
    (
        "invoices",
        "invoices",
        {"status": "OPEN,UNCOLLECTIBLE"},
        {"status": ["OPEN", "UNCOLLECTIBLE"]},
        Role.ANALYST,
        "json",
    ),
    (
        "invoices",
        "invoices",
        {"dueFrom": (TODAY - timedelta(days=60)).isoformat(), "dueTo": TODAY.isoformat()},
        {"dueDate": {"from": (TODAY - timedelta(days=60)).isoformat(), "to": TODAY.isoformat()}},
        Role.FINANCE,
        "csv",
    ),
    ("alerts", "alerts", {"status": "OPEN"}, {"status": ["OPEN"]}, Role.SUPPORT, "json"),
    (
        "alerts",
        "alerts",
        {"kind": "WEBHOOK_FAILURE,CHURN_RISK"},
        {"kind": ["WEBHOOK_FAILURE", "CHURN_RISK"]},
        Role.OWNER,
        "csv",
    ),
]


@pytest.mark.parametrize(("dataset", "field", "params", "graphql_filter", "role", "kind"), FILTER_CASES)
async def test_an_export_has_the_rows_of_the_graphql_list_under_the_same_filter(
    client: GraphQLClient,
    dataset: str,
    field: str,
    params: dict[str, str],
    graphql_filter: dict[str, Any],
    role: Role,
    kind: str,
) -> None:
    listed = await _graphql_ids(client, field, graphql_filter, role)
    exported = await _export_ids(client, dataset, kind, params, role)
    assert listed, "the case must select some rows"
    assert exported == listed[::-1]  # the same rows, oldest first


async def test_filters_by_customer_id_select_that_customers_rows(client: GraphQLClient, seeded_url: str) -> None:
    customer_id = await _first_customer_with_subscriptions(seeded_url)
    global_id = base64.b64encode(f"Customer:{customer_id}".encode()).decode()
    everything = await _export_ids(client, "invoices", "csv", {}, Role.OWNER)
    for reference in (str(customer_id), global_id):
        for dataset in ("invoices", "subscriptions", "alerts"):
            ids = await _export_ids(client, dataset, "json", {"customer": reference}, Role.OWNER)
            listed = await _graphql_ids(client, dataset, {"customer": global_id}, Role.OWNER)
            assert ids == listed[::-1]
        assert (
            0
            < len(await _export_ids(client, "invoices", "json", {"customer": reference}, Role.OWNER))
            < len(everything)
        )


async def test_alert_exports_leave_out_the_kinds_the_role_may_not_read(client: GraphQLClient) -> None:
    owner = (await client.http.get("/exports/alerts.json", headers=_auth(Role.OWNER))).json()
    support = (await client.http.get("/exports/alerts.json", headers=_auth(Role.SUPPORT))).json()
    assert {a["kind"] for a in owner} == {k.value for k in AlertKind}
    assert {a["kind"] for a in support} == {k.value for k in AlertKind} - {"WEBHOOK_FAILURE"}
    assert support[0]["details"] == {"n": 0} and support[0]["customer_id"]


# --- field permissions -----------------------------------------------------------------------------


async def test_an_analysts_customer_export_has_no_contact_or_card_columns(client: GraphQLClient) -> None:
    owner = await client.http.get("/exports/customers.csv", headers=_auth(Role.OWNER))
    analyst = await client.http.get("/exports/customers.csv", headers=_auth(Role.ANALYST))
    owner_columns, owner_rows = _read_csv(owner)
    analyst_columns, analyst_rows = _read_csv(analyst)
    assert set(owner_columns) >= PII_COLUMNS | CARD_COLUMNS
    assert not (PII_COLUMNS | CARD_COLUMNS) & set(analyst_columns)
    assert {"id", "name", "tier", "status", "created_at"} <= set(analyst_columns)
    assert set(analyst.headers["x-withheld-columns"].split(",")) == PII_COLUMNS | CARD_COLUMNS
    assert owner.headers["x-withheld-columns"] == ""
    assert [r["id"] for r in analyst_rows] == [r["id"] for r in owner_rows] and len(owner_rows) == 80
    assert all("@" not in value for row in analyst_rows for value in row.values())
    assert any(r["email"] for r in owner_rows) and any(r["payment_method_last4"] for r in owner_rows)

    items = (await client.http.get("/exports/customers.json", headers=_auth(Role.ANALYST))).json()
    assert items and all(not (PII_COLUMNS | CARD_COLUMNS) & set(item) for item in items)


async def test_support_exports_contact_details_but_no_payment_method(client: GraphQLClient) -> None:
    response = await client.http.get("/exports/customers.json", headers=_auth(Role.SUPPORT))
    items = response.json()
    assert items and all(set(item) >= PII_COLUMNS and not CARD_COLUMNS & set(item) for item in items)
    assert set(response.headers["x-withheld-columns"].split(",")) == CARD_COLUMNS
    assert any(item["email"] for item in items)


async def test_invoice_amounts_are_decimal_strings_in_the_invoice_currency(client: GraphQLClient) -> None:
    body = await client.query("{ invoices(first: 5) { nodes { id total { amount currency } status } } }")
    nodes: Any = body["data"]["invoices"]["nodes"]  # type: ignore[index]
    exported = {i["id"]: i for i in (await client.http.get("/exports/invoices.json", headers=_auth(Role.OWNER))).json()}
    for node in nodes:
        item = exported[_local_id(node["id"])]
        assert (item["total"], item["currency"], item["status"]) == (
            node["total"]["amount"],
            node["total"]["currency"],
            node["status"],
        )


# --- revenue ---------------------------------------------------------------------------------------

REVENUE_QUERY = """
query($from: DateTime!) {
  revenue(range: {from: $from}, currency: "usd", granularity: MONTH) {
    asOf
    series { start end mrr { amount } arr { amount } activeCustomers customerChurnRate
             movements { new { mrr { amount } customers } net { amount } } trials { started } }
  }
}
"""


async def test_the_revenue_export_is_the_series_of_the_revenue_report(client: GraphQLClient) -> None:
    start = (TODAY - timedelta(days=200)).replace(day=1)
    body = await client.query(REVENUE_QUERY, {"from": start.isoformat()}, role=Role.ANALYST)
    assert "errors" not in body, body
    report: Any = body["data"]["revenue"]  # type: ignore[index]
    response = await client.http.get(
        "/exports/revenue.csv",
        params={"from": start.date().isoformat(), "currency": "USD"},
        headers=_auth(Role.ANALYST),
    )
    assert response.status_code == 200, response.text
    _, rows = _read_csv(response)
    assert len(rows) == len(report["series"]) >= 6
    for row, period in zip(rows, report["series"], strict=True):
        assert datetime.fromisoformat(row["period_start"]) == datetime.fromisoformat(period["start"])
        assert datetime.fromisoformat(row["period_end"]) == datetime.fromisoformat(period["end"])
        assert (row["mrr"], row["arr"], row["net_new_mrr"]) == (
            period["mrr"]["amount"],
            period["arr"]["amount"],
            period["movements"]["net"]["amount"],
        )
        assert (row["new_mrr"], int(row["new_customers"])) == (
            period["movements"]["new"]["mrr"]["amount"],
            period["movements"]["new"]["customers"],
        )
        assert int(row["active_customers"]) == period["activeCustomers"]
        assert int(row["trials_started"]) == period["trials"]["started"]
        churn = period["customerChurnRate"]
        assert (float(row["customer_churn_rate"]) if row["customer_churn_rate"] else None) == churn
    assert any(row["mrr"] != "0.00" for row in rows)
    as_of = datetime.fromisoformat(response.headers["x-data-as-of"])
    assert as_of <= datetime.now(UTC)

    weekly = (
        await client.http.get(
            "/exports/revenue.json",
            params={"preset": "LAST_30_DAYS", "currency": "usd", "granularity": "week"},
            headers=_auth(Role.FINANCE),
        )
    ).json()
    assert 5 <= len(weekly) <= 6 and all(item["currency"] == "usd" for item in weekly)


# --- freshness -------------------------------------------------------------------------------------


async def test_every_export_says_when_its_data_is_from(client: GraphQLClient) -> None:
    for dataset in ("customers", "subscriptions", "invoices", "alerts", "audit-entries"):
        before = datetime.now(UTC)
        response = await client.http.get(f"/exports/{dataset}.json", headers=_auth(Role.OWNER))
        after = datetime.now(UTC)
        assert response.status_code == 200, response.text
        as_of = datetime.fromisoformat(response.headers["x-data-as-of"])
        assert before - timedelta(seconds=1) <= as_of <= after + timedelta(seconds=1), dataset
        assert response.headers["content-disposition"] == (
            f"attachment; filename={dataset}-{datetime.now(UTC):%Y%m%d}.json"
        )
        assert response.headers["cache-control"] == "no-store"


# --- errors ----------------------------------------------------------------------------------------


EXPORT_AUDIT = """query($action: String!) { auditEntries(filter: {action: $action}, first: 10) {
  edges { node { action targetId after actor { subject role } } } } }"""


async def export_audit_entries(client: GraphQLClient, action: str) -> list[dict[str, Any]]:
    body = await client.query(EXPORT_AUDIT, {"action": action}, role=Role.OWNER)
    return [edge["node"] for edge in body["data"]["auditEntries"]["edges"]]  # type: ignore[index]


async def test_every_export_leaves_an_audit_entry_with_its_filters_and_withheld_columns(
    client: GraphQLClient,
) -> None:
    before = await export_audit_entries(client, "export.customers")
    params = {"tier": "PRO", "status": "ACTIVE"}
    response = await client.http.get("/exports/customers.csv", params=params, headers=_auth(Role.ANALYST))
    assert response.status_code == 200
    entries = await export_audit_entries(client, "export.customers")
    assert len(entries) == len(before) + 1
    entry = entries[0]  # newest first
    assert entry["actor"]["role"] == "analyst" and entry["targetId"] == "customers"
    assert entry["after"]["format"] == "csv" and entry["after"]["filters"] == params
    assert set(entry["after"]["withheld"]) == set(response.headers["x-withheld-columns"].split(",")) >= {"email"}


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("customers.csv", "tier=GOLD", "tier"),
        ("customers.csv", "internalTeam=maybe", "internalTeam"),
        ("customers.json", "createdFrom=2026-01-01", "createdFrom"),
        ("customers.csv", "from=2026-02-01&to=2026-01-01", "from"),
        ("customers.csv", "preset=LAST_30_DAYS&from=2026-01-01", "preset"),
        ("customers.csv", "preset=LAST_WEEK", "preset"),
        ("subscriptions.csv", "customer=not-an-id", "customer"),
        ("subscriptions.json", "status=ACTIVE&status=PAUSED", "status"),
        (
            "invoices.csv",
            f"subscription={base64.b64encode(f'Customer:{uuid.uuid4()}'.encode()).decode()}",
            "subscription",
        ),
        ("invoices.json", "dueFrom=soon", "dueFrom"),
        ("alerts.csv", "kind=FIRE", "kind"),
        ("revenue.csv", "from=2026-01-01", "currency"),
        ("revenue.csv", "currency=usd", "from"),
        ("revenue.csv", "currency=dollars&from=2026-01-01", "currency"),
        ("revenue.json", "currency=usd&from=2999-01-01", "from"),
        ("revenue.json", "currency=usd&from=2026-01-01&granularity=HOUR", "granularity"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(
    client: GraphQLClient, path: str, query: str, field: str
) -> None:
    response = await client.http.get(f"/exports/{path}?{query}", headers=_auth(Role.OWNER))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT" and error["field"] == field and error["message"]
    assert "content-disposition" not in response.headers


@pytest.mark.parametrize("dataset", sorted(DATASETS))
async def test_exports_without_a_valid_token_get_401(client: GraphQLClient, dataset: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.http.get(f"/exports/{dataset}.csv", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("dataset", "role", "required"),
    [
        ("revenue", Role.SUPPORT, ["OWNER", "FINANCE", "ANALYST"]),
        ("revenue", Role.OPERATIONS, ["OWNER", "FINANCE", "ANALYST"]),
        ("audit-entries", Role.ANALYST, ["OWNER", "OPERATIONS", "FINANCE"]),
    ],
)
async def test_exports_of_what_the_role_may_not_read_get_403_and_a_security_event(
    client: GraphQLClient, seeded_url: str, dataset: str, role: Role, required: list[str]
) -> None:
    path = f"/exports/{dataset}.json"
    response = await client.http.get(path, params={"currency": "usd", "preset": "TODAY"}, headers=_auth(role))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "FORBIDDEN" and error["requiredRoles"] == required
    engine = make_engine(seeded_url, null_pool=True)
    async with make_session_factory(engine)() as session:
        kinds = (
            await session.scalars(
                select(SecurityEvent.kind).where(
                    SecurityEvent.subject == f"{role.value}@test", SecurityEvent.attempted == f"GET {path}"
                )
            )
        ).all()
    await engine.dispose()
    assert SecurityEventKind.FORBIDDEN in kinds


async def test_every_role_may_export_what_it_reads(client: GraphQLClient) -> None:
    for role in Role:
        for dataset in ("customers", "subscriptions", "invoices", "alerts"):
            response = await client.http.get(f"/exports/{dataset}.csv", headers=_auth(role))
            assert response.status_code == 200, (role, dataset, response.text)


# --- streaming: 20,000 customers in constant memory ------------------------------------------------

LARGE = 20_000


COPIED_COLUMNS = (
    "id",
    "name",
    "email",
    "phone",
    "address_line1",
    "address_city",
    "address_country",
    "tier",
    "status",
    "industry",
    "internal_team",
    "currency",
    "created_at",
    "updated_at",
)


@pytest.fixture(scope="module")
async def large_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    rng = random.Random(5)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    records = [
        (
            uuid.UUID(int=rng.getrandbits(128)),
            f"Customer {n:05d} " + "x" * rng.randrange(40),
            f"billing{n}@example.com",
            "+1 555 0100",
            f"{n} Main Street",
            "Springfield",
            "US",
            list(CustomerTier)[n % 3].value,
            list(CustomerStatus)[n % 5].value,
            "Software",
            False,
            "usd",
            base + timedelta(minutes=n),
            base + timedelta(minutes=n),
        )
        for n in range(LARGE)
    ]
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        connection = await driver_connection(session)
        await connection.copy_records_to_table("customer", records=records, columns=COPIED_COLUMNS)
    await engine.dispose()
    return url


async def _drive(app: Any, path: str, role: Role) -> tuple[int, list[int]]:
    """Runs one request straight through ASGI (httpx's transport buffers bodies) and keeps only
    the sizes of the body messages, as a client that writes them to disk would."""
    headers = [(k.lower().encode(), v.encode()) for k, v in _auth(role).items()]
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("ledgerline.test", 80),
    }
    status = 0
    sizes: list[int] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message.get("body"):
            sizes.append(len(message["body"]))

    await app(scope, receive, send)
    return status, sizes


@pytest.fixture
async def large_app(large_url: str, redis_url: str) -> AsyncIterator[Any]:
    from api.app import create_app
    from schema.asgi import graphql_factory

    runtime = Runtime.create(make_settings(large_url, redis_url))
    yield create_app(runtime, graphql_factory)
    await runtime.close()


@pytest.mark.parametrize("kind", ["csv", "json"])
async def test_a_large_export_leaves_in_one_message_per_cursor_batch(large_app: Any, kind: str) -> None:
    status, sizes = await _drive(large_app, f"/exports/customers.{kind}", Role.OWNER)
    assert status == 200
    total = sum(sizes)
    assert total > 4_000_000
    assert len(sizes) == LARGE // BATCH_SIZE + (1 if kind == "csv" else 2)  # header or `[`, the batches, `]`
    assert max(sizes) < total / 10


async def _peak_memory(app: Any, path: str) -> tuple[int, int]:
    """(peak bytes allocated while serving `path`, bytes sent)."""
    tracemalloc.start()
    try:
        status, sizes = await _drive(app, path, Role.OWNER)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200
    return peak, sum(sizes)


async def test_a_large_exports_memory_does_not_grow_with_its_rows(large_app: Any) -> None:
    await _drive(large_app, "/exports/customers.json?status=TRIAL", Role.OWNER)  # warm up the statement caches
    third_peak, third_size = await _peak_memory(large_app, "/exports/customers.json?tier=PRO")
    full_peak, full_size = await _peak_memory(large_app, "/exports/customers.json")
    assert full_size > 2.9 * third_size
    # one batch in flight whatever the size: three times the rows, (about) the same peak
    assert full_peak < 1.25 * third_peak, (third_peak, full_peak)
    assert full_peak < full_size


def test_cli_exports_a_file_with_every_row_as_a_role_sees_it(
    large_url: str, cli_env: Callable[[str], None], tmp_path: Path
) -> None:
    cli_env(large_url)
    target = tmp_path / "customers.csv"
    result = CliRunner().invoke(
        cli_app,
        ["export", "customers", "--output", str(target), "--role", "analyst", "tier=PRO,CUSTOM", "status=active"],
    )
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(target.read_text()))
    rows = list(reader)
    expected = [n for n in range(LARGE) if n % 3 in (1, 2) and n % 5 == 1]
    assert len(rows) == len(expected)
    assert {r["tier"] for r in rows} == {"PRO", "CUSTOM"} and {r["status"] for r in rows} == {"ACTIVE"}
    assert "email" not in (reader.fieldnames or []) and "name" in (reader.fieldnames or [])
    assert f"{len(expected)} customers rows" in result.stderr and "withheld for analyst: email" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["customers.csv"]  # no partial file left
    audited = asyncio.run(_cli_export_entries(large_url))  # the HTTP tests export this data too
    assert [(a.actor_subject, a.actor_role, a.after["filters"]) for a in audited] == [
        (f"cli:{getpass.getuser()}", "analyst", {"tier": "PRO,CUSTOM", "status": "active"})
    ]


async def _cli_export_entries(url: str) -> list[AuditEntry]:
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session:
        entries = list(
            (
                await session.execute(
                    select(AuditEntry).where(
                        AuditEntry.action == "export.customers", AuditEntry.actor_subject.startswith("cli:")
                    )
                )
            ).scalars()
        )
    await engine.dispose()
    return entries


def test_cli_exports_json_to_stdout(seeded_url: str, cli_env: Callable[[str], None]) -> None:
    cli_env(seeded_url)
    result = CliRunner().invoke(cli_app, ["export", "alerts", "--format", "json", "kind=CHURN_RISK"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert len(items) == 6 and {i["kind"] for i in items} == {"CHURN_RISK"}


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["export", "revenue", "--role", "support", "currency=usd", "preset=TODAY"], 1, "not allowed to export"),
        (["export", "customers", "tier=GOLD"], 2, "`tier` must be one of"),
        (["export", "customers", "colour=red"], 2, "unknown query parameter `colour`"),
        (["export", "planets"], 2, "unknown dataset"),
        (["export", "customers", "--role", "intern"], 2, "intern"),
    ],
)
def test_cli_refuses_what_it_cannot_export(
    seeded_url: str, cli_env: Callable[[str], None], tmp_path: Path, arguments: list[str], code: int, message: str
) -> None:
    cli_env(seeded_url)
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(cli_app, [*arguments, "--output", str(target)])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())
    assert not target.exists()
