"""Live alerts: the `alertRaised` subscription over `graphql-transport-ws`, served by a real uvicorn
server; alerts raised by another runtime (as an arq worker would) reach every subscriber through
real Redis pub/sub, each subscriber getting exactly the kinds its role may read, in order.
Also `acknowledgeAlert` through the GraphQL endpoint."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.alert.models import Alert, AlertKind, AlertSeverity, AlertStatus
from api.alert.service import NewAlert, raise_alert
from api.audit.record import Actor
from api.auth.apikeys import create_api_key
from api.auth.models import SecurityEvent, SecurityEventKind
from api.auth.roles import Role
from api.runtime import Runtime
from api.webhook.models import WebhookEvent, WebhookStatus
from api.webhook.service import RetryPolicy, process_event
from schema.schema import subscription_capabilities
from tests.conftest import GraphQLClient, bearer
from tests.factories import BASE_TIME, Builder
from tests.stripe_support import audit_entries, run, serving
from tests.test_permissions_matrix import PRINCIPALS, allowed

ALERT_RAISED = "subscription($kinds: [AlertKind!]) { alertRaised(kinds: $kinds) { id kind status message } }"
ACKNOWLEDGE = """mutation($input: AcknowledgeAlertInput!) { acknowledgeAlert(input: $input) {
  alert { id status acknowledgedAt acknowledgedBy } userErrors { field message code } } }"""
RECEIVE_SECONDS = 10  # a message expected but not there by then is a failure
END = "end of test"  # the message of the last alert each test raises: every subscriber may see it


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]) -> GraphQLClient:
    return app_factory(make_database())


@pytest.fixture
async def port(client: GraphQLClient) -> AsyncIterator[int]:
    async with serving(client) as port:
        yield port


@pytest.fixture
async def worker(client: GraphQLClient) -> AsyncIterator[Runtime]:
    """Another process's runtime on the same database and Redis: what an arq worker holds."""
    runtime = Runtime.create(client.settings)
    yield runtime
    await runtime.close()


class Subscriber:
    """A graphql-transport-ws client."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        async with asyncio.timeout(RECEIVE_SECONDS):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        return message

    async def subscribe(self, kinds: list[str] | None = None, operation_id: str = "1") -> None:
        variables = {"kinds": kinds} if kinds else {}
        payload = {"query": ALERT_RAISED, "variables": variables}
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def alerts_until_end(self) -> list[tuple[str, str]]:
        """(kind, message) of each alert received, up to the test's last one (excluded)."""
        received: list[tuple[str, str]] = []
        while True:
            message = await self.receive()
            assert message["type"] == "next" and "errors" not in message["payload"], message
            alert = message["payload"]["data"]["alertRaised"]
            if alert["message"] == END:
                return received
            received.append((alert["kind"], alert["message"]))

    async def closed(self) -> tuple[int, str]:
        with pytest.raises(ConnectionClosed) as closed:
            await self.receive()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason


@asynccontextmanager
async def websocket(port: int, init_payload: dict[str, Any] | None) -> AsyncIterator[Subscriber]:
    async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        subscriber = Subscriber(ws)
        init: dict[str, Any] = {"type": "connection_init"}
        if init_payload is not None:
            init["payload"] = init_payload
        await subscriber.send(init)
        yield subscriber


@asynccontextmanager
async def subscribed(port: int, authorization: str, kinds: list[str] | None = None) -> AsyncIterator[Subscriber]:
    async with websocket(port, {"Authorization": authorization}) as subscriber:
        assert (await subscriber.receive())["type"] == "connection_ack"
        await subscriber.subscribe(kinds)
        yield subscriber


async def listening(client: GraphQLClient, count: int) -> None:
    """Waits until `count` subscriptions receive what is published (so none misses an alert)."""
    for _ in range(500):
        if client.runtime.alert_feed.listening == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{client.runtime.alert_feed.listening} subscriptions listening, expected {count}")


def new_alert(kind: AlertKind, message: str) -> NewAlert:
    return NewAlert(kind=kind, severity=AlertSeverity.WARNING, message=message, dedup_key=f"test:{uuid.uuid4()}")


