"""One table-driven test over the whole permission matrix.

Every guarded field and operation of the schema (found by walking the schema, so a new one
cannot be forgotten) is asked for by every staff role and by an API key of every scope. Allowed:
a value and no error. Refused: null at that path, a FORBIDDEN error there whose extensions carry
the required roles, the rest of the response intact, and — for operations — no side effect.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import GraphQLObjectType, get_named_type, is_composite_type
from sqlalchemy import func, select

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.audit.models import AuditEntry
from api.audit.record import Actor, record_audit
from api.auth.apikeys import create_api_key
from api.auth.models import ApiKey, StaffMember
from api.auth.permissions import MATRIX, Capability, required_roles, required_scopes
from api.auth.roles import Role, Scope
from api.customer.models import Customer
from api.db import make_engine, make_session_factory
from api.dunning.models import DunningCaseStatus
from api.health.service import recompute_health
from api.invoice.models import Invoice, InvoiceStatus
from api.reconciliation.models import ReconciliationRun, ReconciliationScope, ReconciliationStatus
from api.settings import Settings
from api.webhook.models import WebhookEvent, WebhookStatus
from schema.permissions import field_capability
from schema.schema import build_schema
from tests.conftest import GraphQLClient, bearer
from tests.factories import BASE_TIME, Builder
from tests.stripe_emulator import EmulatorHandle, run_emulator
from tests.stripe_support import IGNORE_HTTPX_DATA_WARNING, stripe_app

pytestmark = pytest.mark.filterwarnings(IGNORE_HTTPX_DATA_WARNING)

# How to reach an object of each type from the root: (query text with %s for the selection, path)
REACH: dict[str, tuple[str, list[Any]]] = {
    "Query": ("%s", []),
    "Customer": ('customer(id: "{customer}") { id %s }', ["customer"]),
    "Subscription": ('subscription(id: "{subscription}") { id %s }', ["subscription"]),
    "Invoice": ('invoice(id: "{invoice}") { id %s }', ["invoice"]),
    "AuditEntry": ("auditEntries(first: 1) { edges { node { id %s } } }", ["auditEntries", "edges", 0, "node"]),
    "CustomerUsage": (
        'usageSummary(meter: "api_calls", from: "2025-12-01T00:00:00Z", to: "2026-02-01T00:00:00Z") '
        "{ topCustomers { value %s } }",
        ["usageSummary", "topCustomers", 0],
    ),
    "DunningCase": ("dunningCases(first: 1) { nodes { id %s } }", ["dunningCases", "nodes", 0]),
}
# Arguments a field needs (filled from the dataset)
ARGUMENTS: dict[str, str] = {
    "Query.customer": '(id: "{customer}")',
    "Query.subscription": '(id: "{subscription}")',
    "Query.invoice": '(id: "{invoice}")',
    "Query.revenue": '(range: {preset: LAST_30_DAYS}, currency: "usd")',
    "Mutation.setStaffRole": '(input: {subject: "someone.else@test", role: ANALYST})',
    "Mutation.revokeStaff": '(input: {subject: "leaver@test"})',
    "Mutation.restoreStaff": '(input: {subject: "leaver@test"})',
    "Mutation.createApiKey": '(input: {name: "probe", scopes: ["usage:write"]})',
    "Mutation.revokeApiKey": '(input: {id: "{api_key}"})',
    "Mutation.rotateApiKey": '(input: {id: "{rotatable_key}"})',
    # Stripe-backed operations (against the emulator) on a fresh trialing subscription per principal
    "Mutation.createCustomer": '(input: {name: "Probe"})',
    "Mutation.updateCustomer": '(input: {customer: "{customer}", industry: "Probing"})',
    "Mutation.suspendCustomer": '(input: {customer: "{customer}", reason: "probe"})',
    "Mutation.reactivateCustomer": '(input: {customer: "{customer}"})',
    "Mutation.createSubscription": '(input: {customer: "{customer}", price: "{price}", trialDays: 30})',
    "Query.previewSubscriptionChange": '(input: {subscription: "{stripe_subscription}", quantity: 2})',
    "Mutation.changeSubscription": '(input: {subscription: "{stripe_subscription}", quantity: 2})',
    "Mutation.cancelSubscription": '(input: {subscription: "{stripe_subscription}"})',
    "Mutation.reactivateSubscription": '(input: {subscription: "{stripe_subscription}"})',
    "Mutation.pauseSubscription": '(input: {subscription: "{stripe_subscription}", behavior: VOID})',
    "Mutation.resumeSubscription": '(input: {subscription: "{stripe_subscription}"})',
    "Mutation.extendTrial": '(input: {subscription: "{stripe_subscription}", until: "{trial_until}"})',
    "Mutation.reprocessWebhookEvent": '(input: {id: "{webhook_event}"})',
    # invoices, refunds, credits, coupons: fresh Stripe objects per principal (see fresh_billing_objects)
    "Mutation.createInvoice": '(input: {customer: "{billing_customer}", items: [{description: "Probe", '
    'unitAmount: {amount: "5.00", currency: "usd"}}]})',
    "Mutation.finalizeInvoice": '(input: {invoice: "{draft_invoice}"})',
    "Mutation.sendInvoice": '(input: {invoice: "{sendable_invoice}"})',
    "Mutation.voidInvoice": '(input: {invoice: "{open_invoice}"})',
    "Mutation.payInvoice": '(input: {invoice: "{payable_invoice}"})',
    "Mutation.refundInvoice": '(input: {invoice: "{paid_invoice}", amount: {amount: "1.00", currency: "usd"}, '
    'reason: "probe"})',
    "Mutation.issueCredit": '(input: {customer: "{billing_customer}", amount: {amount: "1.00", currency: "usd"}, '
    'reason: "probe"})',
    "Mutation.createCoupon": '(input: {name: "Probe", duration: ONCE, percentOff: 5})',
    "Mutation.createPromotionCode": '(input: {coupon: "{coupon}", code: "{promotion_code}"})',
    "Mutation.applyCoupon": '(input: {subscription: "{stripe_subscription}", coupon: "{coupon}"})',
    # reconciliation: one customer compared synchronously against the emulator; a completed run
    "Mutation.reconcile": '(input: {customer: "{billing_customer}"})',
    "Mutation.resolveDiscrepancies": '(input: {run: "{reconciliation_run}", apply: true})',
    "Mutation.resyncCustomer": '(input: {customer: "{billing_customer}"})',
    # usage
    "Query.usageSummary": '(meter: "api_calls")',
    "Mutation.createMeter": '(input: {key: "{meter_key}", name: "Probe", aggregation: SUM})',
    "Mutation.createMeteredPrice": '(input: {meter: "{stripe_meter}", unitAmount: {amount: "0.01", currency: "usd"}})',
    "Mutation.setUsageQuota": '(input: {price: "{price}", meter: "api_calls", limit: 100})',
    "Mutation.recordUsage": '(events: [{customer: "{customer}", meter: "api_calls", value: 1, '
    'idempotencyKey: "{meter_key}"}])',
    "Mutation.rollUpUsage": "",
    "Mutation.reportUsage": "",
    # dunning: fresh cases per principal in the state each action needs (see fresh_dunning_cases)
    "Mutation.updateDunningPolicy": "(input: {tier: CUSTOM, steps: [{day: 0, actions: [EMAIL_PAYMENT_FAILED]}, "
    "{day: 5, actions: [RETRY_PAYMENT, EMAIL_RETRY_FAILED]}, {day: 10, actions: [CANCEL_SUBSCRIPTION]}]})",
    "Mutation.pauseDunning": '(input: {case: "{open_dunning_case}"})',
    "Mutation.resumeDunning": '(input: {case: "{paused_dunning_case}"})',
    "Mutation.closeDunningCase": '(input: {case: "{closable_dunning_case}", reason: "probe"})',
    "Mutation.retryDunningNow": '(input: {case: "{retryable_dunning_case}"})',
    # a churn-risk alert: every principal holding the guard may see it (acknowledging again is allowed)
    "Mutation.acknowledgeAlert": '(input: {id: "{alert}"})',
}
# Subscriptions run over WebSocket only: tests/test_alerts_live.py checks who may subscribe
WEBSOCKET_ONLY = {"SubscriptionRoot"}


EXPECTED_GUARDS = {
    **{f"Customer.{f}": Capability.CUSTOMER_PII_READ for f in ("email", "phone", "address", "taxId")},
    "Customer.paymentMethod": Capability.PAYMENT_METHOD_READ,
    "Customer.subscriptions": Capability.SUBSCRIPTION_READ,
    "Customer.invoices": Capability.INVOICE_READ,
    "Customer.latestInvoice": Capability.INVOICE_READ,
    "Customer.usage": Capability.USAGE_READ,
    "Invoice.customer": Capability.CUSTOMER_READ,
    "Subscription.customer": Capability.CUSTOMER_READ,
    "Query.customers": Capability.CUSTOMER_READ,
    "Query.customer": Capability.CUSTOMER_READ,
    "Query.subscriptions": Capability.SUBSCRIPTION_READ,
    "Query.invoices": Capability.INVOICE_READ,
    "Query.auditEntries": Capability.AUDIT_READ,
    "AuditEntry.ip": Capability.AUDIT_NETWORK_READ,
    "AuditEntry.userAgent": Capability.AUDIT_NETWORK_READ,
    "Query.apiKeys": Capability.ACCESS_ADMIN,
    "Query.staffMembers": Capability.ACCESS_ADMIN,
    "Query.securityEvents": Capability.SECURITY_EVENT_READ,
    "Query.auditChainStatus": Capability.AUDIT_CHAIN_READ,
    "Mutation.recordUsage": Capability.USAGE_WRITE,
    "Mutation.createMeter": Capability.CATALOG_MANAGE,
    "Query.usageSummary": Capability.USAGE_READ,
    "Query.dunningCases": Capability.INVOICE_READ,
    "Query.dunningPolicies": Capability.INVOICE_READ,
    "DunningCase.customer": Capability.CUSTOMER_READ,
    "Mutation.updateDunningPolicy": Capability.DUNNING_POLICY_MANAGE,
    **{f"Mutation.{m}": Capability.BILLING_OPERATIONS for m in ("pauseDunning", "resumeDunning", "retryDunningNow")},
    "Mutation.closeDunningCase": Capability.BILLING_OPERATIONS,
    "Query.revenue": Capability.REVENUE_READ,
    "Query.alerts": Capability.CUSTOMER_READ,
    "Mutation.acknowledgeAlert": Capability.ALERT_ACKNOWLEDGE,
    "SubscriptionRoot.alertRaised": Capability.CUSTOMER_READ,
    "Customer.health": Capability.CUSTOMER_READ,
}


@dataclass(frozen=True)
class Guarded:
    type_name: str
    field_name: str
    capability: Capability
    selection: str

    @property
    def key(self) -> str:
        return f"{self.type_name}.{self.field_name}"


def guarded_fields() -> list[Guarded]:
    schema = build_schema(Settings())
    graphql_schema = schema._schema
    found: list[Guarded] = []
    for type_name, graphql_type in sorted(graphql_schema.type_map.items()):
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        definition = schema.get_type_by_name(type_name)
        for field in getattr(definition, "fields", []):
            capability = field_capability(field)
            if capability is None:
                continue
            graphql_field = graphql_type.fields[
                field.graphql_name or schema.config.name_converter.get_graphql_name(field)
            ]
            selection = " { __typename }" if is_composite_type(get_named_type(graphql_field.type)) else ""
            name = field.graphql_name or schema.config.name_converter.get_graphql_name(field)
            found.append(Guarded(type_name, name, capability, selection))
    return found


GUARDED = guarded_fields()
PRINCIPALS = [f"role:{r.value}" for r in Role] + [f"scope:{s.value}" for s in Scope]


def test_every_guarded_field_can_be_reached() -> None:
    for g in GUARDED:
        assert g.type_name in REACH or g.type_name in {"Mutation", *WEBSOCKET_ONLY}, f"add {g.type_name} to REACH"
        field = g.key
        if field in ARGUMENTS or g.type_name != "Mutation":
            continue
        raise AssertionError(f"add arguments for {field} to ARGUMENTS")
    # the rows of the design's matrix are guarded on the schema, each by the right capability
    keys = {g.key: g.capability for g in GUARDED}
    for field, capability in EXPECTED_GUARDS.items():
        assert keys.get(field) is capability, f"{field} must be guarded by {capability}"
    # every mutation is guarded
    mutation_type = build_schema(Settings())._schema.mutation_type
    assert mutation_type is not None
    for name in mutation_type.fields:
        assert f"Mutation.{name}" in keys, f"Mutation.{name} has no guard"


@pytest.fixture(scope="module")
def matrix_db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="module")
async def dataset(matrix_db: str) -> dict[str, str]:
    engine = make_engine(matrix_db, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        b = Builder(session)
        price = await b.product_and_price()
        customer = await b.customer(
            "Matrix Corp",
            phone="+33 1 23 45 67 89",
            tax_id="FR123",
            payment_method_brand="visa",
            payment_method_last4="4242",
            payment_method_exp_month=12,
            payment_method_exp_year=2030,
        )
        subscription = await b.subscription(customer, price)
        invoice = await b.invoice(customer, subscription_id=subscription.id)
        meter = await b.meter()
        await b.usage(customer, meter, "3", BASE_TIME + timedelta(days=1))
        owner = Actor(subject="owner@test", role="owner", api_key_id=None, ip="10.1.2.3", user_agent="probe/1")
        await record_audit(session, owner, "seed", "Customer", str(customer.id))
        webhook_event = WebhookEvent(
            stripe_event_id="evt_matrix_probe",
            type="ping.matrix_probe",  # a type no handler takes: reprocessing it only marks it IGNORED
            payload={"id": "evt_matrix_probe", "type": "ping.matrix_probe", "data": {"object": {"id": "x"}}},
            status=WebhookStatus.RECEIVED,
            stripe_created_at=BASE_TIME,
        )
        session.add(webhook_event)
        await b.dunning_case(await b.invoice(customer, status=InvoiceStatus.OPEN))  # reached by DunningCase fields
        alert = await raise_alert(
            session, NewAlert(AlertKind.CHURN_RISK, AlertSeverity.WARNING, "Matrix Corp may churn", "matrix:churn")
        )
        assert alert is not None
        reconciliation_run = ReconciliationRun(
            scope=ReconciliationScope.ALL, status=ReconciliationStatus.COMPLETED, requested_by="owner@test"
        )
        session.add(reconciliation_run)
        await session.flush()
        await recompute_health(session, customer_ids=[customer.id])  # reached by Customer.health
    await engine.dispose()

    def gid(kind: str, local: object) -> str:
        return base64.b64encode(f"{kind}:{local}".encode()).decode()

    return {
        "customer": gid("Customer", customer.id),
        "subscription": gid("Subscription", subscription.id),
        "invoice": gid("Invoice", invoice.id),
        "price": gid("Price", price.id),
        "webhook_event": gid("WebhookEvent", webhook_event.id),
        "reconciliation_run": gid("ReconciliationRun", reconciliation_run.id),
        "alert": gid("Alert", alert.id),
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
async def client(
    app_factory: Callable[..., GraphQLClient], matrix_db: str, dataset: dict[str, str], emulator: EmulatorHandle
) -> GraphQLClient:
    return stripe_app(app_factory, matrix_db, emulator.url)


async def fresh_stripe_subscription(client: GraphQLClient, dataset: dict[str, str]) -> str:
    """A trialing subscription that exists in the emulator, made by the owner."""
    document = f"""mutation {{ createSubscription(input: {{customer: "{dataset["customer"]}",
      price: "{dataset["price"]}", trialDays: 30}}) {{ subscription {{ id }} userErrors {{ message }} }} }}"""
    body = await client.query(document)
    return str(body["data"]["createSubscription"]["subscription"]["id"])  # type: ignore[index]


async def fresh_billing_objects(client: GraphQLClient) -> dict[str, str]:
    """Made by the owner: a customer with a card, and invoices in the state each invoice mutation
    needs (draft, sendable draft, open, paid), and a coupon."""

    async def call(document: str) -> Any:
        body = await client.query(document)
        assert "errors" not in body, body
        (payload,) = body["data"].values()  # type: ignore[union-attr]
        assert payload["userErrors"] == [], payload
        return payload

    customer = (
        await call(
            'mutation { createCustomer(input: {name: "Billing probe", paymentMethod: "pm_card_visa"}) '
            "{ customer { id } userErrors { message } } }"
        )
    )["customer"]["id"]

    async def invoice(*steps: str, method: str = "CHARGE_AUTOMATICALLY") -> str:
        created = await call(
            f'mutation {{ createInvoice(input: {{customer: "{customer}", collectionMethod: {method}, items: '
            '[{description: "Probe", unitAmount: {amount: "20.00", currency: "usd"}}]}) '
            "{ invoice { id } userErrors { message } } }"
        )
        invoice_id = str(created["invoice"]["id"])
        for step in steps:
            await call(f'mutation {{ {step}(input: {{invoice: "{invoice_id}"}}) {{ userErrors {{ message }} }} }}')
        return invoice_id

    coupon = await call(
        'mutation { createCoupon(input: {name: "Probe", duration: FOREVER, percentOff: 10}) '
        "{ coupon { stripeCouponId } userErrors { message } } }"
    )
    meter_key = f"probe_billed_{uuid.uuid4().hex[:10]}"
    await call(
        f'mutation {{ createMeter(input: {{key: "{meter_key}", name: "Probe", aggregation: SUM}}) '
        "{ meter { id } userErrors { message } } }"
    )
    return {
        "billing_customer": str(customer),
        "draft_invoice": await invoice(),
        "sendable_invoice": await invoice(method="SEND_INVOICE"),
        "open_invoice": await invoice("finalizeInvoice"),
        "payable_invoice": await invoice("finalizeInvoice"),
        "paid_invoice": await invoice("finalizeInvoice", "payInvoice"),
        "dunning_invoice": await invoice("finalizeInvoice"),
        "coupon": str(coupon["coupon"]["stripeCouponId"]),
        "stripe_meter": meter_key,
        "promotion_code": f"PROBE{uuid.uuid4().hex[:10].upper()}",
    }


async def fresh_dunning_cases(client: GraphQLClient, billing: dict[str, str]) -> dict[str, str]:
    """Cases in the state each dunning action needs: OPEN (pause, close), PAUSED (resume), and
    OPEN on a Stripe invoice the customer's card pays (retry now)."""
    retry_invoice_id = uuid.UUID(base64.b64decode(billing["dunning_invoice"]).decode().split(":")[1])
    async with client.runtime.session_factory() as session, session.begin():
        b = Builder(session)
        retry_invoice = await session.get(Invoice, retry_invoice_id)
        assert retry_invoice is not None
        customer = await session.get(Customer, retry_invoice.customer_id)
        assert customer is not None
        cases = {"retryable": await b.dunning_case(retry_invoice)}
        for name in ("open", "paused", "closable"):
            status = DunningCaseStatus.PAUSED if name == "paused" else DunningCaseStatus.OPEN
            cases[name] = await b.dunning_case(await b.invoice(customer, status=InvoiceStatus.OPEN), status)
    return {
        f"{name}_dunning_case": base64.b64encode(f"DunningCase:{case.id}".encode()).decode()
        for name, case in cases.items()
    }


