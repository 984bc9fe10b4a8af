"""`ledgerline revenue …` commands: store daily snapshots for any range, rebuild MRR history."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from api.db import make_engine, make_session_factory
from api.revenue.daily import recompute
from api.revenue.history import backfill_history

revenue_app = typer.Typer(help="Revenue analytics: daily snapshots and MRR history.", no_args_is_help=True)


async def _recompute(database_url: str, first: date, last: date, currencies: list[str] | None) -> int:
    engine = make_engine(database_url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await recompute(session, first, last, currencies)
    finally:
        await engine.dispose()


async def _backfill(database_url: str) -> int:
    engine = make_engine(database_url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await backfill_history(session)
    finally:
        await engine.dispose()


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} must be a date such as 2026-01-31") from None


@revenue_app.command("recompute")
def recompute_command(
    from_: Annotated[str, typer.Option("--from", help="First day (UTC), e.g. 2026-01-01.")],
    to: Annotated[str | None, typer.Option("--to", help="Last day, included (default: yesterday).")] = None,
    currency: Annotated[list[str] | None, typer.Option("--currency", help="Only this currency (repeatable).")] = None,
) -> None:
    """Compute the daily revenue snapshots of closed days from the MRR history and store them
    (replacing what was stored)."""
    from api.cli import services
    from api.settings import get_settings

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = _day(from_, "--from")
    last = min(_day(to, "--to") if to else yesterday, yesterday)
    if first > last:
        raise typer.BadParameter("--from must be on or before --to (and before today)")
    currencies = [c.strip().lower() for c in currency] if currency else None
    with services(get_settings()) as urls:
        written = asyncio.run(_recompute(urls.database_url, first, last, currencies))
    typer.echo(f"stored {written} revenue day(s) from {first} to {last}")


@revenue_app.command("backfill")
def backfill_command() -> None:
    """Write an MRR history row for every subscription that has none, from its current state."""
    from api.cli import services
    from api.settings import get_settings

    with services(get_settings()) as urls:
        written = asyncio.run(_backfill(urls.database_url))
    typer.echo(f"wrote {written} MRR history row(s)")
