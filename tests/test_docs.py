"""The README documents what the code does: every setting, every CLI command."""

from __future__ import annotations

from pathlib import Path

from api.cli import app
from api.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    top = "\n".join(README.splitlines()[:15])
    assert "make run" in top and "make test" in top


def test_every_setting_is_documented_with_its_default() -> None:
    for name, field in Settings.model_fields.items():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{name.upper()}` |")), None)
        assert row is not None, f"README configuration table lacks {name.upper()}"
        if field.default is not None and name != "jwt_secret":
            assert f"| {field.default} |" in row, f"README default of {name.upper()} differs from the code"


def test_every_cli_command_is_documented() -> None:
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        assert f"`ledgerline {name}" in README, f"README does not document `ledgerline {name}`"