async def headers_for(client: GraphQLClient, principal: str) -> dict[str, str]:
    kind, _, name = principal.partition(":")
    if kind == "role":
        return bearer(client.settings, Role(name), subject=f"{name}@matrix.test")
    async with client.runtime.session_factory() as session, session.begin():
        issued = await create_api_key(session, Actor.system("test"), f"probe {name}", [name], None)
    return {"Authorization": f"Bearer {issued.secret}"}


def allowed(principal: str, capability: Capability) -> bool:
    kind, _, name = principal.partition(":")
    rule = MATRIX[capability]
    return Role(name) in rule.roles if kind == "role" else Scope(name) in rule.scopes


async def side_effects(client: GraphQLClient) -> tuple[int, int, int]:
    async with client.runtime.session_factory() as session:
        audit = (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one()
        keys = (await session.execute(select(func.count()).select_from(ApiKey))).scalar_one()
        staff = (
            await session.execute(
                select(func.count()).select_from(StaffMember).where(StaffMember.updated_by != "login")
            )
        ).scalar_one()
    return audit, keys, staff


async def fresh_key_id(client: GraphQLClient) -> str:
    async with client.runtime.session_factory() as session, session.begin():
        issued = await create_api_key(session, Actor.system("test"), "target", ["invoices:read"], None)
    return base64.b64encode(f"ApiKey:{issued.key.id}".encode()).decode()


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def dig(data: Any, path: list[Any]) -> Any:
    for step in path:
        if data is None:
            return None
        data = data[step]
    return data


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_matrix(client: GraphQLClient, dataset: dict[str, str], principal: str) -> None:
    headers = await headers_for(client, principal)
    leaks: list[str] = []
    stripe_subscription = await fresh_stripe_subscription(client, dataset)
    trial_until = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0).isoformat()
    billing = await fresh_billing_objects(client)
    billing.update(await fresh_dunning_cases(client, billing))
    for g in GUARDED:
        if g.type_name in WEBSOCKET_ONLY:
            continue
        values = {**dataset, **billing, "stripe_subscription": stripe_subscription, "trial_until": trial_until}
        if g.type_name == "Mutation":
            values["api_key"] = await fresh_key_id(client)
            values["rotatable_key"] = await fresh_key_id(client)
            values["meter_key"] = f"probe_{uuid.uuid4().hex[:12]}"
        field_text = fill(f"{g.field_name}{ARGUMENTS.get(g.key, '')}{g.selection}", values)
        if g.type_name == "Mutation":
            document, path = f"mutation {{ {field_text} }}", [g.field_name]
        else:
            wrapper, prefix = REACH[g.type_name]
            document = "query { me { subject } " + (fill(wrapper, values) % field_text) + " }"
            path = [*prefix, g.field_name]
        before = await side_effects(client)
        response = await client.post(document, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        errors = [e for e in body.get("errors", []) if e.get("path") == path]
        reaching_refused = [e for e in body.get("errors", []) if e.get("path") != path]
        if reaching_refused:
            # the way to the object is itself refused (e.g. a scope without customers:read asking
            # Customer.email): nothing under it may have leaked
            assert all(e["extensions"]["code"] == "FORBIDDEN" for e in reaching_refused), body
            assert dig(body.get("data"), path) is None, f"{principal} got {g.key} through a refused parent"
            continue
        if allowed(principal, g.capability):
            assert not errors, f"{principal} was refused {g.key}: {errors}"
            assert dig(body["data"], path) is not None, f"{principal}: {g.key} is null ({body})"
            if g.type_name == "Mutation":
                assert dig(body["data"], path)["__typename"].endswith("Payload")
                assert (await side_effects(client))[0] > before[0], f"{g.key} by {principal} wrote no audit entry"
        else:
            if dig(body.get("data"), path) is not None:
                leaks.append(g.key)
                continue
            assert len(errors) == 1, f"{principal} / {g.key}: {body}"
            ext = errors[0]["extensions"]
            assert ext["code"] == "FORBIDDEN"
            assert ext["requiredRoles"] == required_roles(g.capability)
            assert ext["requiredScopes"] == required_scopes(g.capability)
            if g.type_name == "Mutation":
                assert await side_effects(client) == before, f"{principal} / {g.key} had a side effect"
            elif principal.startswith("role:"):
                assert body["data"]["me"]["subject"] == f"{principal.split(':')[1]}@matrix.test"  # rest intact
    assert not leaks, f"{principal} could read: {leaks}"
