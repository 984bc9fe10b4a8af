"""The committed SDL (schema.graphql) is what the code serves; regenerate with `make schema`."""

from __future__ import annotations

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
