"""Offline GraphiQL page: everything is served locally from an allow-list."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any
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


# --- the page's own script, run in a JavaScript engine with the libraries stubbed -------------------

STUBS = """
var location = {protocol: "http:", host: "ledgerline.test:8000"};
var window = {};
var document = {getElementById: function (id) { return {id: id}; }};
var rendered = null;
var React = {
  createElement: function (type, props) { return {type: type, props: props}; },
  useState: function (initial) { return [initial, function () {}]; }
};
var ReactDOM = {render: function (element) { rendered = element; }};
var GraphiQL = function () {};
var clients = [], subscribed = [], sink = null, unsubscribed = 0, disposed = 0, posted = [];
var graphqlWs = {createClient: function (options) {
  clients.push(options);
  return {
    subscribe: function (payload, s) { subscribed.push(payload); sink = s; return function () { unsubscribed++; }; },
    dispose: function () { disposed++; }
  };
}};
function fetch(url, init) {
  posted.push({url: url, method: init.method, body: JSON.parse(init.body), auth: init.headers.Authorization});
  return Promise.resolve({status: 200, text: function () { return Promise.resolve('{"data": {"me": null}}'); }});
}
var seen = [];
function collect(events, count) {
  var iterator = events[Symbol.asyncIterator]();
  function step(n) {
    if (n === 0) return;
    iterator.next().then(function (item) { seen.push(item); if (!item.done) step(n - 1); });
  }
  step(count);
}
"""

SUBSCRIPTION = "subscription Live { alertRaised { id } }"
LIVE_DOCUMENT = (
    '{"definitions": [{"kind": "OperationDefinition", "operation": "subscription", "name": {"value": "Live"}}]}'
)


def _page_script() -> str:
    page = graphiql_html()
    start = page.rindex("<script>") + len("<script>")
    return page[start : page.index("</script>", start)]


@pytest.fixture
def js() -> Any:
    from py_mini_racer import MiniRacer

    engine = MiniRacer()
    engine.eval(STUBS)
    engine.eval(_page_script())
    engine.eval("var fetcher = rendered.type().props.fetcher;")
    return engine


def _json(js: Any, expression: str) -> Any:
    return json.loads(js.eval(f"JSON.stringify({expression})"))


def test_graphiql_runs_subscriptions_over_the_websocket_with_the_headers_token(js: Any) -> None:
    js.eval(
        f"var live = fetcher({{query: {json.dumps(SUBSCRIPTION)}, operationName: 'Live'}},"
        f" {{headers: {{Authorization: 'Bearer t0k'}}, documentAST: {LIVE_DOCUMENT}}}); collect(live, 3);"
    )
    (client,) = _json(js, "clients")
    assert client["url"] == "ws://ledgerline.test:8000/graphql"
    assert client["connectionParams"] == {"Authorization": "Bearer t0k"}  # read by the API in connection_init
    assert _json(js, "subscribed") == [{"query": SUBSCRIPTION, "operationName": "Live"}]
    js.eval("sink.next({data: {alertRaised: {id: 'a1'}}}); sink.next({data: {alertRaised: {id: 'a2'}}});")
    assert _json(js, "seen") == [
        {"value": {"data": {"alertRaised": {"id": "a1"}}}, "done": False},
        {"value": {"data": {"alertRaised": {"id": "a2"}}}, "done": False},
    ]
    assert _json(js, "posted") == []  # nothing went over HTTP
    js.eval("live.return();")  # the user presses stop
    assert _json(js, "[unsubscribed, disposed]") == [1, 1]
    js.eval("live.return();")
    assert _json(js, "[unsubscribed, disposed]") == [1, 1]


def test_a_refused_subscription_shows_why_and_ends(js: Any) -> None:
    js.eval(
        f"var live = fetcher({{query: {json.dumps(SUBSCRIPTION)}}}, {{headers: {{}}}}); collect(live, 3);"
        "sink.error({code: 4403, reason: 'Forbidden'});"
    )
    assert _json(js, "clients[0].connectionParams") == {}
    assert _json(js, "seen") == [
        {"value": {"errors": [{"message": "connection closed (4403: Forbidden)"}]}, "done": False},
        {"done": True},
    ]
    assert _json(js, "[unsubscribed, disposed]") == [1, 1]


def test_queries_and_mutations_still_go_over_http(js: Any) -> None:
    js.eval(
        "fetcher({query: 'mutation M { x }', operationName: 'M'}, {headers: {Authorization: 'Bearer t0k'},"
        " documentAST: {definitions: [{kind: 'OperationDefinition', operation: 'mutation', name: {value: 'M'}}]}});"
        "fetcher({query: '{ me { subject } }'}, {headers: {Authorization: 'Bearer t0k'}});"
    )
    assert [(p["url"], p["method"], p["auth"]) for p in _json(js, "posted")] == [
        ("/graphql", "POST", "Bearer t0k"),
        ("/graphql", "POST", "Bearer t0k"),
    ]
    assert _json(js, "clients") == []