async def raise_one(runtime: Runtime, kind: AlertKind, message: str) -> None:
    async with runtime.session_factory() as session, session.begin():
        await raise_alert(session, new_alert(kind, message))


async def api_key(client: GraphQLClient, scope: str) -> str:
    async with client.runtime.session_factory() as session, session.begin():
        issued = await create_api_key(session, Actor.system("test"), f"live {scope}", [scope], None)
    return f"Bearer {issued.secret}"


async def fail_a_webhook_event_for_good(runtime: Runtime) -> None:
    """A stored refund.created event whose payment Ledgerline does not know: its one attempt fails."""
    async with runtime.session_factory() as session, session.begin():
        event = WebhookEvent(
            stripe_event_id=f"evt_{uuid.uuid4().hex[:20]}",
            type="refund.created",
            payload={
                "data": {
                    "object": {
                        "id": "re_unknown",
                        "object": "refund",
                        "amount": 100,
                        "currency": "usd",
                        "charge": "ch_unknown",
                        "payment_intent": "pi_unknown",
                        "status": "succeeded",
                        "metadata": {},
                    }
                }
            },
            status=WebhookStatus.RECEIVED,
            stripe_created_at=BASE_TIME,
        )
        session.add(event)
    async with runtime.session_factory() as session, session.begin():
        processed = await process_event(session, event.id, RetryPolicy(max_attempts=1))
        assert processed is not None and processed.event.status is WebhookStatus.FAILED


async def security_events(client: GraphQLClient, kind: SecurityEventKind) -> list[SecurityEvent]:
    async with client.runtime.session_factory() as session:
        rows = await session.execute(select(SecurityEvent).where(SecurityEvent.kind == kind))
        return list(rows.scalars())


# --- the subscription ---------------------------------------------------------------------------------


async def test_each_subscriber_gets_exactly_the_new_alerts_its_role_may_read_in_order(
    client: GraphQLClient, port: int, worker: Runtime
) -> None:
    owner = bearer(client.settings, Role.OWNER)["Authorization"]
    support = bearer(client.settings, Role.SUPPORT)["Authorization"]
    integration = await api_key(client, "customers:read")  # customers, subscriptions, usage; no invoices
    async with (
        subscribed(port, owner) as owner_ws,
        subscribed(port, support) as support_ws,
        subscribed(port, integration) as integration_ws,
        subscribed(port, owner, kinds=["WEBHOOK_FAILURE", "CHURN_RISK"]) as filtered_ws,
    ):
        await listening(client, 4)
        async with worker.session_factory() as session, session.begin():  # two alerts, one commit
            await raise_alert(session, new_alert(AlertKind.TRIAL_ENDING, "trial"))
            await raise_alert(session, new_alert(AlertKind.PAYMENT_FAILED, "payment"))
        with pytest.raises(RuntimeError):  # a transaction that rolls back publishes nothing
            async with worker.session_factory() as session, session.begin():
                await raise_alert(session, new_alert(AlertKind.CHURN_RISK, "rolled back"))
                raise RuntimeError("abandon")
        async with worker.session_factory() as session, session.begin():
            with pytest.raises(RuntimeError):  # nor a savepoint that rolls back
                async with session.begin_nested():
                    await raise_alert(session, new_alert(AlertKind.CHURN_RISK, "savepoint rolled back"))
                    raise RuntimeError("abandon")
            await raise_alert(session, new_alert(AlertKind.QUOTA_THRESHOLD, "quota"))
        await fail_a_webhook_event_for_good(worker)
        await raise_one(worker, AlertKind.CHURN_RISK, "churn")
        await raise_one(worker, AlertKind.CHURN_RISK, END)

        webhook_message = [m for k, m in await owner_ws.alerts_until_end() if k == "WEBHOOK_FAILURE"]
        assert len(webhook_message) == 1 and "refund.created" in webhook_message[0]
        expected_owner = [
            ("TRIAL_ENDING", "trial"),
            ("PAYMENT_FAILED", "payment"),
            ("QUOTA_THRESHOLD", "quota"),
            ("WEBHOOK_FAILURE", webhook_message[0]),
            ("CHURN_RISK", "churn"),
        ]
        # owner_ws was read once above; the others in full here
        assert await support_ws.alerts_until_end() == [a for a in expected_owner if a[0] != "WEBHOOK_FAILURE"]
        assert await integration_ws.alerts_until_end() == [
            a for a in expected_owner if a[0] in ("TRIAL_ENDING", "QUOTA_THRESHOLD", "CHURN_RISK")
        ]
        assert await filtered_ws.alerts_until_end() == [
            a for a in expected_owner if a[0] in ("WEBHOOK_FAILURE", "CHURN_RISK")
        ]
    # what was delivered is what `alerts` lists (the rolled-back ones never existed)
    body = await client.query("{ alerts(first: 20) { nodes { kind message status } } }")
    listed = [(n["kind"], n["message"]) for n in body["data"]["alerts"]["nodes"]]  # type: ignore[index]
    assert sorted(listed) == sorted([*expected_owner, ("CHURN_RISK", END)])


