"""Offline GraphiQL page for Ledgerline.

The page is our own small HTML document; the third-party builds (React 17, GraphiQL, the explorer
plugin, and the graphql-ws client that runs subscriptions over the API's WebSocket) come from the
``graphene-django-graphiql-static`` wheel and are served by Ledgerline itself from an allow-list,
so the IDE works without any CDN. The files are located at runtime and are never copied into this
repository.
"""

from __future__ import annotations

import functools
import html
import importlib.metadata
import importlib.util
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeAlias

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["graphiql_asset_dir", "graphiql_asset_routes", "graphiql_html"]

_AssetEndpoint: TypeAlias = Callable[[Request], Awaitable[Response]]

_ASSET_PACKAGE: Final = "graphene_django_graphiql_static"
_ASSET_DISTRIBUTION: Final = "graphene-django-graphiql-static"

_JS: Final = "text/javascript; charset=utf-8"
_CSS: Final = "text/css; charset=utf-8"

#: The only files that are ever served, with their content types.
ASSET_CONTENT_TYPES: Final[dict[str, str]] = {
    "react.production.min.js": _JS,
    "react-dom.production.min.js": _JS,
    "graphiql.min.js": _JS,
    "graphiql.min.css": _CSS,
    "graphiql-plugin-explorer.umd.js": _JS,
    "style.css": _CSS,  # explorer-plugin styles
    "fetch.umd.js": _JS,
    "graphql-ws.min.js": _JS,
}

# URLs carry the wheel's version (``?v=``), so a year-long immutable cache is safe.
_CACHE_CONTROL: Final = "public, max-age=31536000, immutable"

PLACEHOLDER_TOKEN: Final = "PASTE_A_TOKEN_FROM_make_run"
DEFAULT_HEADERS: Final[dict[str, str]] = {"Authorization": f"Bearer {PLACEHOLDER_TOKEN}"}

DEFAULT_QUERY: Final = """\
query Customers {
  customers(first: 10) {
    totalCount
    edges {
      node {
        id
        name
        tier
        status
      }
    }
  }
}
"""


@functools.cache
def graphiql_asset_dir() -> Path:
    """Directory holding the GraphiQL builds shipped by the wheel.

    Uses ``find_spec`` so the package itself is never imported.
    """
    spec = importlib.util.find_spec(_ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"{_ASSET_DISTRIBUTION} is not installed; the offline GraphiQL page "
            "needs it for its JavaScript and CSS assets"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "static" / _ASSET_PACKAGE
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"no static/{_ASSET_PACKAGE} directory in {_ASSET_DISTRIBUTION}")


