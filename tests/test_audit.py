"""The audit trail: append-only at the database level, a hash chain whose tampering is found by
`verify_chain`, `auditChainStatus` and `ledgerline audit verify`, CSV/JSON exports that respect
field permissions, and entries written in the same transaction as the change they record."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.audit.chain import GENESIS_HASH
from api.audit.export import BATCH_SIZE, CSV_PATH, JSON_PATH, audit_export_routes
from api.audit.models import AuditEntry, AuditOutcome
from api.audit.record import Actor, record_audit
from api.audit.verify import ChainStatus, verify_chain
from api.auth.models import SecurityEvent, SecurityEventKind
from api.auth.roles import Role
from api.cli import app as cli_app
from api.customer.models import Customer
from api.db import make_engine, make_session_factory, sync_url
from api.runtime import Runtime
from schema.scalars import to_global_id
from tests.conftest import GraphQLClient, bearer, make_settings
from tests.factories import BASE_TIME, Builder

OWNER_ACTOR = Actor(
    subject="owner@test",
    role="owner",
    api_key_id=None,
    request_id="req-00000001",
    ip="203.0.113.7",
    user_agent="Mozilla/5.0 (X11) Ledgerline-Test",
)

CHAIN_STATUS = "{ auditChainStatus { ok entriesChecked firstBrokenId reason lastHash checkedAt } }"


async def _verify(url: str) -> ChainStatus:
    engine = make_engine(url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session:
            return await verify_chain(session, batch_size=2)  # several batches even for a short chain
    finally:
        await engine.dispose()


async def _record(url: str, entries: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Records each entry in its own transaction (as mutations do); returns (id, entry_hash)."""
    engine = make_engine(url, null_pool=True)
    recorded: list[tuple[int, str]] = []
    try:
        for kw in entries:
            kw = dict(kw)
            async with make_session_factory(engine)() as session, session.begin():
                entry = await record_audit(
                    session,
                    kw.pop("actor", OWNER_ACTOR),
                    kw.pop("action", "updateCustomer"),
                    kw.pop("target_type", "Customer"),
                    kw.pop("target_id", str(uuid.uuid4())),
                    **kw,
                )
            recorded.append((entry.id, entry.entry_hash))
    finally:
        await engine.dispose()
    return recorded


async def _as_superuser(url: str, *statements: str) -> None:
    """Bypasses the append-only trigger the only way an attacker with superuser rights could."""
    conn = await asyncpg.connect(sync_url(url))
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit_entry DISABLE TRIGGER USER")
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("ALTER TABLE audit_entry ENABLE TRIGGER USER")
    finally:
        await conn.close()


def _plain_entries(n: int) -> list[dict[str, Any]]:
    return [{"before": {"seats": i}, "after": {"seats": i + 1}} for i in range(n)]


# --- the chain survives the round trip through PostgreSQL ---------------------------------------

VARIED_JSON: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [
    (None, {"name": "Acme", "tier": "PRO", "seats": 3}),
    ({"name": "Acme"}, None),
    (
        {"address": {"city": "Lyon", "lines": ["1 rue de la Paix", None]}, "tags": []},
        {"address": {"city": "Zürich", "lines": ["Bahnhofstrasse 1", "c/o Ümlaut"]}, "tags": ["vip", {"x": 1}]},
    ),
    (
        {"amount": 0, "ratio": 0.5, "big": 2**63 + 5, "negative": -42, "fraction": 1 / 3, "one": 1.0},
        {"amount": 9900, "ratio": 0.30000000000000004, "big": -(2**70), "negative": -0.25, "tiny": 1e-7},
    ),
    ({"note": '日本語 — emoji 😀, quotes " and \\ backslash, line\nbreak, tab\t, \u2028'}, {"note": ""}),
    ({"flag": True, "nothing": None, "empty": {}}, {"flag": False, "nothing": "set", "empty": {"a": {"b": {}}}}),
    ({"z": 1, "a": 2, "m": {"y": 1, "b": 2}}, {"z": 3, "a": 4, "m": {"y": 5, "b": 6}}),
    ({}, {}),
]