async def test_bad_or_missing_credentials_are_refused_and_recorded(client: GraphQLClient, port: int) -> None:
    async with websocket(port, {}) as ws:
        code, reason = await ws.closed()
    assert code == 4401 and "connection_init" in reason
    async with websocket(port, {"token": "not-a-jwt"}) as ws:
        code, reason = await ws.closed()
    assert code == 4401 and reason
    async with websocket(port, {"Authorization": "Basic abc"}) as ws:
        code, reason = await ws.closed()
    assert code == 4401 and "Bearer" in reason
    assert len(await security_events(client, SecurityEventKind.AUTHENTICATION_FAILED)) == 3
    # a valid API key that may read no alert at all: refused with 4403
    async with websocket(port, {"Authorization": await api_key(client, "invoices:read")}) as ws:
        code, reason = await ws.closed()
    assert code == 4403 and "subscribe" in reason
    (forbidden,) = await security_events(client, SecurityEventKind.FORBIDDEN)
    assert forbidden.subject.startswith("api-key:") and forbidden.attempted == "WebSocket /graphql"
    assert client.runtime.alert_feed.listening == 0


async def test_who_may_subscribe_follows_the_permission_matrix(client: GraphQLClient, port: int) -> None:
    """Every staff role and every API key scope: accepted when it holds the subscription's guard,
    refused with 4403 otherwise (the permission matrix test covers HTTP; this is its WebSocket row)."""
    (capability,) = {c for c in subscription_capabilities() if c is not None}
    for principal in PRINCIPALS:
        kind, _, name = principal.partition(":")
        if kind == "role":
            authorization = bearer(client.settings, Role(name))["Authorization"]
        else:
            authorization = await api_key(client, name)
        async with websocket(port, {"Authorization": authorization}) as ws:
            if allowed(principal, capability):
                assert (await ws.receive())["type"] == "connection_ack", principal
            else:
                assert (await ws.closed())[0] == 4403, principal


