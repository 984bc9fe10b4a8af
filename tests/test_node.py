"""`node(id:)` refetches every object the schema hands out, by the rules of the list it came from.

The types are found by walking the schema for implementations of `Node`, so a new Node type that
`node` cannot resolve (or that this file has no source of ids for) fails here. For each type an id
is taken as a list (or a parent field) hands it out, refetched, and compared; every staff role and
API key scope is then asked for the list and for the node: both allowed, or both FORBIDDEN.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import api.reconciliation.models as reconciliation
from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.audit.record import Actor, record_audit
from api.auth.apikeys import create_api_key
from api.auth.models import SecurityEventKind
from api.auth.roles import Role
from api.auth.security import SecurityEventRecord, record_security_events
from api.db import make_engine, make_session_factory
from api.invoice.models import Payment, PaymentStatus, Refund, RefundStatus
from api.settings import Settings
from api.webhook.models import WebhookEvent, WebhookStatus
from schema.schema import build_schema
from tests.conftest import GraphQLClient
from tests.factories import BASE_TIME, Builder
from tests.test_permissions_matrix import PRINCIPALS, headers_for

NODE = "query($id: ID!) { node(id: $id) { __typename ... on %s { id %s } } }"


@dataclass(frozen=True)
class Source:
    """Where ids of a type come from: a query whose `%s` selects `id <field>` on the objects, and the
    path to them (a list, or one object)."""

    query: str
    path: list[str | int]
    field: str


SOURCES: dict[str, Source] = {
    "Customer": Source("customers(first: 1) { nodes { %s } }", ["customers", "nodes"], "name"),
    "Subscription": Source("subscriptions(first: 1) { nodes { %s } }", ["subscriptions", "nodes"], "status"),
    "SubscriptionItem": Source(
        "subscriptions(first: 1) { nodes { items { %s } } }", ["subscriptions", "nodes", 0, "items"], "quantity"
    ),
    "Invoice": Source('invoice(id: "{invoice}") { %s }', ["invoice"], "number"),
    "Payment": Source('invoice(id: "{invoice}") { payments { %s } }', ["invoice", "payments"], "failureCode"),
    "Refund": Source('invoice(id: "{invoice}") { refunds { %s } }', ["invoice", "refunds"], "reason"),
    "DunningCase": Source("dunningCases(first: 1) { nodes { %s } }", ["dunningCases", "nodes"], "status"),
    "Price": Source("prices { %s }", ["prices"], "nickname"),
    "Product": Source("prices { product { %s } }", ["prices", 0, "product"], "name"),
    "Meter": Source("meters { %s }", ["meters"], "key"),
    "UsageBucket": Source("usageBuckets(first: 1) { nodes { %s } }", ["usageBuckets", "nodes"], "eventCount"),
    "Alert": Source("alerts(first: 1, filter: {kind: [CHURN_RISK]}) { nodes { %s } }", ["alerts", "nodes"], "kind"),
    "WebhookEvent": Source("webhookEvents(first: 1) { nodes { %s } }", ["webhookEvents", "nodes"], "type"),
    "ReconciliationRun": Source(
        "reconciliationRuns(first: 1) { nodes { %s } }", ["reconciliationRuns", "nodes"], "requestedBy"
    ),
    "Discrepancy": Source("discrepancies(first: 1) { nodes { %s } }", ["discrepancies", "nodes"], "stripeId"),
    "AuditEntry": Source(
        'auditEntries(first: 1, filter: {action: "seed"}) { nodes { %s } }', ["auditEntries", "nodes"], "action"
    ),
    "ApiKey": Source("apiKeys { %s }", ["apiKeys"], "name"),
    "SecurityEvent": Source(
        'securityEvents(first: 1, filter: {subject: "intruder@test"}) { nodes { %s } }',
        ["securityEvents", "nodes"],
        "attempted",
    ),
}


def node_type_names() -> list[str]:
    graphql_schema = build_schema(Settings())._schema
    node = graphql_schema.get_type("Node")
    assert node is not None
    return sorted(t.name for t in graphql_schema.get_possible_types(node))  # type: ignore[arg-type]


NODE_TYPE_NAMES = node_type_names()


def gid(type_name: str, local_id: object) -> str:
    return base64.b64encode(f"{type_name}:{local_id}".encode()).decode()


def local_part(global_id: str) -> str:
    return base64.b64decode(global_id).decode().partition(":")[2]


@pytest.fixture(scope="module")
def node_db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="module")
async def dataset(node_db: str) -> dict[str, str]:
    engine = make_engine(node_db, null_pool=True)
    session_factory = make_session_factory(engine)
    async with session_factory() as session, session.begin():
        b = Builder(session)
        price = await b.product_and_price(nickname="Pro monthly", product_name="Pro plan")
        customer = await b.customer("Node Corp")
        await b.subscription(customer, price, quantity=3)
        invoice = await b.invoice(customer)
        payment = Payment(
            invoice_id=invoice.id,
            customer_id=customer.id,
            amount=invoice.total,
            currency="usd",
            status=PaymentStatus.FAILED,
            failure_code="card_declined",
        )
        session.add(payment)
        await session.flush()
        session.add(
            Refund(
                payment_id=payment.id,
                invoice_id=invoice.id,
                amount=100,
                currency="usd",
                reason="goodwill",
                status=RefundStatus.SUCCEEDED,
            )
        )
        await b.dunning_case(invoice)
        meter = await b.meter()
        await b.usage(customer, meter, "3", BASE_TIME + timedelta(hours=5))
        for kind in (AlertKind.CHURN_RISK, AlertKind.WEBHOOK_FAILURE):
            await raise_alert(session, NewAlert(kind, AlertSeverity.WARNING, f"{kind.value} probe", f"node:{kind}"))
        session.add(
            WebhookEvent(
                stripe_event_id="evt_node_probe",
                type="ping.node_probe",
                payload={"id": "evt_node_probe", "type": "ping.node_probe"},
                status=WebhookStatus.RECEIVED,
                stripe_created_at=BASE_TIME,
            )
        )
        run = reconciliation.ReconciliationRun(
            scope=reconciliation.ReconciliationScope.ALL,
            status=reconciliation.ReconciliationStatus.COMPLETED,
            requested_by="owner@test",
        )
        session.add(run)
        await session.flush()
        session.add(
            reconciliation.Discrepancy(
                run_id=run.id,
                object_type=reconciliation.ObjectType.CUSTOMER,
                kind=reconciliation.DiscrepancyKind.MISSING_LOCALLY,
                stripe_id="cus_x",
            )
        )
        owner = Actor(subject="owner@test", role="owner", api_key_id=None, ip="10.1.2.3", user_agent="probe/1")
        await record_audit(session, owner, "seed", "Customer", str(customer.id))
        await create_api_key(session, owner, "Partner sync", ["customers:read"], None)
    intruder = Actor(subject="intruder@test", role="support", api_key_id=None)
    await record_security_events(
        session_factory, intruder, [SecurityEventRecord(SecurityEventKind.FORBIDDEN, "Query.apiKeys")]
    )
    await engine.dispose()
    return {"invoice": gid("Invoice", invoice.id)}


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], node_db: str, dataset: dict[str, str]) -> GraphQLClient:
    client = app_factory(node_db)
    # hours of usage exist once rolled up, as the worker does every minute
    body = await client.query("mutation { rollUpUsage { buckets userErrors { code } } }")
    assert body["data"]["rollUpUsage"]["userErrors"] == [], body  # type: ignore[index]
    return client


async def post(client: GraphQLClient, query: str, variables: dict[str, object], headers: dict[str, str]) -> Any:
    response = await client.post(query, variables, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def dig(data: Any, path: list[str | int]) -> Any:
    for step in path:
        if data is None:
            return None
        data = data[step]
    return data


def source_query(type_name: str, dataset: dict[str, str]) -> str:
    source = SOURCES.get(type_name)
    assert source is not None, f"{type_name} implements Node: add where its ids come from to SOURCES"
    selection = source.query.replace("{invoice}", dataset["invoice"]) % f"id {source.field}"
    return "{ " + selection + " }"


def first_object(type_name: str, body: Any) -> dict[str, Any] | None:
    found = dig(body.get("data"), SOURCES[type_name].path)
    if isinstance(found, list):
        return found[0] if found else None
    return found  # type: ignore[no-any-return]


async def handed_out(client: GraphQLClient, type_name: str, dataset: dict[str, str]) -> dict[str, Any]:
    """The first object of the type as the owner's source query returns it."""
    body = await client.query(source_query(type_name, dataset))
    assert "errors" not in body, body
    found = first_object(type_name, body)
    assert found is not None, f"the dataset has no {type_name}: {body}"
    return found


