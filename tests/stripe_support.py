"""Shared helpers for the tests of Stripe-backed mutations: an emulator per module, an app
pointed at it, direct reads of what the database holds."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import stripe
import uvicorn
from arq import func as arq_func
from arq.connections import RedisSettings
from arq.worker import Worker
from sqlalchemy import func, select

from api.app import create_app
from api.audit.models import AuditEntry
from api.auth.roles import Role
from schema.asgi import graphql_factory
from tests.conftest import GraphQLClient
from tests.stripe_emulator import EmulatorHandle
from workers.webhooks import process_webhook_event

# The SDK's httpx client posts raw bytes with `data=`, which httpx deprecates.
IGNORE_HTTPX_DATA_WARNING = "ignore:Use 'content=<...>':DeprecationWarning"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


def stripe_app(
    app_factory: Callable[..., GraphQLClient], db_url: str, api_base: str, **overrides: object
) -> GraphQLClient:
    return app_factory(
        db_url,
        stripe_api_base=api_base,
        stripe_secret_key="sk_test_ledgerline",
        stripe_max_network_retries=0,
        stripe_timeout_seconds=5.0,
        **overrides,
    )


async def run(
    client: GraphQLClient, document: str, variables: dict[str, Any] | None = None, *, role: Role = Role.OWNER
) -> dict[str, Any]:
    """The mutation's payload (the only root field), asserting the request itself had no error."""
    body = await client.query(document, variables, role=role)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]  # type: ignore[assignment]
    (payload,) = data.values()
    return payload  # type: ignore[no-any-return]


async def audit_count(client: GraphQLClient, action: str) -> int:
    async with client.runtime.session_factory() as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))
            ).scalar_one()
        )


async def audit_entries(client: GraphQLClient, action: str) -> list[AuditEntry]:
    async with client.runtime.session_factory() as session:
        rows = await session.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        return list(rows.scalars())


def writes(emulator: EmulatorHandle, path: str = "/v1/") -> list[dict[str, Any]]:
    """POST/DELETE requests Stripe really executed (idempotent replays left out)."""
    return [
        r
        for r in emulator.requests(path=path)
        if r["method"] in ("POST", "DELETE")
        and not r.get("idempotent_replayed")
        and not r["path"].startswith("/v1/invoices/create_preview")
    ]


def sdk(emulator: EmulatorHandle) -> stripe.StripeClient:
    """A Stripe client of the emulator's own, for changes made "in Stripe" rather than through Ledgerline."""
    return stripe.StripeClient("sk_test_direct", base_addresses={"api": emulator.url}, max_network_retries=0)


@asynccontextmanager
async def serving(client: GraphQLClient) -> AsyncIterator[int]:
    """The client's app served over real HTTP and WebSocket by uvicorn, in the test's event loop;
    yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(client.runtime, graphql_factory), lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def serving_webhooks(client: GraphQLClient, emulator: EmulatorHandle, secret: str) -> AsyncIterator[None]:
    """The app served over real HTTP with the emulator posting its signed webhooks to it; on exit
    the queue is drained so that no job outlives the test."""
    async with serving(client) as port:
        emulator.configure_webhooks(f"http://127.0.0.1:{port}/webhooks/stripe", secret)
        try:
            yield
        finally:
            emulator.configure_webhooks(None)
            await drain(client)


async def deliver(emulator: EmulatorHandle) -> None:
    assert await asyncio.to_thread(emulator.flush_webhooks, 30)


async def run_worker(client: GraphQLClient, functions: list[Any], **ctx: Any) -> Worker:
    """A burst worker on the client's runtime (plus `ctx`) that runs every queued job of
    `functions` (deferred retries included) to the end."""
    assert client.settings.redis_url is not None
    worker = Worker(
        functions=functions,
        redis_settings=RedisSettings.from_dsn(client.settings.redis_url),
        burst=True,
        poll_delay=0,
        handle_signals=False,
        ctx={"runtime": client.runtime, **ctx},
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def drain(client: GraphQLClient) -> Worker:
    """Every queued webhook job, run to the end."""
    return await run_worker(client, [arq_func(process_webhook_event, max_tries=50, keep_result=0)])


async def deliver_and_process(client: GraphQLClient, emulator: EmulatorHandle) -> None:
    await deliver(emulator)
    await drain(client)


async def declined_invoice(client: GraphQLClient, emulator: EmulatorHandle, stripe_customer: str) -> str:
    """An invoice of 42.00 made in Stripe whose payment the customer's card declines; its webhooks
    are processed. Its Stripe id."""
    s = sdk(emulator).v1
    await s.invoice_items.create_async({"customer": stripe_customer, "amount": 4200, "currency": "usd"})
    invoice = await s.invoices.create_async(
        {"customer": stripe_customer, "auto_advance": False, "pending_invoice_items_behavior": "include"}
    )
    assert invoice.id is not None
    await s.invoices.finalize_invoice_async(invoice.id)
    try:
        await s.invoices.pay_async(invoice.id)
    except stripe.CardError:
        pass
    else:
        raise AssertionError("the payment should have been declined")
    await deliver_and_process(client, emulator)
    return invoice.id
