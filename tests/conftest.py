"""Session fixtures: a real embedded PostgreSQL and Redis; databases built by the Alembic
migrations (once, into a template that each fresh database is copied from)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth.roles import Role
from api.auth.tokens import issue_token
from api.db import sync_url
from api.embedded import embedded_services
from api.migrate import upgrade
from api.runtime import Runtime
from api.settings import Settings, get_settings

TEMPLATE_DATABASE = "ledgerline_template"


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin_async(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(sync_url(_with_database(url, "postgres")))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _admin(url: str, *statements: str) -> None:
    """Runs maintenance statements on the `postgres` database; callable from sync or async code
    (its own event loop, in a thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin_async(url, *statements)).result()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(server url, redis url): embedded servers in a temporary directory."""
    data_dir = Path(tmp_path_factory.mktemp("ledgerline"))
    with embedded_services(data_dir, durable=False) as urls:
        template = _with_database(urls.database_url, TEMPLATE_DATABASE)
        _admin(urls.database_url, f"CREATE DATABASE {TEMPLATE_DATABASE}")
        upgrade(template)
        yield urls.database_url, urls.redis_url


@pytest.fixture(scope="session")
def make_database(services: tuple[str, str]) -> Iterator[Callable[[], str]]:
    """Creates a fresh, migrated database (a copy of the template) and returns its URL."""
    created: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        _admin(services[0], f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DATABASE}")
        created.append(name)
        return _with_database(services[0], name)

    yield make
    _admin(services[0], *(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in created))


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
def redis_url(services: tuple[str, str]) -> str:
    return services[1]


def make_settings(database_url: str, redis_url: str, **overrides: object) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, log_format="text", **overrides)  # type: ignore[arg-type]


def bearer(settings: Settings, role: Role = Role.OWNER, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, subject or f'{role.value}@test', role)}"}


class GraphQLClient:
    """Talks to the app over HTTP (ASGI transport) exactly as a frontend does."""

    def __init__(self, http: httpx.AsyncClient, runtime: Runtime) -> None:
        self.http = http
        self.runtime = runtime
        self.settings = runtime.settings

    async def post(
        self,
        query: str,
        variables: dict[str, object] | None = None,
        *,
        role: Role = Role.OWNER,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers if headers is not None else bearer(self.settings, role),
        )

    async def query(
        self, query: str, variables: dict[str, object] | None = None, *, role: Role = Role.OWNER
    ) -> dict[str, object]:
        response = await self.post(query, variables, role=role)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
async def app_factory(redis_url: str) -> AsyncIterator[Callable[[str], GraphQLClient]]:
    """Builds the real application for a database and returns an HTTP GraphQL client on it."""
    from api.app import create_app
    from schema.asgi import graphql_factory

    runtimes: list[Runtime] = []
    clients: list[httpx.AsyncClient] = []

    def build(db_url: str, **overrides: object) -> GraphQLClient:
        settings = make_settings(db_url, redis_url, **overrides)
        runtime = Runtime.create(settings)
        runtimes.append(runtime)
        app = create_app(runtime, graphql_factory)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledgerline.test")
        clients.append(http)
        return GraphQLClient(http, runtime)

    yield build
    for client in clients:
        await client.aclose()
    for runtime in runtimes:
        await runtime.close()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[Callable[[str], None]]:
    """Points the `ledgerline` command (run in-process by CliRunner) at a test database."""

    def point_at(url: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("REDIS_URL", redis_url)
        get_settings.cache_clear()

    yield point_at
    get_settings.cache_clear()