def node_query(type_name: str) -> str:
    return NODE % (type_name, SOURCES[type_name].field)


def only_error(body: Any) -> dict[str, Any]:
    assert body["data"] == {"node": None}, body
    (error,) = body["errors"]
    return error  # type: ignore[no-any-return]


def test_the_schema_has_node_types_beyond_the_first_five() -> None:
    # guards the walk itself: a walk that found nothing would make every parametrised test vanish
    assert {"Customer", "UsageBucket", "Alert", "SubscriptionItem", "SecurityEvent"} <= set(NODE_TYPE_NAMES)


@pytest.mark.parametrize("type_name", NODE_TYPE_NAMES)
async def test_node_refetches_the_object_the_schema_handed_out(
    client: GraphQLClient, dataset: dict[str, str], type_name: str
) -> None:
    expected = await handed_out(client, type_name, dataset)
    body = await client.query(node_query(type_name), {"id": expected["id"]})
    assert body == {"data": {"node": {"__typename": type_name, **expected}}}


@pytest.mark.parametrize("type_name", NODE_TYPE_NAMES)
async def test_node_is_readable_exactly_when_its_list_is(
    client: GraphQLClient, dataset: dict[str, str], type_name: str
) -> None:
    expected = await handed_out(client, type_name, dataset)
    for principal in PRINCIPALS:
        headers = await headers_for(client, principal)
        listed = await post(client, source_query(type_name, dataset), {}, headers)
        refetched = await post(client, node_query(type_name), {"id": expected["id"]}, headers)
        if "errors" not in listed:
            assert first_object(type_name, listed) is not None, principal  # the list shows it ...
            assert refetched == {"data": {"node": {"__typename": type_name, **expected}}}, principal  # ... and node
            continue
        # refused the list: refused the node, for the same reason
        (list_error,) = listed["errors"]
        error = only_error(refetched)
        assert list_error["extensions"]["code"] == error["extensions"]["code"] == "FORBIDDEN", (principal, listed)
        assert error["extensions"]["requiredRoles"] == list_error["extensions"]["requiredRoles"], principal
        assert error["path"] == ["node"]


