"""Shared helpers for the tests of Stripe-backed mutations: an emulator per module, an app
pointed at it, direct reads of what the database holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from api.audit.models import AuditEntry
from api.auth.roles import Role
from tests.conftest import GraphQLClient
from tests.stripe_emulator import EmulatorHandle

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