async def test_chain_of_varied_entries_verifies(make_database: Callable[[], str]) -> None:
    url = make_database()
    assert await _verify(url) == ChainStatus(True, 0, None, None, None)
    api_key_actor = Actor(subject="api-key:partner", role=None, api_key_id=uuid.uuid4(), request_id="r" * 64)
    entries: list[dict[str, Any]] = [
        {
            "before": before,
            "after": after,
            # microseconds, odd offsets: stored as timestamptz, read back in UTC
            "occurred_at": datetime(2026, 3, 1, 12, 0, 0, 123456 + i, tzinfo=UTC) + timedelta(minutes=i),
        }
        for i, (before, after) in enumerate(VARIED_JSON)
    ]
    entries += [
        {"actor": api_key_actor, "action": "recordUsage", "target_type": "UsageEvent", "after": {"value": "10.5"}},
        {
            "actor": Actor.system("dunning"),
            "action": "retryPayment",
            "target_id": None,
            "outcome": AuditOutcome.FAILURE,
        },
        {"occurred_at": datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=UTC).astimezone(datetime.now().astimezone().tzinfo)},
        {"actor": Actor("ünïcode@test", "finance", None, None, "2001:db8::1", "ü" * 500), "after": {"k": "v"}},
    ]
    recorded = await _record(url, entries)
    status = await _verify(url)
    assert status == ChainStatus(True, len(entries), None, None, recorded[-1][1]), status


# Values a JSON number cannot carry unchanged through JSONB: PostgreSQL keeps numbers as `numeric`,
# so 1e16 (a float, written "1e+16") comes back as the integer 10000000000000000, and -0.0 as 0.0.
# record_audit hashes what the database stores, so these still verify.
@pytest.mark.parametrize("value", [1e16, 1e20, -0.0], ids=["1e16", "1e20", "negative-zero"])
async def test_chain_verifies_floats_that_jsonb_rewrites(make_database: Callable[[], str], value: float) -> None:
    url = make_database()
    await _record(url, [{"after": {"value": value}}])
    assert (await _verify(url)).ok