@pytest.mark.parametrize("type_name", NODE_TYPE_NAMES)
async def test_missing_and_malformed_ids_of_every_type(
    client: GraphQLClient, dataset: dict[str, str], type_name: str
) -> None:
    handed = local_part((await handed_out(client, type_name, dataset))["id"])
    missing, malformed, kind = missing_and_malformed(handed)
    error = only_error(await client.query(node_query(type_name), {"id": gid(type_name, missing)}))
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "id"
    assert error["message"] == f"{type_name} {missing} does not exist"

    error = only_error(await client.query(node_query(type_name), {"id": gid(type_name, malformed)}))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "id"
    assert error["message"] == f"`id` does not contain {kind}"


def missing_and_malformed(handed: str) -> tuple[str, str, str]:
    """For a local id as handed out: one of the same shape that names nothing, a malformed one, and
    how the error describes the shape."""
    if handed.isdigit():
        return str(2**62 + 7), "12ab", "a valid integer id"
    if handed.count("/") == 2:  # a usage bucket's key: meter/customer/hour
        meter, customer, hour = handed.split("/")
        return f"{meter}/{customer}/{int(hour) - 3600 * 24 * 400}", f"{meter}/{customer}/{int(hour) + 1}", BUCKET_KEY
    return str(uuid.uuid4()), handed + "0", "a valid UUID"


