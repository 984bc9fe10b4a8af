"""HTTP behaviour: authentication, GraphiQL, health/readiness/metrics, request ids, limits, masking."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import text

from api.embedded import free_port
from tests.conftest import GraphQLClient

ME = "{ me { subject role } }"


@pytest.fixture
def client(app_factory: Callable[..., GraphQLClient], database_url: str) -> GraphQLClient:
    return app_factory(database_url)


def signed(client: GraphQLClient, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "someone@test",
        "role": "owner",
        "iss": client.settings.jwt_issuer,
        "aud": client.settings.jwt_audience,
        "exp": now + 600,
    }
    base.update(claims)
    payload = {k: v for k, v in base.items() if v is not None}
    return jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(client.settings.jwt_secret))


@pytest.mark.parametrize(
    ("make_header", "says"),
    [
        (lambda c: None, "missing Authorization header"),
        (lambda c: "Basic abc", "must be `Bearer <token>`"),
        (lambda c: "Bearer not.a.jwt", "malformed"),
        (lambda c: "Bearer PASTE_A_TOKEN_FROM_make_run", "`make run` prints one per role"),
        (lambda c: "Bearer " + signed(c, exp=int(time.time()) - 3600), "expired"),
        (lambda c: "Bearer " + signed(c, aud="someone-else"), "audience"),
        (lambda c: "Bearer " + signed(c, iss="evil"), "issuer"),
        (lambda c: "Bearer " + signed(c, role="emperor"), "unknown role"),
        (lambda c: "Bearer " + signed(c, role=None), "'role' claim"),
        (lambda c: "Bearer " + signed(c)[:-6] + "AAAAAA", "signature"),
    ],
)
async def test_bad_tokens_get_401_saying_why(
    client: GraphQLClient, make_header: Callable[[GraphQLClient], str | None], says: str
) -> None:
    header = make_header(client)
    response = await client.post(ME, headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert says in error["message"]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_valid_token_is_accepted(client: GraphQLClient) -> None:
    response = await client.post(ME, headers={"Authorization": "Bearer " + signed(client, role="Support")})
    assert response.status_code == 200
    assert response.json()["data"] == {"me": {"subject": "someone@test", "role": "SUPPORT"}}


async def test_graphiql_page_is_served_without_auth_and_without_cdn(client: GraphQLClient) -> None:
    page = await client.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "Ledgerline GraphiQL" in page.text
    assert "https://" not in page.text and "http://" not in page.text
    asset = await client.http.get("/graphiql/assets/graphiql.min.js")
    assert asset.status_code == 200


async def test_health_ready_metrics_and_request_id(client: GraphQLClient) -> None:
    assert (await client.http.get("/healthz")).json() == {"status": "ok"}
    ready = await client.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    response = await client.post(ME, headers={**client_auth(client), "X-Request-ID": "trace-0123456789"})
    assert response.headers["x-request-id"] == "trace-0123456789"
    metrics = (await client.http.get("/metrics")).text
    assert 'ledgerline_http_requests_total{method="POST",route="/graphql",status="200"}' in metrics


def client_auth(client: GraphQLClient) -> dict[str, str]:
    return {"Authorization": "Bearer " + signed(client)}


async def test_readyz_names_what_is_down(app_factory: Callable[..., GraphQLClient], database_url: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    client = app_factory(database_url)
    client.runtime.redis = type(client.runtime.redis).from_url(closed, socket_connect_timeout=0.5)
    ready = await client.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis"]
    await client.runtime.redis.aclose()


async def test_unexpected_errors_are_masked_with_request_id(
    app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]
) -> None:
    broken = make_database()
    client = app_factory(broken)
    async with client.runtime.engine.begin() as conn:
        await conn.execute(text("DROP TABLE customer CASCADE"))
    response = await client.post("{ me { subject } customers { totalCount } }", headers=client_auth(client))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"me": {"subject": "someone@test"}, "customers": None}  # the rest is intact
    error = body["errors"][0]
    assert error["message"] == "Internal error"
    assert error["path"] == ["customers"]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": response.headers["x-request-id"]}
    assert "customer" not in error["message"] and "Traceback" not in response.text and "SELECT" not in response.text


async def test_database_down_gives_a_masked_error_and_readyz_says_so(
    app_factory: Callable[..., GraphQLClient], database_url: str
) -> None:
    client = app_factory(database_url.rsplit("/", 1)[0] + "/no_such_database")
    response = await client.post("{ me { subject } }", headers=client_auth(client))
    assert response.status_code == 500
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": response.headers["x-request-id"]}
    assert "no_such_database" not in response.text
    ready = await client.http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failing"] == ["postgresql"]


async def test_depth_alias_and_token_limits(app_factory: Callable[..., GraphQLClient], database_url: str) -> None:
    client = app_factory(database_url, max_query_depth=4, max_aliases=3, max_query_tokens=200)
    deep = "{ customers { edges { node { subscriptions { customer { name } } } } } }"
    body = (await client.post(deep, headers=client_auth(client))).json()
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    aliases = "{ a: me { subject } b: me { subject } c: me { subject } d: me { subject } }"
    body = (await client.post(aliases, headers=client_auth(client))).json()
    assert "aliases" in body["errors"][0]["message"]
    huge = "{ " + " ".join("me { subject }" for _ in range(60)) + " }"
    body = (await client.post(huge, headers=client_auth(client))).json()
    assert "token" in body["errors"][0]["message"].lower()