# --- append-only at the database level -------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET action = 'forged'",
        "UPDATE audit_entry SET entry_hash = md5(entry_hash) || md5(entry_hash) WHERE id = (SELECT min(id) FROM audit_entry)",
        "DELETE FROM audit_entry",
        "DELETE FROM audit_entry WHERE id = (SELECT max(id) FROM audit_entry)",
        "TRUNCATE audit_entry",
        "TRUNCATE audit_entry CASCADE",
    ],
)
async def test_audit_rows_cannot_be_changed_through_the_application_connection(
    make_database: Callable[[], str], redis_url: str, statement: str
) -> None:
    url = make_database()
    await _record(url, _plain_entries(3))
    # the application's own engine and user, as every request uses them
    runtime = Runtime.create(make_settings(url, redis_url))
    try:
        async with runtime.session_factory() as session:
            with pytest.raises(DBAPIError, match="audit_entry is append-only"):
                async with session.begin():
                    await session.execute(text(statement))
        async with runtime.session_factory() as session:
            assert (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one() == 3
            assert (await session.execute(select(AuditEntry.action).distinct())).scalars().all() == ["updateCustomer"]
    finally:
        await runtime.close()
    assert (await _verify(url)).ok


# --- tampering is detected -------------------------------------------------------------------------


@dataclass
class Tampered:
    url: str
    ids: list[int]
    hashes: list[str]


@pytest.fixture
async def five_entries(make_database: Callable[[], str]) -> Tampered:
    url = make_database()
    recorded = await _record(url, _plain_entries(5))
    return Tampered(url, [i for i, _ in recorded], [h for _, h in recorded])


async def test_altered_content_is_reported_at_that_entry(
    five_entries: Tampered, app_factory: Callable[[str], GraphQLClient]
) -> None:
    t = five_entries
    client = app_factory(t.url)
    intact = (await client.query(CHAIN_STATUS))["data"]["auditChainStatus"]  # type: ignore[index]
    assert intact["ok"] is True and intact["entriesChecked"] == 5 and intact["firstBrokenId"] is None
    assert intact["lastHash"] == t.hashes[-1] and intact["reason"] is None
    assert datetime.fromisoformat(intact["checkedAt"]) > datetime.now(UTC) - timedelta(minutes=1)

    await _as_superuser(t.url, f"""UPDATE audit_entry SET after = '{{"seats": 100}}' WHERE id = {t.ids[2]}""")

    status = await _verify(t.url)
    assert status.ok is False
    assert status.first_broken_id == t.ids[2]
    assert status.reason is not None and status.reason.startswith("content altered")
    assert status.entries_checked == 3
    assert status.last_hash == t.hashes[1]

    body = await client.query(CHAIN_STATUS)
    assert "errors" not in body, body
    reported = body["data"]["auditChainStatus"]  # type: ignore[index]
    assert reported["ok"] is False
    assert reported["firstBrokenId"] == to_global_id("AuditEntry", t.ids[2])
    assert reported["reason"].startswith("content altered")
    assert reported["entriesChecked"] == 3 and reported["lastHash"] == t.hashes[1]


async def test_a_removed_entry_is_reported_as_a_broken_link_at_the_next_one(five_entries: Tampered) -> None:
    t = five_entries
    await _as_superuser(t.url, f"DELETE FROM audit_entry WHERE id = {t.ids[2]}")
    status = await _verify(t.url)
    assert (status.ok, status.first_broken_id, status.entries_checked) == (False, t.ids[3], 3)
    assert status.reason is not None and status.reason.startswith("link broken")
    assert str(t.ids[1]) in status.reason


async def test_a_rehashed_forgery_still_breaks_the_next_link(five_entries: Tampered) -> None:
    """An attacker who alters an entry and recomputes its hash cannot fix the next entry's link
    without rewriting the whole rest of the chain."""
    t = five_entries
    engine = make_engine(t.url, null_pool=True)
    async with make_session_factory(engine)() as session:
        row = (await session.execute(select(AuditEntry).where(AuditEntry.id == t.ids[1]))).scalar_one()
        values = {name: getattr(row, name) for name in AuditEntry.__table__.columns.keys()}  # noqa: SIM118
    await engine.dispose()
    from api.audit.chain import entry_hash

    values["after"] = {"seats": 999}
    forged = entry_hash(values["prev_hash"], values)
    await _as_superuser(
        t.url, f"""UPDATE audit_entry SET after = '{{"seats": 999}}', entry_hash = '{forged}' WHERE id = {t.ids[1]}"""
    )
    status = await _verify(t.url)
    assert (status.ok, status.first_broken_id) == (False, t.ids[2])
    assert status.reason is not None and status.reason.startswith("link broken")


async def test_removing_the_first_entry_is_reported(five_entries: Tampered) -> None:
    t = five_entries
    await _as_superuser(t.url, f"DELETE FROM audit_entry WHERE id = {t.ids[0]}")
    status = await _verify(t.url)
    assert (status.ok, status.first_broken_id, status.last_hash) == (False, t.ids[1], None)
    assert status.reason is not None and "genesis" in status.reason


async def test_only_the_owner_reads_the_chain_status(
    five_entries: Tampered, app_factory: Callable[[str], GraphQLClient]
) -> None:
    client = app_factory(five_entries.url)
    for role in Role:
        body = await client.query(CHAIN_STATUS, role=role)
        if role is Role.OWNER:
            assert body["data"]["auditChainStatus"]["ok"] is True  # type: ignore[index]
            continue
        assert body["data"] == {"auditChainStatus": None}, role
        [error] = body["errors"]  # type: ignore[misc]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["extensions"]["requiredRoles"] == ["OWNER"]


# --- `ledgerline audit verify` ---------------------------------------------------------------------


@pytest.fixture
async def intact_chain(make_database: Callable[[], str]) -> str:
    url = make_database()
    await _record(url, _plain_entries(7))
    return url


@pytest.fixture
async def tampered_chain(five_entries: Tampered) -> Tampered:
    await _as_superuser(
        five_entries.url, f"UPDATE audit_entry SET actor_subject = 'x' WHERE id = {five_entries.ids[3]}"
    )
    return five_entries


def test_cli_verify_exits_0_on_an_intact_chain(intact_chain: str, cli_env: Callable[[str], None]) -> None:
    cli_env(intact_chain)
    result = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 7 entries" in result.stdout


def test_cli_verify_exits_1_on_a_tampered_chain(tampered_chain: Tampered, cli_env: Callable[[str], None]) -> None:
    cli_env(tampered_chain.url)
    result = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert f"audit chain BROKEN at entry {tampered_chain.ids[3]}: content altered" in result.stdout


def test_cli_verify_on_an_empty_database(make_database: Callable[[], str], cli_env: Callable[[str], None]) -> None:
    cli_env(make_database())
    result = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 0 entries" in result.stdout


# --- exports ---------------------------------------------------------------------------------------

EXPORT_ROWS = 2345  # more than two streaming batches


@dataclass
class ExportData:
    url: str
    rows: list[dict[str, Any]]


def _export_row(i: int) -> dict[str, Any]:
    actor = ["owner@test", "finance@test", "ops@test"][i % 3]
    return {
        "occurred_at": BASE_TIME + timedelta(hours=i, microseconds=i),
        "actor_subject": actor,
        "actor_role": actor.split("@")[0].replace("ops", "operations"),
        "api_key_id": None,
        "action": ["updateCustomer", "refundInvoice", "cancelSubscription", "createApiKey"][i % 4],
        "target_type": ["Customer", "Invoice", "Subscription", "ApiKey"][i % 4],
        "target_id": f"t-{i % 10}" if i % 5 else '=HYPERLINK("http://evil")',
        "before": {"n": i, "nested": {"list": [i, None, "é"]}} if i % 2 else None,
        "after": {"n": i + 1},
        "outcome": AuditOutcome.SUCCESS if i % 7 else AuditOutcome.FAILURE,
        "request_id": f"req-{i:08d}",
        "ip": f"198.51.100.{i % 250}",
        "user_agent": f'agent/{i}, "quoted"',
        "prev_hash": GENESIS_HASH,  # the chain is not under test here: rows are bulk-inserted
        "entry_hash": f"{i:064x}",
    }


@pytest.fixture(scope="module")
async def export_data(make_database: Callable[[], str]) -> ExportData:
    url = make_database()
    rows = [_export_row(i) for i in range(EXPORT_ROWS)]
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        await session.execute(insert(AuditEntry), rows)
        ids = (await session.execute(select(AuditEntry.id).order_by(AuditEntry.id))).scalars().all()
    await engine.dispose()
    for row, id_ in zip(rows, ids, strict=True):
        row["id"] = id_
    return ExportData(url, rows)


@pytest.fixture
async def export_http(export_data: ExportData, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real application with the export routes mounted (unless create_app already mounts them)."""
    from api.app import create_app
    from schema.asgi import graphql_factory

    runtime = Runtime.create(make_settings(export_data.url, redis_url))
    app = create_app(runtime, graphql_factory)
    if not any(getattr(route, "path", None) == CSV_PATH for route in app.routes):
        app.router.routes.extend(audit_export_routes(runtime))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledgerline.test") as http:
        yield http
    await runtime.close()


def _auth(role: Role) -> dict[str, str]:
    return bearer(make_settings("postgresql+asyncpg://unused/x", "redis://unused"), role)


def _expected(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return sorted((r for r in rows if keep(r)), key=lambda r: (r["occurred_at"], r["id"]))


def _read_csv(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


async def test_csv_export_matches_the_filter(export_http: httpx.AsyncClient, export_data: ExportData) -> None:
    start, end = BASE_TIME + timedelta(hours=100), BASE_TIME + timedelta(hours=1900)
    params = {"action": "refundInvoice", "from": start.isoformat(), "to": end.isoformat().replace("+00:00", "Z")}
    response = await export_http.get(CSV_PATH, params=params, headers=_auth(Role.OWNER))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert response.headers["content-disposition"] == f"attachment; filename=audit-entries-{today}.csv"

    columns, rows = _read_csv(response)
    assert columns[:2] == ["id", "occurred_at"] and "ip" in columns and "user_agent" in columns
    expected = _expected(export_data.rows, lambda r: r["action"] == "refundInvoice" and start <= r["occurred_at"] < end)
    assert len(expected) > 400
    assert [int(r["id"]) for r in rows] == [r["id"] for r in expected]
    first, want = rows[0], expected[0]
    assert datetime.fromisoformat(first["occurred_at"]) == want["occurred_at"]
    assert first["actor_subject"] == want["actor_subject"] and first["target_type"] == "Invoice"
    assert first["outcome"] == want["outcome"].value and first["api_key_id"] == ""
    assert first["user_agent"] == want["user_agent"] and first["ip"] == want["ip"]
    assert json.loads(first["after"]) == want["after"]
    assert (json.loads(first["before"]) if first["before"] else None) == want["before"]


async def test_csv_export_neutralises_spreadsheet_formulas(export_http: httpx.AsyncClient) -> None:
    response = await export_http.get(
        CSV_PATH, params={"targetId": '=HYPERLINK("http://evil")'}, headers=_auth(Role.OWNER)
    )
    _, rows = _read_csv(response)
    assert rows and {r["target_id"] for r in rows} == {'\'=HYPERLINK("http://evil")'}


async def test_json_export_matches_the_filter(export_http: httpx.AsyncClient, export_data: ExportData) -> None:
    # an actor is a subject or a role; the `+` of an unencoded offset arrives as a space
    response = await export_http.get(
        f"{JSON_PATH}?actor=FINANCE&targetType=Invoice&from=2026-01-02T00:00:00 00:00", headers=_auth(Role.OWNER)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].endswith(".json")
    items = response.json()
    start = datetime(2026, 1, 2, tzinfo=UTC)
    expected = _expected(
        export_data.rows,
        lambda r: r["actor_role"] == "finance" and r["target_type"] == "Invoice" and r["occurred_at"] >= start,
    )
    assert len(expected) > 50
    assert [i["id"] for i in items] == [r["id"] for r in expected]
    sample, want = items[-1], expected[-1]
    assert sample["before"] == want["before"] and sample["after"] == want["after"]
    assert datetime.fromisoformat(sample["occurred_at"]) == want["occurred_at"]
    assert sample["ip"] == want["ip"] and sample["entry_hash"] == want["entry_hash"]


async def test_unfiltered_export_streams_every_row_batch_by_batch(export_data: ExportData, redis_url: str) -> None:
    """Straight ASGI (httpx's transport buffers bodies): the body leaves in one message per
    batch of the server-side cursor, not as one string built in memory."""
    from api.app import create_app
    from schema.asgi import graphql_factory

    runtime = Runtime.create(make_settings(export_data.url, redis_url))
    app = create_app(runtime, graphql_factory)
    if not any(getattr(route, "path", None) == JSON_PATH for route in app.routes):
        app.router.routes.extend(audit_export_routes(runtime))
    headers = [(k.lower().encode(), v.encode()) for k, v in _auth(Role.FINANCE).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": JSON_PATH,
        "raw_path": JSON_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("ledgerline.test", 80),
    }
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    finally:
        await runtime.close()
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    items = json.loads(b"".join(bodies))
    batches = -(-len(items) // BATCH_SIZE)
    assert len(bodies) == batches + 2  # `[`, one message per batch, `]`
    assert max(len(b) for b in bodies) < len(b"".join(bodies)) / 2
    # the trail's own rows, then the exports' entries (this one's last: written before its snapshot)
    exports = [i for i in items if i["action"].startswith("export.")]
    assert [i["id"] for i in items if not i["action"].startswith("export.")] == [
        r["id"] for r in sorted(export_data.rows, key=lambda r: (r["occurred_at"], r["id"]))
    ]
    assert exports[-1] == items[-1] and items[-1]["action"] == "export.audit-entries"


async def test_finance_exports_without_network_columns_and_the_owner_with_them(
    export_http: httpx.AsyncClient,
) -> None:
    params = {"targetId": "t-1"}
    finance_columns, finance_rows = _read_csv(
        await export_http.get(CSV_PATH, params=params, headers=_auth(Role.FINANCE))
    )
    owner_columns, owner_rows = _read_csv(await export_http.get(CSV_PATH, params=params, headers=_auth(Role.OWNER)))
    assert finance_rows and len(finance_rows) == len(owner_rows)
    assert "ip" not in finance_columns and "user_agent" not in finance_columns and "entry_hash" not in finance_columns
    assert {"ip", "user_agent", "prev_hash", "entry_hash"} <= set(owner_columns)
    assert set(finance_columns) < set(owner_columns)
    ops = (await export_http.get(JSON_PATH, params=params, headers=_auth(Role.OPERATIONS))).json()
    assert ops and all("ip" not in item and "user_agent" not in item for item in ops)


@pytest.mark.parametrize("role", [Role.ANALYST, Role.SUPPORT])
@pytest.mark.parametrize("path", [CSV_PATH, JSON_PATH])
async def test_roles_without_audit_read_get_403(
    export_http: httpx.AsyncClient, export_data: ExportData, role: Role, path: str
) -> None:
    response = await export_http.get(path, headers=_auth(role))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "FORBIDDEN"
    assert error["requiredRoles"] == ["OWNER", "OPERATIONS", "FINANCE"]
    assert "content-disposition" not in response.headers
    engine = make_engine(export_data.url, null_pool=True)
    async with make_session_factory(engine)() as session:
        kinds = (
            (
                await session.execute(
                    select(SecurityEvent.kind).where(
                        SecurityEvent.subject == f"{role.value}@test", SecurityEvent.attempted == f"GET {path}"
                    )
                )
            )
            .scalars()
            .all()
        )
    await engine.dispose()
    assert SecurityEventKind.FORBIDDEN in kinds


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_export_without_a_valid_token_gets_401(export_http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await export_http.get(CSV_PATH, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("target_type=Invoice", "target_type"),
        ("action=a&action=b", "action"),
    ],
)
async def test_bad_export_parameters_get_400_naming_the_field(
    export_http: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await export_http.get(f"{CSV_PATH}?{query}", headers=_auth(Role.OWNER))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT" and error["field"] == field and error["message"]


# --- the entry and the change share one transaction ------------------------------------------------


async def test_a_failure_after_record_audit_leaves_neither_the_change_nor_the_entry(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    factory = make_session_factory(engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with factory() as session, session.begin():
            customer = await Builder(session).customer("Initrode")
            await record_audit(
                session, OWNER_ACTOR, "createCustomer", "Customer", str(customer.id), after={"name": customer.name}
            )
            raise Boom  # e.g. a later step of the mutation fails

    async with factory() as session:
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one() == 0

    # the next, successful change links to the genesis hash: nothing of the failed one remains
    async with factory() as session, session.begin():
        customer = await Builder(session).customer("Initrode")
        entry = await record_audit(session, OWNER_ACTOR, "createCustomer", "Customer", str(customer.id))
    assert entry.prev_hash == GENESIS_HASH
    async with factory() as session:
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 1
    await engine.dispose()
    assert (await _verify(url)).ok
