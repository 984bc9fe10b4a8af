"""Offline GraphiQL page: everything is served locally from an allow-list."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.graphiql import graphiql_asset_dir, graphiql_asset_routes, graphiql_html

PREFIX = "/graphiql/assets"


class _AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.refs.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.refs.append(values["href"] or "")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


async def _graphql(request: Request) -> HTMLResponse:
    return HTMLResponse(graphiql_html())


@pytest.fixture()
def client() -> TestClient:
    app = Starlette(routes=[*graphiql_asset_routes(PREFIX), Route("/graphql", _graphql)])
    return TestClient(app)


def _page(client: TestClient) -> _AssetRefs:
    response = client.get("/graphql")
    assert response.status_code == 200
    parser = _AssetRefs()
    parser.feed(response.text)
    return parser


def test_page_references_only_local_assets(client: TestClient) -> None:
    page = _page(client)
    assert page.title == "Ledgerline GraphiQL"
    assert len(page.refs) >= 5
    for ref in page.refs:
        assert not ref.lower().startswith(("http://", "https://", "//")), ref
        assert urlsplit(ref).path.startswith(PREFIX + "/"), ref
    html = client.get("/graphql").text
    assert "isHeadersEditorEnabled: true" in html
    assert "shouldPersistHeaders: true" in html
    assert "Bearer PASTE_A_TOKEN_FROM_make_run" in html
    assert "customers(first: 10)" in html


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [(".js", "text/javascript"), (".css", "text/css")],
)
def test_referenced_assets_are_served(client: TestClient, suffix: str, content_type: str) -> None:
    refs = [ref for ref in _page(client).refs if urlsplit(ref).path.endswith(suffix)]
    assert refs
    for ref in refs:
        response = client.get(ref)
        assert response.status_code == 200, ref
        assert response.headers["content-type"].split(";")[0] == content_type
        assert "max-age=31536000" in response.headers["cache-control"]
        name = urlsplit(ref).path.rsplit("/", 1)[1]
        assert response.content == (graphiql_asset_dir() / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}/nope.js",
        f"{PREFIX}/views.py",  # exists in the wheel, but not allow-listed
        f"{PREFIX}/",
        f"{PREFIX}/..%2F..%2F__init__.py",
        f"{PREFIX}/%2e%2e/%2e%2e/views.py",
        f"{PREFIX}/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        f"{PREFIX}/../templates/graphene_django_graphiql_static/graphiql_mod.html",
    ],
)
def test_unknown_or_traversal_is_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_custom_endpoint_and_prefix_are_escaped() -> None:
    html = graphiql_html(endpoint="/api/</script><b>", asset_prefix="/static/x/")
    assert "</script><b>" not in html
    assert 'src="/static/x/graphiql.min.js?v=' in html
