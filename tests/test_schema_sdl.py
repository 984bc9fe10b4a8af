"""The committed SDL (schema.graphql) is what the code serves; regenerate with `make schema`."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

SDL = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_sdl_is_current() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.output == SDL.read_text(), "schema.graphql is stale: run `make schema` and commit it"


def test_connections_are_keyset_connections() -> None:
    sdl = SDL.read_text()
    for name in ("CustomerConnection", "SubscriptionConnection", "InvoiceConnection", "AuditEntryConnection"):
        assert f"type {name} {{" in sdl
    assert "interface Node" in sdl


def test_every_restricted_field_carries_the_requires_directive() -> None:
    sdl = SDL.read_text()
    assert "directive @requires(roles: [Role!]!, scopes: [String!]!) on FIELD_DEFINITION" in sdl
    assert 'email: String @requires(roles: [OWNER, OPERATIONS, FINANCE, SUPPORT], scopes: ["customers:read"])' in sdl
    assert "paymentMethod: PaymentMethod @requires(roles: [OWNER, FINANCE], scopes: [])" in sdl


def role_view(role: str) -> str:
    result = CliRunner().invoke(app, ["schema", "--role", role])
    assert result.exit_code == 0, result.output
    return result.output


def test_schema_as_an_analyst_sees_it_leaves_out_what_it_may_not_use() -> None:
    analyst = role_view("analyst")
    for hidden in (
        "  email:",
        "  phone:",
        "  paymentMethod:",
        "  auditEntries(",
        "  apiKeys:",
        "  securityEvents(",
    ):
        assert hidden not in analyst, f"{hidden!r} should be hidden from analysts"
    # analysts change nothing but the alerts they may see (acknowledging one)
    mutation_type = analyst[analyst.index("type Mutation {") :].split("\n}\n")[0]
    assert re.findall(r"^  (\w+)\(", mutation_type, re.MULTILINE) == ["acknowledgeAlert"]
    for visible in ("  customers(", "  invoices(", "  name: String!", "  tier: CustomerTier!"):
        assert visible in analyst


def test_schema_as_finance_and_owner() -> None:
    finance = role_view("finance")
    assert "  paymentMethod:" in finance and "  auditEntries(" in finance
    assert "  ip:" not in finance and "  apiKeys:" not in finance
    owner = role_view("OWNER")
    assert "  ip:" in owner and "createApiKey(" in owner


def test_schema_role_rejects_unknown_roles() -> None:
    result = CliRunner().invoke(app, ["schema", "--role", "intern"])
    assert result.exit_code != 0
    assert "unknown role" in result.output
