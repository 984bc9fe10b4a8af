"""`ledgerline audit …` commands."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.exc import DBAPIError

from api.audit.verify import ChainStatus, ProgressCallback, count_audit_entries_total, verify_chain
from api.common.progress import progress_bar
from api.db import make_engine, make_session_factory

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
console = Console(stderr=True)


async def _verify(database_url: str, progress: Progress) -> ChainStatus:
    engine = make_engine(database_url, null_pool=True)
    try:
        async with make_session_factory(engine)() as session:
            total = await count_audit_entries_total(session)
            task = progress.add_task("verifying audit chain", total=total)

            def report(checked: int) -> None:
                progress.update(task, completed=checked, total=max(total, checked))

            on_progress: ProgressCallback = report
            status = await verify_chain(session, on_progress=on_progress)
            progress.update(task, completed=status.entries_checked)
            return status
    finally:
        await engine.dispose()


@audit_app.command()
def verify() -> None:
    """Check every audit entry against its hash and the one before it. Exit 1 when the chain is broken."""
    # imported here: api.cli imports this module to register `audit`
    from api.cli import services
    from api.settings import get_settings

    with services(get_settings()) as urls:
        try:
            with progress_bar(console, transient=True) as progress:
                status = asyncio.run(_verify(urls.database_url, progress))
        except DBAPIError as exc:
            console.print(f"[red]cannot read the audit trail: {type(exc.orig).__name__}: {exc.orig}[/red]")
            raise typer.Exit(2) from None
    if status.ok:
        typer.echo(f"audit chain intact: {status.entries_checked} entries")
        return
    typer.echo(f"audit chain BROKEN at entry {status.first_broken_id}: {status.reason}")
    raise typer.Exit(1)
