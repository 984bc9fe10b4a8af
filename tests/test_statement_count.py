"""N+1 must not happen: the dashboard query costs the same number of SQL statements for 5
customers as for 100 (DataLoaders batch every nested field)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
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


async def count_statements(client: GraphQLClient, first: int, query: str = DASHBOARD) -> tuple[int, dict[str, Any]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sync_engine = client.runtime.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        body = await client.query(query, {"first": first})
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)
    assert "errors" not in body, body
    return len(statements), body


async def test_statement_count_does_not_grow_with_page_size(
    app_factory: Callable[..., GraphQLClient], hundred_customers_url: str
) -> None:
    client = app_factory(hundred_customers_url)
    await client.query("{ me { subject } }")  # warm up the connection pool
    small, small_body = await count_statements(client, 5)
    large, large_body = await count_statements(client, 100)
    edges = large_body["data"]["customers"]["edges"]
    assert len(edges) == 100
    assert all(len(e["node"]["invoices"]["edges"]) == 3 for e in edges)
    assert all(e["node"]["subscriptions"][0]["items"][0]["price"] for e in edges)
    assert len(small_body["data"]["customers"]["edges"]) == 5
    # the caller's staff record (overrides, revocation), then customers, subscriptions, items,
    # prices, invoices: one statement each
    assert small == large == 6
