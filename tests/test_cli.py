"""The `ledgerline` command: tokens, and the worker's jobs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.auth.roles import Role
from api.auth.tokens import TokenVerifier
from api.cli import app
from api.settings import Settings

runner = CliRunner()


@pytest.mark.parametrize("role", list(Role))
async def test_token_prints_only_a_token_that_verifies(role: Role) -> None:
    result = runner.invoke(app, ["token", "--role", role.value.upper(), "--ttl", "30m"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token and token.count(".") == 2
    principal = await TokenVerifier(Settings()).verify(token)
    assert principal.role is role
    assert principal.subject == f"{role.value}@ledgerline.local"


@pytest.mark.parametrize(
    ("args", "says"), [(["--role", "boss"], "unknown role"), (["--role", "owner", "--ttl", "soon"], "invalid ttl")]
)
def test_token_rejects_bad_options(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["token", *args])
    assert result.exit_code != 0
    assert says in result.output
