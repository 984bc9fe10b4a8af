"""`ledgerline health …` commands: compute every customer's health now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import Progress

from api.common.progress import progress_bar
from api.db import make_engine, make_session_factory
from api.health.service import RecomputeSummary, recompute_health

health_app = typer.Typer(help="Customer health and churn risk.", no_args_is_help=True)
console = Console(stderr=True)


async def compute_health(database_url: str, progress: Progress, now: datetime | None = None) -> RecomputeSummary:
    """Every customer's health at `now` (default: now; a naive time is UTC), with a progress bar, in
    one transaction."""
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    engine = make_engine(database_url, null_pool=True)
    task = progress.add_task("computing customer health", total=None)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await recompute_health(
                session, now, progress=lambda done, total: progress.update(task, completed=done, total=total)
            )
    finally:
        await engine.dispose()


@health_app.command("recompute")
def recompute_command() -> None:
    """Compute every customer's health now and store it as today's snapshot (replacing one stored
    earlier today); raise churn-risk alerts for customers who became high risk."""
    from api.cli import services
    from api.settings import get_settings

    with (
        services(get_settings()) as urls,
        progress_bar(console) as progress,
    ):
        summary = asyncio.run(compute_health(urls.database_url, progress))
    bands = ", ".join(f"{band.value} {count}" for band, count in summary.bands.items())
    typer.echo(
        f"computed the health of {summary.customers} customer(s) on {summary.computed_on} ({bands}); "
        f"{summary.alerts} churn-risk alert(s) raised"
    )
