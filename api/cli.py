"""The `ledgerline` command.

The API and the worker are started by reference (`schema.asgi:create_asgi_app`,
`workers.settings:WorkerSettings`): this core package does not import its edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from api.audit.cli import audit_app
from api.auth.roles import Role
from api.auth.tokens import issue_token, parse_ttl
from api.common.progress import progress_bar
from api.embedded import Services, embedded_services
from api.export.cli import export_command, filters_help
from api.health.cli import compute_health, health_app
from api.revenue.cli import revenue_app
from api.settings import Settings, get_settings

if TYPE_CHECKING:
    from api.mail.sink import SmtpSink

app = typer.Typer(
    help="Ledgerline: the GraphQL back office (customers, subscriptions, invoices, usage, audit).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
app.add_typer(audit_app, name="audit")
app.add_typer(revenue_app, name="revenue")
app.command("export", epilog=f"Filters per dataset:\n\n{filters_help()}")(export_command)
app.add_typer(health_app, name="health")

ASGI_FACTORY = "schema.asgi:create_asgi_app"
WORKER_SETTINGS = "workers.settings:WorkerSettings"
SDL_PRINTER = "schema.schema:print_sdl"


def _entry(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def services(settings: Settings) -> Iterator[Services]:
    """The configured PostgreSQL/Redis, or embedded ones under DATA_DIR (stopped on exit).
    Their URLs are exported so that child processes (uvicorn workers, the arq worker) use them."""
    if settings.uses_embedded_postgres or settings.uses_embedded_redis:
        console.print(f"[dim]starting embedded PostgreSQL/Redis in {settings.data_dir.resolve()} …[/dim]")
    with embedded_services(settings.data_dir, settings.database_url, settings.redis_url) as urls:
        os.environ["DATABASE_URL"] = urls.database_url
        os.environ["REDIS_URL"] = urls.redis_url
        get_settings.cache_clear()
        yield urls


def _migrate(database_url: str) -> None:
    from api.migrate import upgrade

    upgrade(database_url)


def _seed(database_url: str, customers: int, seed: int, now: datetime | None = None) -> None:
    from api.seed import seed_demo_data

    with progress_bar(console, label_width=24) as progress:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        summary = asyncio.run(seed_demo_data(database_url, customers=customers, seed=seed, now=now, progress=report))
        # the demo shows health right away rather than after the nightly job
        asyncio.run(compute_health(database_url, progress, now))
    console.print(
        f"seeded {summary.customers} customers, {summary.subscriptions} subscriptions, {summary.invoices} invoices, "
        f"{summary.usage_events} usage events, {summary.audit_entries} audit entries in {summary.seconds:.1f}s"
    )


def _database_is_empty(database_url: str) -> bool:
    from api.seed import database_is_empty

    return asyncio.run(database_is_empty(database_url))


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to the newest."""
    with services(get_settings()) as urls:
        _migrate(urls.database_url)
        console.print("[green]database is up to date[/green]")


@app.command()
def seed(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to create.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    now: Annotated[datetime | None, typer.Option(help="Pretend today is this date (default: today, UTC).")] = None,
) -> None:
    """Fill an empty database with realistic demo data."""
    with services(get_settings()) as urls:
        _migrate(urls.database_url)
        if not _database_is_empty(urls.database_url):
            console.print("[red]the database already has customers; seed only fills an empty database[/red]")
            raise typer.Exit(1)
        _seed(urls.database_url, customers, seed, now)