BUCKET_KEY = "a usage bucket key (meter id/customer id/hour)"


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ("not a global id", "BAD_USER_INPUT", "`id` is not a valid global id"),
        (gid("Nothing", uuid.UUID(int=1)), "BAD_USER_INPUT", "`id` names an unknown type 'Nothing'"),
        (gid("Customer", "42"), "BAD_USER_INPUT", "`id` does not contain a valid UUID"),
        (gid("UsageBucket", "-1"), "BAD_USER_INPUT", f"`id` does not contain {BUCKET_KEY}"),
        (
            gid("UsageBucket", f"{uuid.UUID(int=1)}/{uuid.UUID(int=2)}/+3600"),
            "BAD_USER_INPUT",
            f"`id` does not contain {BUCKET_KEY}",
        ),
        (
            gid("UsageBucket", f"{uuid.UUID(int=1)}/{uuid.UUID(int=2)}/07200"),
            "BAD_USER_INPUT",
            f"`id` does not contain {BUCKET_KEY}",
        ),
        (gid("UsageBucket", f"{uuid.UUID(int=1)}/7200"), "BAD_USER_INPUT", f"`id` does not contain {BUCKET_KEY}"),
        (gid("AuditEntry", "1.5"), "BAD_USER_INPUT", "`id` does not contain a valid integer id"),
        (gid("AuditEntry", str(uuid.UUID(int=1))), "BAD_USER_INPUT", "`id` does not contain a valid integer id"),
        # beyond PostgreSQL's bigint: refused before the database is asked
        (gid("SecurityEvent", str(2**63)), "BAD_USER_INPUT", "`id` does not contain a valid integer id"),
        (gid("SecurityEvent", str(2**63 - 1)), "NOT_FOUND", f"SecurityEvent {2**63 - 1} does not exist"),
        (
            gid("UsageBucket", f"{uuid.UUID(int=1)}/{uuid.UUID(int=2)}/7200"),
            "NOT_FOUND",
            f"UsageBucket {uuid.UUID(int=1)}/{uuid.UUID(int=2)}/7200 does not exist",
        ),
    ],
)
async def test_ids_node_cannot_read(client: GraphQLClient, value: str, code: str, message: str) -> None:
    error = only_error(await client.query("query($id: ID!) { node(id: $id) { id } }", {"id": value}))
    assert (error["extensions"]["code"], error["extensions"]["field"], error["message"]) == (code, "id", message)


async def test_the_type_is_checked_before_the_local_id_is_read(client: GraphQLClient) -> None:
    # a caller who may not read audit entries learns nothing from the shape of the id
    for local in ("1", "not-a-number"):
        body = await client.query(
            "query($id: ID!) { node(id: $id) { id } }", {"id": gid("AuditEntry", local)}, role=Role.SUPPORT
        )
        assert only_error(body)["extensions"]["code"] == "FORBIDDEN"


async def test_an_alert_of_a_kind_the_caller_may_not_see_is_not_found(client: GraphQLClient) -> None:
    query = "{ alerts(filter: {kind: [WEBHOOK_FAILURE]}) { nodes { id kind } } }"
    (alert,) = (await client.query(query))["data"]["alerts"]["nodes"]  # type: ignore[index]
    refetch = "query($id: ID!) { node(id: $id) { ... on Alert { id kind } } }"
    assert await client.query(refetch, {"id": alert["id"]}) == {"data": {"node": alert}}
    # support reads customers (so alerts) but not the webhook log: the alert is not in its list,
    # and node answers exactly as for an id that never existed
    assert await client.query(query, role=Role.SUPPORT) == {"data": {"alerts": {"nodes": []}}}
    hidden = only_error(await client.query(refetch, {"id": alert["id"]}, role=Role.SUPPORT))
    never = str(uuid.uuid4())
    missing = only_error(await client.query(refetch, {"id": gid("Alert", never)}, role=Role.SUPPORT))
    assert hidden["extensions"] == missing["extensions"] == {"code": "NOT_FOUND", "field": "id"}
    assert hidden["message"] == f"Alert {local_part(alert['id'])} does not exist"
    assert missing["message"] == f"Alert {never} does not exist"


async def test_field_permissions_apply_to_what_node_returns(client: GraphQLClient) -> None:
    entry = (await client.query('{ auditEntries(filter: {action: "seed"}) { nodes { id ip } } }'))["data"]
    (owner_view,) = entry["auditEntries"]["nodes"]  # type: ignore[index]
    assert owner_view["ip"] == "10.1.2.3"
    query = "query($id: ID!) { node(id: $id) { ... on AuditEntry { action ip } } }"
    body = await client.query(query, {"id": owner_view["id"]}, role=Role.OPERATIONS)
    assert body["data"] == {"node": {"action": "seed", "ip": None}}
    (error,) = body["errors"]  # type: ignore[misc]
    assert (error["path"], error["extensions"]["code"]) == (["node", "ip"], "FORBIDDEN")