async def test_a_token_sent_as_token_is_accepted_and_only_subscriptions_run(client: GraphQLClient, port: int) -> None:
    token = bearer(client.settings, Role.ANALYST)["Authorization"].removeprefix("Bearer ")
    async with websocket(port, {"token": token}) as ws:
        assert (await ws.receive())["type"] == "connection_ack"
        # queries and mutations are HTTP POSTs (authenticated one by one)
        await ws.send({"id": "q", "type": "subscribe", "payload": {"query": "{ me { subject } }"}})
        error = await ws.receive()
        assert error["type"] == "error" and error["id"] == "q"
        assert error["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "HTTP POST" in error["payload"][0]["message"]


async def test_a_revoked_staff_member_stops_receiving(client: GraphQLClient, port: int, worker: Runtime) -> None:
    owner = bearer(client.settings, Role.OWNER)["Authorization"]
    leaver = bearer(client.settings, Role.OPERATIONS, subject="leaver@test")["Authorization"]
    async with subscribed(port, owner) as owner_ws, subscribed(port, leaver) as leaver_ws:
        await listening(client, 2)
        await raise_one(worker, AlertKind.CHURN_RISK, "before")
        assert (await leaver_ws.receive())["payload"]["data"]["alertRaised"]["message"] == "before"
        revoked = await run(client, 'mutation { revokeStaff(input: {subject: "leaver@test"}) { userErrors { code } } }')
        assert revoked["userErrors"] == []
        await raise_one(worker, AlertKind.CHURN_RISK, "after")
        refused = await leaver_ws.receive()
        assert refused["type"] == "next" and refused["payload"]["data"] is None
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "revoked" in refused["payload"]["errors"][0]["message"]
        assert (await leaver_ws.receive())["type"] == "complete"
        await raise_one(worker, AlertKind.CHURN_RISK, END)
        assert await owner_ws.alerts_until_end() == [("CHURN_RISK", "before"), ("CHURN_RISK", "after")]
    # and it cannot connect again
    async with websocket(port, {"Authorization": leaver}) as ws:
        code, reason = await ws.closed()
    assert code == 4401 and "revoked" in reason


# --- acknowledging ------------------------------------------------------------------------------------------


async def stored_alert(client: GraphQLClient, kind: AlertKind) -> tuple[str, uuid.UUID]:
    async with client.runtime.session_factory() as session, session.begin():
        customer = await Builder(session).customer("Ack Corp")
        alert = await raise_alert(
            session,
            NewAlert(kind, AlertSeverity.WARNING, f"{kind} of Ack Corp", f"ack:{uuid.uuid4()}", customer.id),
        )
    assert alert is not None
    body = await client.query("{ alerts(first: 1) { nodes { id } } }")
    return str(body["data"]["alerts"]["nodes"][0]["id"]), alert.id  # type: ignore[index]


async def test_acknowledge_alert_once_idempotent_and_audited(client: GraphQLClient) -> None:
    alert_id, local_id = await stored_alert(client, AlertKind.PAYMENT_FAILED)
    first = await run(client, ACKNOWLEDGE, {"input": {"id": alert_id}}, role=Role.SUPPORT)
    assert first["userErrors"] == []
    assert first["alert"]["status"] == "ACKNOWLEDGED" and first["alert"]["acknowledgedBy"] == "support@test"
    again = await run(client, ACKNOWLEDGE, {"input": {"id": alert_id}}, role=Role.FINANCE)
    assert again["alert"] == first["alert"]  # who acknowledged first, and when, stay
    body = await client.query(
        "{ alerts(filter: {status: [ACKNOWLEDGED]}) { nodes { id } } open: alerts(filter: {status: [OPEN]}) "
        "{ totalCount } }"
    )
    assert body["data"] == {"alerts": {"nodes": [{"id": alert_id}]}, "open": {"totalCount": 0}}
    entries = await audit_entries(client, "acknowledgeAlert")
    assert [(e.actor_subject, e.target_id) for e in entries] == [
        ("support@test", str(local_id)),
        ("finance@test", str(local_id)),
    ]
    assert entries[0].after is not None and entries[0].after["status"] == "ACKNOWLEDGED"


async def test_acknowledging_an_alert_the_caller_cannot_see_answers_as_for_a_missing_one(
    client: GraphQLClient,
) -> None:
    alert_id, local_id = await stored_alert(client, AlertKind.WEBHOOK_FAILURE)
    hidden = await run(client, ACKNOWLEDGE, {"input": {"id": alert_id}}, role=Role.SUPPORT)
    assert hidden == {
        "alert": None,
        "userErrors": [{"field": "input.id", "message": f"alert {local_id} does not exist", "code": "NOT_FOUND"}],
    }
    async with client.runtime.session_factory() as session:
        alert = await session.get(Alert, local_id)
    assert alert is not None and alert.status is AlertStatus.OPEN and alert.acknowledged_by is None
    assert await audit_entries(client, "acknowledgeAlert") == []
    (denial,) = await security_events(client, SecurityEventKind.FORBIDDEN)
    assert denial.subject == "support@test" and denial.attempted == "Mutation.acknowledgeAlert"
    # an unknown id: the same answer (ids of hidden alerts cannot be probed)
    unknown = uuid.uuid4()
    missing = await run(client, ACKNOWLEDGE, {"input": {"id": str(unknown)}}, role=Role.SUPPORT)
    assert missing == {
        "alert": None,
        "userErrors": [{"field": "input.id", "message": f"alert {unknown} does not exist", "code": "NOT_FOUND"}],
    }
