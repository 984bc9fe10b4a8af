"""`ledgerline export DATASET [NAME=VALUE ...]`: the HTTP export, in-process, as a given role.

The command talks to the database directly (whoever runs it can read everything there), so the
role does not protect data: it shapes the file for whoever receives it, with the columns and
rows that role may read. The default is `owner` (everything). A file is written next to its
target and renamed into place when complete: a failed export leaves no partial file. Like the
HTTP export it leaves an audit entry, naming the operating-system user and the role.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import Progress

from api.audit.record import Actor
from api.auth.permissions import role_capabilities
from api.auth.roles import Role
from api.common.progress import progress_bar
from api.db import make_engine, make_session_factory
from api.errors import Forbidden, Invalid
from api.export.encode import FORMATS, Format, encoded, encoder
from api.export.registry import DATASETS
from api.export.run import ExportJob, check_allowed, open_export, plan_export, record_export

console = Console(stderr=True)


def filters_help() -> str:
    """Each dataset's filters, for `ledgerline export --help`."""
    return "\n\n".join(f"{name}: {', '.join(p.name for p in d.params)}" for name, d in DATASETS.items())


def _pairs(filters: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"filters are NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def cli_actor(role: Role) -> Actor:
    """Who the audit entry names: the operating-system user, with the role the file was shaped for."""
    return Actor(subject=f"cli:{getpass.getuser()}", role=role.value, api_key_id=None)


async def _write(
    database_url: str, job: ExportJob, kind: Format, actor: Actor, out: TextIO, progress: Progress
) -> tuple[int, str]:
    engine = make_engine(database_url, null_pool=True)
    try:
        session_factory = make_session_factory(engine)
        await record_export(session_factory, actor, job, kind)
        async with open_export(session_factory, job) as rows:
            task = progress.add_task(f"exporting {job.dataset.name}", total=await rows.count())
            written = 0

            def advance(count: int) -> None:
                nonlocal written
                written += count
                progress.update(task, completed=written)

            async for chunk in encoded(rows.batches, encoder(kind, job.column_names), advance):
                out.write(chunk)
            return written, rows.as_of.isoformat()
    finally:
        await engine.dispose()


def _run_to(output: Path | None, write: Callable[[TextIO], tuple[int, str]]) -> tuple[int, str]:
    if output is None:
        return write(sys.stdout)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            result = write(out)
        os.replace(partial, output)
        return result
    finally:
        partial.unlink(missing_ok=True)


def export_command(
    dataset: Annotated[str, typer.Argument(help=f"What to export: {', '.join(DATASETS)}.")],
    filters: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NAME=VALUE]...", help="Filters, as the HTTP export's query parameters (README)."),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    role: Annotated[str, typer.Option(help="Export what this role may read (columns and rows).")] = "owner",
) -> None:
    """Export a dataset as CSV or JSON, as a role sees it, with a progress bar (on stderr)."""
    from api.cli import services
    from api.settings import get_settings

    chosen = DATASETS.get(dataset)
    if chosen is None:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if format not in FORMATS:
        raise typer.BadParameter("--format must be csv or json")
    kind: Format = "csv" if format == "csv" else "json"
    try:
        chosen_role = Role.parse(role)
        capabilities = role_capabilities(chosen_role)
        check_allowed(chosen, capabilities)
        job = plan_export(chosen, _pairs(filters or []), capabilities)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except Invalid as exc:
        raise typer.BadParameter(f"{exc.message}") from None
    except Forbidden as exc:
        console.print(f"[red]{role}: {exc.message} (roles that may: {', '.join(exc.extra['requiredRoles'])})[/red]")
        raise typer.Exit(1) from None
    with (
        services(get_settings()) as urls,
        progress_bar(console) as progress,
    ):
        actor = cli_actor(chosen_role)
        written, as_of = _run_to(
            output, lambda out: asyncio.run(_write(urls.database_url, job, kind, actor, out, progress))
        )
    withheld = f"; withheld for {role}: {', '.join(job.withheld)}" if job.withheld else ""
    console.print(f"{written} {chosen.name} rows as of {as_of} → {output or 'stdout'}{withheld}")
