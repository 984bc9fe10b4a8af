"""N+1 must not happen: the dashboard query costs the same number of SQL statements for 5
customers as for 100 (DataLoaders batch every nested field)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asyncpg.connection import LoggedQuery
from sqlalchemy import event

from api.db import make_engine, make_session_factory
from tests.conftest import GraphQLClient
from tests.factories import BASE_TIME, Builder

DASHBOARD = """
query($first: Int) { customers(first: $first) { edges { node {
  subscriptions { items { price { unitAmount { amount } } } }
  invoices(first: 3) { edges { node { amountDue { amount } } } }
} } } }
"""


@pytest.fixture(scope="module")
async def hundred_customers_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    engine = make_engine(url, null_pool=True)
    async with make_session_factory(engine)() as session, session.begin():
        b = Builder(session)
        prices = [await b.product_and_price(unit_amount=1000 * (i + 1)) for i in range(3)]
        for i in range(110):
            customer = await b.customer(f"Customer {i:03d}")
            await b.subscription(customer, prices[i % 3], quantity=i % 5 + 1)
            for month in range(4):
                await b.invoice(customer, amount=1000 + i, created_at=BASE_TIME + timedelta(days=30 * month))
    await engine.dispose()
    return url


async def statements_of(client: GraphQLClient, first: int, query: str = DASHBOARD) -> tuple[list[str], dict[str, Any]]:
    """Every statement sent to PostgreSQL while the query runs: through SQLAlchemy, and straight
    through the driver on pooled connections (api.common.reads)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def record_driver(logged: LoggedQuery) -> None:
        statements.append(logged.query)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(record_driver)

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(record_driver)

    sync_engine = client.runtime.engine.sync_engine
    listeners = [
        (sync_engine, "before_cursor_execute", record),
        (sync_engine.pool, "checkout", on_checkout),
        (sync_engine.pool, "checkin", on_checkin),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        body = await client.query(query, {"first": first})
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)
    assert "errors" not in body, body
    return statements, body


async def test_statement_count_does_not_grow_with_page_size(
    app_factory: Callable[..., GraphQLClient], hundred_customers_url: str
) -> None:
    # one pooled connection, warmed up: the first request records the login (in a session of its
    # own); the second lets the driver look up the codec of an array type, which it does once per
    # connection (a statement of its own) and which is not part of what a request costs
    client = app_factory(hundred_customers_url, db_pool_size=1)
    await client.query("{ me { subject } }")
    await client.query(DASHBOARD, {"first": 1})
    small, small_body = await statements_of(client, 5)
    large, large_body = await statements_of(client, 100)
    edges = large_body["data"]["customers"]["edges"]
    assert len(edges) == 100
    assert all(len(e["node"]["invoices"]["edges"]) == 3 for e in edges)
    assert all(e["node"]["subscriptions"][0]["items"][0]["price"] for e in edges)
    assert len(small_body["data"]["customers"]["edges"]) == 5
    # the caller's staff record (overrides, revocation), then customers, subscriptions, items,
    # prices, invoices: one statement each
    assert len(small) == len(large) == 6


NESTED = """
subscriptions { status items { quantity price { nickname unitAmount { amount } } } }
paid: invoices(first: 2, status: [PAID, OPEN]) { edges { cursor node { number amountDue { amount } } } }
invoices(first: 1) { pageInfo { hasNextPage endCursor } edges { node { status } } }
"""


async def test_prefetched_page_answers_as_the_loaders_do(
    app_factory: Callable[..., GraphQLClient], hundred_customers_url: str
) -> None:
    """`customers` loads what its nodes ask for with the page (a look-ahead); behind a fragment
    the look-ahead does not see the fields and the DataLoaders load them: same answer."""
    client = app_factory(hundred_customers_url)
    direct = await client.query(f"{{ customers(first: 20) {{ edges {{ node {{ {NESTED} }} }} }} }}")
    hidden = await client.query(
        f"{{ customers(first: 20) {{ edges {{ node {{ ...F }} }} }} }} fragment F on Customer {{ {NESTED} }}"
    )
    assert "errors" not in direct, direct
    assert direct == hidden
    edges: Any = direct["data"]
    assert len(edges["customers"]["edges"]) == 20
    assert all(e["node"]["subscriptions"][0]["items"][0]["price"]["unitAmount"] for e in edges["customers"]["edges"])


async def test_bad_nested_argument_is_reported_at_its_field(
    app_factory: Callable[..., GraphQLClient], hundred_customers_url: str
) -> None:
    client = app_factory(hundred_customers_url)
    body: Any = await client.query(
        "{ customers(first: 2) { edges { node { invoices(first: 500) { edges { cursor } } } } } }"
    )
    assert [e["path"] for e in body["errors"]] == [
        ["customers", "edges", 0, "node", "invoices"],
        ["customers", "edges", 1, "node", "invoices"],
    ]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert [e["node"]["invoices"] for e in body["data"]["customers"]["edges"]] == [None, None]