@functools.cache
def _asset_version() -> str:
    try:
        return importlib.metadata.version(_ASSET_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "0"


def _js_literal(value: object) -> str:
    """JSON for embedding inside an inline <script> (cannot close the tag)."""
    return (
        json.dumps(value)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_PAGE: Final = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>Ledgerline GraphiQL</title>
  <style>html, body, #graphiql {{ height: 100%; margin: 0; overflow: hidden; }}</style>
  <link rel="stylesheet" href="{graphiql_css}">
  <link rel="stylesheet" href="{explorer_css}">
  <script src="{react}"></script>
  <script src="{react_dom}"></script>
  <script src="{graphiql}"></script>
  <script src="{explorer}"></script>
  <script src="{graphql_ws}"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL&hellip;</div>
  <script>
    (function () {{
      var ENDPOINT = {endpoint};
      var DEFAULT_QUERY = {default_query};
      var DEFAULT_HEADERS = {default_headers};
      var h = React.createElement;

      var WS_URL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + ENDPOINT;

      // The operation GraphiQL is about to run: "query", "mutation" or "subscription".
      function operationType(params, opts) {{
        var doc = opts && opts.documentAST;
        var ops = doc ? doc.definitions.filter(function (d) {{ return d.kind === "OperationDefinition"; }}) : [];
        var op = ops.length === 1 ? ops[0] : ops.filter(function (d) {{
          return d.name && d.name.value === params.operationName;
        }})[0];
        if (op) return op.operation;
        return /^\\s*subscription\\b/.test(params.query || "") ? "subscription" : "query";
      }}

      function describe(err) {{
        if (Array.isArray(err)) return err.map(function (e) {{ return e.message; }}).join("; ");
        if (err && err.message) return err.message;
        if (err && err.code) return "connection closed (" + err.code + (err.reason ? ": " + err.reason : "") + ")";
        return String(err);
      }}

      // A subscription over graphql-transport-ws; the Authorization header of the headers editor
      // goes in `connection_init`, as the API expects. GraphiQL reads each event from the
      // async iterator and stops it (`return`) when the user stops the operation.
      function subscribe(params, headers) {{
        var auth = headers.Authorization || headers.authorization;
        var client = graphqlWs.createClient({{
          url: WS_URL, lazy: true, retryAttempts: 0, connectionParams: auth ? {{Authorization: auth}} : {{}}
        }});
        var pending = [], waiting = [], closed = false;
        function push(item) {{
          if (waiting.length) waiting.shift()(item); else pending.push(item);
        }}
        var unsubscribe = client.subscribe(params, {{
          next: function (value) {{ push({{value: value, done: false}}); }},
          error: function (err) {{
            push({{value: {{errors: [{{message: describe(err)}}]}}, done: false}});
            push({{value: undefined, done: true}});
          }},
          complete: function () {{ push({{value: undefined, done: true}}); }}
        }});
        function close() {{
          if (closed) return;
          closed = true;
          unsubscribe();
          client.dispose();
        }}
        function settle(item) {{
          if (item.done) close();
          return item;
        }}
        var events = {{
          next: function () {{
            if (pending.length) return Promise.resolve(settle(pending.shift()));
            if (closed) return Promise.resolve({{value: undefined, done: true}});
            return new Promise(function (resolve) {{ waiting.push(resolve); }}).then(settle);
          }},
          return: function () {{
            close();
            return Promise.resolve({{value: undefined, done: true}});
          }}
        }};
        events[Symbol.asyncIterator] = function () {{ return events; }};
        return events;
      }}

      // Queries and mutations: plain fetch; `opts.headers` is the parsed content of the headers
      // editor (GraphiQL passes it for both queries and schema introspection).
      function fetcher(params, opts) {{
        if (operationType(params, opts) === "subscription") {{
          return subscribe(params, (opts && opts.headers) || {{}});
        }}
        var headers = Object.assign(
          {{"Content-Type": "application/json", "Accept": "application/json"}},
          (opts && opts.headers) || {{}}
        );
        return fetch(ENDPOINT, {{
          method: "POST",
          headers: headers,
          body: JSON.stringify(params),
          credentials: "same-origin"
        }}).then(function (res) {{
          return res.text().then(function (text) {{
            try {{
              return JSON.parse(text);
            }} catch (e) {{
              return {{errors: [{{message: "HTTP " + res.status + ": " + text}}]}};
            }}
          }});
        }});
      }}

      function App() {{
        var state = React.useState(undefined);
        var query = state[0], setQuery = state[1];
        var plugins = [];
        if (window.GraphiQLPluginExplorer) {{
          plugins.push(GraphiQLPluginExplorer.useExplorerPlugin({{
            query: query, onEdit: setQuery
          }}));
        }}
        return h(GraphiQL, {{
          fetcher: fetcher,
          query: query,
          onEditQuery: setQuery,
          defaultQuery: DEFAULT_QUERY,
          defaultHeaders: DEFAULT_HEADERS,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: true,
          defaultEditorToolsVisibility: "headers",
          plugins: plugins
        }});
      }}

      ReactDOM.render(h(App), document.getElementById("graphiql"));
    }})();
  </script>
</body>
</html>
"""


def graphiql_html(endpoint: str = "/graphql", asset_prefix: str = "/graphiql/assets") -> str:
    """The GraphiQL page; assets load from ``asset_prefix``, queries POST to ``endpoint``."""
    prefix = asset_prefix.rstrip("/")
    version = _asset_version()

    def asset(name: str) -> str:
        return html.escape(f"{prefix}/{name}?v={version}", quote=True)

    return _PAGE.format(
        graphiql_css=asset("graphiql.min.css"),
        explorer_css=asset("style.css"),
        react=asset("react.production.min.js"),
        react_dom=asset("react-dom.production.min.js"),
        graphiql=asset("graphiql.min.js"),
        explorer=asset("graphiql-plugin-explorer.umd.js"),
        graphql_ws=asset("graphql-ws.min.js"),
        endpoint=_js_literal(endpoint),
        default_query=_js_literal(DEFAULT_QUERY),
        default_headers=_js_literal(json.dumps(DEFAULT_HEADERS, indent=2)),
    )


def graphiql_asset_routes(prefix: str = "/graphiql/assets") -> list[BaseRoute]:
    """One GET/HEAD route per allow-listed asset file; nothing else is reachable.

    Raises ``RuntimeError`` at construction time if the wheel or a file is missing.
    """
    base = prefix.rstrip("/")
    directory = graphiql_asset_dir()
    routes: list[BaseRoute] = []
    for name, content_type in ASSET_CONTENT_TYPES.items():
        path = directory / name
        if not path.is_file():
            raise RuntimeError(f"GraphiQL asset missing from {_ASSET_DISTRIBUTION}: {path}")
        routes.append(
            Route(
                f"{base}/{name}",
                _asset_endpoint(path, content_type),
                methods=["GET", "HEAD"],
                name=f"graphiql-asset:{name}",
            )
        )
    return routes


def _asset_endpoint(path: Path, content_type: str) -> _AssetEndpoint:
    async def endpoint(request: Request) -> Response:
        return FileResponse(
            path,
            media_type=content_type,
            headers={"Cache-Control": _CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
        )

    return endpoint
