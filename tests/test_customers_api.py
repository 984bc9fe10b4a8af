"""Customers over HTTP GraphQL: pagination, filters, nested data, bad input."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from api.auth.roles import Role
from api.customer.models import CustomerStatus, CustomerTier
from api.db import make_engine, make_session_factory
from api.invoice.models import InvoiceStatus
from tests.conftest import GraphQLClient
from tests.factories import BASE_TIME, Builder

LIST = """
query($filter: CustomerFilterInput, $orderBy: CustomerOrder, $first: Int, $after: String) {
  customers(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id name tier status } }
  }
}
"""


@pytest.fixture(scope="module")
def dataset_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="module")
async def dataset(dataset_url: str) -> dict[str, Any]:
    engine = make_engine(dataset_url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        b = Builder(session)
        price = await b.product_and_price(unit_amount=4900)
        meter = await b.meter()
        same_time = BASE_TIME + timedelta(days=100)
        acme = await b.customer("Acme Robotics", tier=CustomerTier.PRO, industry="Manufacturing")
        globex = await b.customer("Globex", tier=CustomerTier.KICKSTART, status=CustomerStatus.TRIAL)
        initech = await b.customer(
            "Initech", tier=CustomerTier.CUSTOM, status=CustomerStatus.SUSPENDED, email="ops@initech.test"
        )
        # ties: three customers created at the same instant, two with the same name
        tie_a = await b.customer("Umbrella", created_at=same_time, tier=CustomerTier.KICKSTART)
        tie_b = await b.customer("Umbrella", created_at=same_time, status=CustomerStatus.PAST_DUE)
        tie_c = await b.customer("Hooli", created_at=same_time, internal_team=True)
        stark = await b.customer("Stark 100% Industries", status=CustomerStatus.CANCELED, industry="Energy")
        await b.subscription(acme, price, quantity=7)
        for month in range(5):
            await b.invoice(acme, amount=4900 * 7, created_at=BASE_TIME + timedelta(days=30 * month))
        await b.invoice(acme, amount=100, status=InvoiceStatus.OPEN, created_at=BASE_TIME + timedelta(days=200))
        await b.usage(acme, meter, "10.5", BASE_TIME + timedelta(days=1))
        await b.usage(acme, meter, "4.5", BASE_TIME + timedelta(days=2))
        await b.usage(acme, meter, "100", BASE_TIME + timedelta(days=60))
    await engine.dispose()
    return {
        "all": [acme, globex, initech, tie_a, tie_b, tie_c, stark],
        "acme": acme,
        "initech": initech,
        "ties": [tie_a, tie_b, tie_c],
    }


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], dataset_url: str, dataset: dict[str, Any]) -> GraphQLClient:
    return app_factory(dataset_url)


async def walk(client: GraphQLClient, page_size: int, **variables: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(50):
        body = await client.query(LIST, {"first": page_size, "after": after, **variables})
        assert "errors" not in body, body
        conn = body["data"]["customers"]  # type: ignore[index]
        nodes += [edge["node"] for edge in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("order", ["CREATED_AT_DESC", "CREATED_AT_ASC", "NAME_ASC", "NAME_DESC"])
async def test_pages_cover_every_customer_once_even_with_ties(client: GraphQLClient, order: str) -> None:
    nodes = await walk(client, 2, orderBy=order)
    assert len(nodes) == 7
    assert len({n["id"] for n in nodes}) == 7
    names = [n["name"] for n in nodes]
    if order == "NAME_ASC":
        assert names == sorted(names)
    if order == "NAME_DESC":
        assert names == sorted(names, reverse=True)


async def test_total_count_and_page_info(client: GraphQLClient) -> None:
    body = await client.query(LIST, {"first": 3})
    conn = body["data"]["customers"]  # type: ignore[index]
    assert conn["totalCount"] == 7
    assert conn["pageInfo"]["hasNextPage"] is True
    assert conn["pageInfo"]["hasPreviousPage"] is False
    assert len(conn["edges"]) == 3
    # default order: newest first
    assert conn["edges"][0]["node"]["name"] in {"Umbrella", "Hooli"}  # the three created last


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"tier": "CUSTOM"}, {"Initech"}),
        ({"tier": ["KICKSTART", "CUSTOM"]}, {"Globex", "Initech", "Umbrella"}),
        ({"status": "SUSPENDED"}, {"Initech"}),
        ({"search": "acme"}, {"Acme Robotics"}),
        ({"search": "OPS@INITECH"}, {"Initech"}),
        ({"search": "100%"}, {"Stark 100% Industries"}),  # % is literal, not a wildcard
        ({"industry": "energy"}, {"Stark 100% Industries"}),
        ({"internalTeam": True}, {"Hooli"}),
        ({"createdAt": {"from": "2026-04-11T00:00:00Z", "to": "2026-04-12T00:00:00Z"}}, {"Umbrella", "Hooli"}),
    ],
)
async def test_filters(client: GraphQLClient, flt: dict[str, Any], expected: set[str]) -> None:
    body = await client.query(LIST, {"filter": flt, "first": 100})
    assert "errors" not in body, body
    conn = body["data"]["customers"]  # type: ignore[index]
    assert {e["node"]["name"] for e in conn["edges"]} == expected
    assert conn["totalCount"] == len(conn["edges"])


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    return body["errors"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 1000}, "first"),
        ({"first": -1}, "first"),
        ({"after": "not-a-cursor"}, "after"),
        (
            {"filter": {"createdAt": {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}}},
            "filter.createdAt.from",
        ),
        (
            {"filter": {"createdAt": {"from": "2026-02-01T00:00:00Z", "preset": "LAST_7_DAYS"}}},
            "filter.createdAt.preset",
        ),
    ],
)
async def test_bad_input_names_the_argument(client: GraphQLClient, variables: dict[str, Any], field: str) -> None:
    response = await client.post(LIST, variables)
    assert response.status_code == 200
    error = error_of(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert field.split(".")[-1] in error["message"]


async def test_foreign_cursor_is_rejected(client: GraphQLClient) -> None:
    invoices = await client.query("{ invoices(first: 1) { pageInfo { endCursor } } }")
    cursor = invoices["data"]["invoices"]["pageInfo"]["endCursor"]  # type: ignore[index]
    error = error_of(await client.query(LIST, {"after": cursor}))
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    # and a customers cursor of another ordering
    by_name = await client.query(LIST, {"first": 1, "orderBy": "NAME_ASC"})
    cursor = by_name["data"]["customers"]["pageInfo"]["endCursor"]  # type: ignore[index]
    error = error_of(await client.query(LIST, {"after": cursor}))
    assert error["extensions"]["field"] == "after"


async def test_unknown_enum_value_is_a_client_error(client: GraphQLClient) -> None:
    response = await client.post(LIST, {"filter": {"tier": "PLATINUM"}})
    assert response.status_code == 200
    error = error_of(response.json())
    assert "PLATINUM" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    inline = await client.post("{ customers(orderBy: SIDEWAYS) { totalCount } }")
    assert inline.status_code == 200
    assert error_of(inline.json())["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_customer_by_id_and_node(client: GraphQLClient, dataset: dict[str, Any]) -> None:
    acme = dataset["acme"]
    first = await client.query(
        "query($id: ID!) { customer(id: $id) { id name address { city country } } }", {"id": str(acme.id)}
    )
    customer = first["data"]["customer"]  # type: ignore[index]
    assert customer["name"] == "Acme Robotics"
    assert customer["address"] == {"city": "Lyon", "country": "FR"}
    assert base64.b64decode(customer["id"]).decode() == f"Customer:{acme.id}"
    node = await client.query(
        "query($id: ID!) { node(id: $id) { __typename id ... on Customer { name } } }", {"id": customer["id"]}
    )
    assert node["data"]["node"] == {"__typename": "Customer", "id": customer["id"], "name": "Acme Robotics"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("not-a-uuid", "BAD_USER_INPUT"),
        (base64.b64encode(b"Invoice:6f1c1d0e-8a57-4c34-9f49-1f2f0e8f0c11").decode(), "BAD_USER_INPUT"),
        ("6f1c1d0e-8a57-4c34-9f49-1f2f0e8f0c11", "NOT_FOUND"),
    ],
)
async def test_customer_bad_ids(client: GraphQLClient, value: str, code: str) -> None:
    body = await client.query("query($id: ID!) { customer(id: $id) { name } }", {"id": value})
    error = error_of(body)
    assert error["extensions"]["code"] == code
    assert error["extensions"]["field"] == "id"
    assert body["data"] == {"customer": None}


async def test_nested_subscriptions_invoices_and_usage(client: GraphQLClient, dataset: dict[str, Any]) -> None:
    query = """
    query($id: ID!) { customer(id: $id) {
      subscriptions { status items { quantity price { unitAmount { amount minorUnits currency } } } customer { name } }
      invoices(first: 3) { totalCount pageInfo { hasNextPage } edges { node { amountDue { amount } status lines { description } } } }
      paid: invoices(first: 10, status: [PAID]) { totalCount }
      latestInvoice { status amountDue { minorUnits } customer { name } }
      usage(meter: "api_calls", from: "2026-01-01T00:00:00Z", to: "2026-01-31T00:00:00Z") { meter { key } total eventCount }
    } }
    """
    body = await client.query(query, {"id": str(dataset["acme"].id)})
    assert "errors" not in body, body
    c = body["data"]["customer"]  # type: ignore[index]
    assert c["subscriptions"] == [
        {
            "status": "ACTIVE",
            "items": [
                {"quantity": 7, "price": {"unitAmount": {"amount": "49.00", "minorUnits": 4900, "currency": "usd"}}}
            ],
            "customer": {"name": "Acme Robotics"},
        }
    ]
    assert c["invoices"]["totalCount"] == 6
    assert c["invoices"]["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["amountDue"]["amount"] for e in c["invoices"]["edges"]] == ["1.00", "343.00", "343.00"]
    assert c["invoices"]["edges"][1]["node"]["lines"] == [{"description": "Pro seat"}]
    assert c["paid"]["totalCount"] == 5
    assert c["latestInvoice"] == {
        "status": "OPEN",
        "amountDue": {"minorUnits": 100},
        "customer": {"name": "Acme Robotics"},
    }
    assert c["usage"] == [{"meter": {"key": "api_calls"}, "total": "15", "eventCount": 2}]


async def test_nested_invoice_pagination_continues(client: GraphQLClient, dataset: dict[str, Any]) -> None:
    query = """query($id: ID!, $after: String) { customer(id: $id) {
      invoices(first: 4, after: $after) { pageInfo { hasNextPage endCursor } edges { node { number } } } } }"""
    first = await client.query(query, {"id": str(dataset["acme"].id)})
    page1 = first["data"]["customer"]["invoices"]  # type: ignore[index]
    second = await client.query(query, {"id": str(dataset["acme"].id), "after": page1["pageInfo"]["endCursor"]})
    page2 = second["data"]["customer"]["invoices"]  # type: ignore[index]
    numbers = [e["node"]["number"] for e in page1["edges"] + page2["edges"]]
    assert len(numbers) == len(set(numbers)) == 6
    assert page2["pageInfo"]["hasNextPage"] is False


async def test_subscriptions_and_invoices_lists_filter(client: GraphQLClient, dataset: dict[str, Any]) -> None:
    acme_id = str(dataset["acme"].id)
    body = await client.query(
        """query($c: ID!) {
          subscriptions(filter: {customer: $c, status: [ACTIVE]}) { totalCount edges { node { customer { name } } } }
          invoices(filter: {customer: $c, status: [OPEN]}) { totalCount edges { node { number amountDue { amount } } } }
          all: invoices(filter: {createdAt: {from: "2026-01-01T00:00:00Z", to: "2026-02-15T00:00:00Z"}}) { totalCount }
        }""",
        {"c": acme_id},
    )
    assert "errors" not in body, body
    data = body["data"]
    assert data["subscriptions"]["totalCount"] == 1  # type: ignore[index]
    assert data["invoices"]["totalCount"] == 1  # type: ignore[index]
    assert data["invoices"]["edges"][0]["node"]["amountDue"]["amount"] == "1.00"  # type: ignore[index]
    assert data["all"]["totalCount"] == 2  # type: ignore[index]


async def test_me(client: GraphQLClient) -> None:
    body = await client.query("{ me { subject role kind } }", role=Role.FINANCE)
    assert body["data"] == {"me": {"subject": "finance@test", "role": "FINANCE", "kind": "STAFF"}}