@app.command()
def token(
    role: Annotated[str, typer.Option(help="owner, operations, finance, support or analyst.")],
    subject: Annotated[str | None, typer.Option(help="The `sub` claim (default: ROLE@ledgerline.local).")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 30m, 8h, 2d.")] = "8h",
) -> None:
    """Print a bearer token (HS256, signed with JWT_SECRET) for a staff role. Only the token."""
    try:
        parsed_role = Role.parse(role)
        seconds = parse_ttl(ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(issue_token(get_settings(), subject or f"{parsed_role.value}@ledgerline.local", parsed_role, seconds))


@app.command()
def schema(
    role: Annotated[
        str | None, typer.Option(help="Print the schema as this role sees it (what it may not use is left out).")
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL); every restricted field and operation carries @requires."""
    try:
        parsed = Role.parse(role) if role else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(_entry(SDL_PRINTER)(role=parsed), nl=False)


@app.command()
def serve(
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the API (uvicorn) on HOST:PORT."""
    import uvicorn

    settings = get_settings()
    with services(settings):
        uvicorn.run(
            ASGI_FACTORY,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            lifespan="on",
        )


@app.command()
def worker() -> None:
    """Run the arq worker (metering, dunning, webhooks and the other background jobs)."""
    from arq.worker import run_worker

    with services(get_settings()):
        redis_settings = _entry("workers.settings:redis_settings")()
        run_worker(_entry(WORKER_SETTINGS), redis_settings=redis_settings)


def _print_banner(settings: Settings, stripe_emulator: str | None = None, smtp_sink: str | None = None) -> None:
    base = f"http://{settings.host}:{settings.port}"
    console.print()
    console.rule("[bold green]Ledgerline is running")
    console.print(f"GraphiQL:  [bold]{base}/graphql[/bold]   (paste a header below into its Headers tab)")
    console.print(f"Health:    {base}/healthz   Ready: {base}/readyz   Metrics: {base}/metrics")
    if stripe_emulator:
        console.print(f"Stripe:    local emulator at {stripe_emulator} (signed webhooks → {base}/webhooks/stripe)")
    else:
        console.print(f"Stripe:    {settings.stripe_api_base or 'api.stripe.com'} (webhooks → {base}/webhooks/stripe)")
    if smtp_sink:
        console.print(f"Email:     local SMTP sink at {smtp_sink} (each email is printed here)")
    console.print("Tokens (valid 8 h):")
    for role in Role:
        jwt = issue_token(settings, f"{role.value}@ledgerline.local", role)
        console.print(f"  [bold]{role.value:<10}[/bold] " + '{"Authorization": "Bearer ' + jwt + '"}', soft_wrap=True)
    console.print("Press Ctrl-C to stop (PostgreSQL and Redis stop with it).")
    console.rule()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60, what: str = "the API") -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up; see its log above")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready at {url}")


EMULATOR_MODULE = "tests.stripe_emulator"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _start_stripe_emulator(settings: Settings) -> tuple[subprocess.Popen[bytes], str] | None:
    """With neither STRIPE_SECRET_KEY nor STRIPE_API_BASE: the local Stripe emulator (test
    tooling kept in tests/) on a free port, posting signed webhooks to this API. Its URL is
    exported as STRIPE_API_BASE for the API and worker started after it."""
    if settings.stripe_secret_key or settings.stripe_api_base:
        return None
    if importlib.util.find_spec(EMULATOR_MODULE.split(".")[0]) is None:
        console.print("[yellow]no Stripe configured and the emulator (tests/) is not here: Stripe calls fail[/yellow]")
        return None
    host = "127.0.0.1"
    port = _free_port(host)
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    command = [
        *(sys.executable, "-m", EMULATOR_MODULE, "--host", host, "--port", str(port)),
        *("--webhook-url", f"http://{api_host}:{settings.port}/webhooks/stripe"),
        *("--webhook-secret", settings.stripe_webhook_secret),
        *("--log-level", "warning"),
    ]
    process = subprocess.Popen(command)
    url = f"http://{host}:{port}"
    _wait_ready(f"{url}/_emulator/health", process, what="the Stripe emulator")
    os.environ["STRIPE_API_BASE"] = url
    get_settings.cache_clear()
    return process, url


def _start_smtp_sink(settings: Settings) -> SmtpSink | None:
    """With SMTP_URL unset: a local SMTP server that accepts every email and prints who it was
    for, so the demo's dunning and trial emails can be watched offline. Its URL is exported as
    SMTP_URL for the API and worker started after it."""
    if settings.smtp_url:
        return None
    from api.mail.sink import Received, SmtpSink

    def show(received: Received) -> None:
        console.print(f"[cyan]email[/cyan] to {', '.join(received.recipients)}: {received.subject}")

    sink = SmtpSink(on_message=show).start()
    os.environ["SMTP_URL"] = sink.url
    get_settings.cache_clear()
    return sink


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@app.command()
def run(
    seed_customers: Annotated[
        int | None, typer.Option(help="Customers to seed into an empty database (default SEED_CUSTOMERS).")
    ] = None,
) -> None:
    """Everything on one machine: embedded PostgreSQL and Redis, migrations, demo data, API and worker."""
    settings = get_settings()

    def terminate(signum: int, _: Any) -> None:
        raise KeyboardInterrupt

    # set explicitly: a process started in the background may inherit SIGINT as ignored
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
    processes: list[subprocess.Popen[bytes]] = []
    emulator: list[subprocess.Popen[bytes]] = []
    sink: SmtpSink | None = None
    with services(settings) as urls:
        try:
            _migrate(urls.database_url)
            if _database_is_empty(urls.database_url):
                console.print("empty database: seeding demo data")
                _seed(urls.database_url, seed_customers or settings.seed_customers, 42)
            started = _start_stripe_emulator(settings)
            emulator_url = None
            if started is not None:
                emulator.append(started[0])
                emulator_url = started[1]
            sink = _start_smtp_sink(settings)
            cli = [sys.executable, "-m", "api.cli"]
            processes.append(subprocess.Popen([*cli, "serve"]))
            processes.append(subprocess.Popen([*cli, "worker"]))
            _wait_ready(f"http://{settings.host}:{settings.port}/readyz", processes[0])
            _print_banner(get_settings(), emulator_url, sink.url if sink is not None else None)
            while all(p.poll() is None for p in [*processes, *emulator]):
                time.sleep(0.5)
            console.print("[red]a Ledgerline process stopped unexpectedly; shutting down[/red]")
            raise typer.Exit(1)
        except KeyboardInterrupt:
            console.print("\nstopping …")
        finally:
            # the API and worker first, then the Stripe emulator, then (leaving the `with`) Redis and PostgreSQL
            _stop(processes)
            _stop(emulator)
            if sink is not None:
                sink.stop()
    console.print("stopped: API, worker, Stripe emulator, email sink, PostgreSQL and Redis are down")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
