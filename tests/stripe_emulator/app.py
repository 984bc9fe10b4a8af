"""The ASGI app: Stripe's v1 HTTP API plus ``/_emulator/*`` control endpoints."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import time
import traceback
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import core
from .core import API_VERSION, ENDPOINTS, Ctx, Endpoint, expand, render
from .errors import StripeError
from .forms import decode_form, decode_pairs
from .resources import (
    catalog,
    customers,
    events,
    invoices,
    meters,
    payments,
    search,
    subscriptions,
)
from .resources.subscriptions import run_due
from .schema import validate_params
from .state import IDEMPOTENCY_TTL, EmulatorState, IdempotencyRecord

# Importing the resource modules registers their endpoints.
_RESOURCE_MODULES = (catalog, customers, events, invoices, meters, payments, search, subscriptions)

_COMPILED: list[tuple[re.Pattern[str], Endpoint]] = []


def _compiled() -> list[tuple[re.Pattern[str], Endpoint]]:
    if not _COMPILED:
        for endpoint in ENDPOINTS:
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", endpoint.template)
            _COMPILED.append((re.compile(f"^{pattern}$"), endpoint))
        # Literal paths ("/v1/invoices/create_preview") win over templated ones.
        _COMPILED.sort(key=lambda pair: pair[1].template.count("{"))
    return _COMPILED


def _match(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    for pattern, endpoint in _compiled():
        if endpoint.method != method:
            continue
        found = pattern.match(path)
        if found:
            return endpoint, found.groupdict()
    return None


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, indent=2).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def advance_clock(state: EmulatorState, seconds: int) -> int:
    """Move the emulator clock forward, applying renewals, trial ends and cancellations in order."""
    if seconds < 0:
        raise ValueError("the emulator clock only moves forward")
    with state.lock:
        target = state.now() + seconds
        state.current_request = None
        run_due(state, target)
        state.clock.move_to(target)
        state.commit()
        return state.now()


def create_emulator_app(
    *,
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_emulator",
    state: EmulatorState | None = None,
) -> Starlette:
    """A Stripe API emulator. ``app.state.emulator`` is its :class:`EmulatorState`."""
    emulator = state or EmulatorState(webhook_url=webhook_url, webhook_secret=webhook_secret)

    async def api(request: Request) -> Response:
        return await _handle_api(emulator, request)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "api_version": API_VERSION})

    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            with emulator.lock:
                emulator.request_log.clear()
            return JSONResponse({"cleared": True})
        with emulator.lock:
            entries = list(emulator.request_log)
        method = request.query_params.get("method")
        prefix = request.query_params.get("path")
        if method:
            entries = [e for e in entries if e["method"] == method.upper()]
        if prefix:
            entries = [e for e in entries if e["path"].startswith(prefix)]
        return JSONResponse({"data": entries})

    async def clear_requests(request: Request) -> Response:
        with emulator.lock:
            emulator.request_log.clear()
        return JSONResponse({"cleared": True})

    async def clock(request: Request) -> Response:
        return JSONResponse({"now": emulator.now(), "offset": emulator.clock.offset})

    async def clock_advance(request: Request) -> Response:
        data = await _control_params(request)
        try:
            seconds = int(data.get("seconds", 0))
            if seconds < 0:
                raise ValueError
        except (TypeError, ValueError):
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "param": "seconds",
                        "message": "seconds must be a non-negative integer",
                    }
                },
                status_code=400,
            )
        now = await anyio.to_thread.run_sync(advance_clock, emulator, seconds)
        return JSONResponse({"now": now, "offset": emulator.clock.offset})

    async def webhooks_flush(request: Request) -> Response:
        data = await _control_params(request)
        timeout = float(data.get("timeout", 30))
        done = await anyio.to_thread.run_sync(emulator.webhooks.flush, timeout)
        deliveries = [d.as_dict() for d in emulator.webhooks.deliveries]
        return JSONResponse({"done": done, "deliveries": deliveries}, status_code=200 if done else 504)

    async def webhooks_list(request: Request) -> Response:
        return JSONResponse({"data": [d.as_dict() for d in emulator.webhooks.deliveries], "url": emulator.webhooks.url})

    async def webhooks_endpoint(request: Request) -> Response:
        data = await _control_params(request)
        emulator.webhooks.configure(data.get("url") or None, data.get("secret") or None)
        return JSONResponse({"url": emulator.webhooks.url})

    async def meter_events(request: Request) -> Response:
        with emulator.lock:
            data = list(emulator.meter_events)
        name = request.query_params.get("event_name")
        if name:
            data = [e for e in data if e["event_name"] == name]
        return JSONResponse({"data": data})

    async def reset(request: Request) -> Response:
        with emulator.lock:
            emulator.reset()
        return JSONResponse({"reset": True})

    async def hosted_invoice(request: Request) -> Response:
        invoice = _invoice_for_page(emulator, request.path_params["invoice"])
        if invoice is None:
            return HTMLResponse("<h1>Invoice not found</h1>", status_code=404)
        return HTMLResponse(_invoice_html(invoice))

    async def invoice_pdf(request: Request) -> Response:
        invoice = _invoice_for_page(emulator, request.path_params["invoice"])
        if invoice is None:
            return Response(b"not found", status_code=404)
        return Response(_invoice_pdf(invoice), media_type="application/pdf")

    async def receipt(request: Request) -> Response:
        return HTMLResponse(f"<h1>Receipt {html.escape(request.path_params['intent'])}</h1>")

    routes = [
        Route("/v1/{path:path}", api, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/_emulator/requests/clear", clear_requests, methods=["POST"]),
        Route("/_emulator/clock", clock, methods=["GET"]),
        Route("/_emulator/clock/advance", clock_advance, methods=["POST"]),
        Route("/_emulator/webhooks", webhooks_list, methods=["GET"]),
        Route("/_emulator/webhooks/flush", webhooks_flush, methods=["POST"]),
        Route("/_emulator/webhooks/endpoint", webhooks_endpoint, methods=["POST"]),
        Route("/_emulator/meter_events", meter_events, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/invoices/{invoice}/hosted", hosted_invoice, methods=["GET"]),
        Route("/_emulator/invoices/{invoice}/pdf", invoice_pdf, methods=["GET"]),
        Route("/_emulator/receipts/{intent}", receipt, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app


async def _control_params(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    decoded, _ = decode_form(body)
    return decoded


def _api_key(authorization: str) -> str:
    """The secret key from ``Bearer sk_...`` or from HTTP basic auth (``curl -u sk_...:``)."""
    if authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :].strip()
    if authorization.startswith("Basic "):
        try:
            decoded = base64.b64decode(authorization[len("Basic ") :]).decode()
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.split(":", 1)[0]
    return ""


def _fingerprint(method: str, path: str, pairs: list[tuple[str, str]]) -> str:
    return json.dumps([method, path, sorted(pairs)])


async def _handle_api(state: EmulatorState, request: Request) -> Response:
    method = request.method
    path = request.url.path
    request_id = "req_" + secrets.token_hex(7)
    headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
    key = _api_key(request.headers.get("authorization", ""))
    if not key.startswith(("sk_test_", "rk_test_")):
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if key else ""
        message = (
            f"Invalid API Key provided: {shown}"
            if key
            else "You did not provide an API key. Send it as a Bearer token."
        )
        return _json({"error": {"type": "invalid_request_error", "message": message}}, 401, headers)
    body = await request.body()
    if method == "POST":
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True)
    else:
        pairs = list(request.query_params.multi_items())
    idempotency_key = request.headers.get("idempotency-key") if method == "POST" else None
    with state.lock:
        state.base_url = str(request.base_url).rstrip("/")
        run_due(state, state.now())
        state.commit()
        entry: dict[str, Any] = {
            "id": request_id,
            "method": method,
            "path": path,
            "params": {},
            "idempotency_key": idempotency_key,
            "idempotent_replayed": False,
            "status": None,
            "created": state.now(),
            "received_at": time.time(),
        }
        state.request_log.append(entry)
        try:
            raw = decode_pairs(pairs)
        except StripeError as exc:
            entry["status"] = exc.status
            return _json(exc.body(), exc.status, headers)
        entry["params"] = raw
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
            fingerprint = _fingerprint(method, path, pairs)
            record = state.idempotency.get(idempotency_key)
            if record is not None and state.now() - record.created > IDEMPOTENCY_TTL:
                record = None
            if record is not None:
                if record.fingerprint != fingerprint:
                    error = StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{idempotency_key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                    entry["status"] = 400
                    return _json(error.body(), 400, headers)
                entry["idempotent_replayed"] = True
                entry["status"] = record.status
                headers["Idempotent-Replayed"] = "true"
                return Response(record.body, record.status, media_type="application/json", headers=headers)
        status, payload, extra_headers, executed = _execute(state, method, path, raw, request_id, idempotency_key)
        headers.update(extra_headers)
        entry["status"] = status
        body_bytes = json.dumps(payload, indent=2).encode()
        # Like Stripe, only requests that started executing are saved for replay.
        if idempotency_key and executed:
            state.idempotency[idempotency_key] = IdempotencyRecord(
                fingerprint=_fingerprint(method, path, pairs),
                status=status,
                body=body_bytes,
                method=method,
                path=path,
                created=state.now(),
            )
    return Response(body_bytes, status, media_type="application/json", headers=headers)


def _execute(
    state: EmulatorState,
    method: str,
    path: str,
    raw: dict[str, Any],
    request_id: str,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any], dict[str, str], bool]:
    """Run one API call: (status, body, extra headers, whether the endpoint started executing)."""
    matched = _match(method, path)
    if matched is None:
        error = StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )
        return 404, error.body(), {}, False
    endpoint, path_params = matched
    try:
        params = validate_params(endpoint.params, raw)
    except StripeError as exc:
        return exc.status, exc.body(), exc.headers(), False
    expand_paths = params.pop("expand", None) or []
    snapshot = state.snapshot() if method != "GET" else None
    state.current_request = {"id": request_id, "idempotency_key": idempotency_key}
    ctx = Ctx(state=state, params=params, path=path_params, method=method, url_path=path)
    try:
        result = endpoint.handler(ctx)
        expand(ctx.extra.get("state_for_expand", state), result, expand_paths)
        state.commit()
        return 200, result, {}, True
    except StripeError as exc:
        if exc.commit or snapshot is None:
            state.commit()
        else:
            state.rollback(snapshot)
        return exc.status, exc.body(), exc.headers(), True
    except Exception as exc:  # a bug in the emulator: say so, Stripe-shaped
        if snapshot is not None:
            state.rollback(snapshot)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return (
            500,
            {
                "error": {
                    "type": "api_error",
                    "message": f"Emulator error: {detail}",
                    "traceback": traceback.format_exc(),
                }
            },
            {},
            True,
        )
    finally:
        state.current_request = None


def _invoice_for_page(state: EmulatorState, invoice_id: str) -> dict[str, Any] | None:
    with state.lock:
        stored = state.collection("invoice").get(invoice_id)
        if stored is None or stored.get("deleted"):
            return None
        return render(state, stored)


def _invoice_html(invoice: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(line.get('description') or ''))}</td>"
        f"<td>{line.get('quantity') or ''}</td>"
        f"<td>{core.format_amount(line['amount'], invoice['currency'])}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    money = invoice["currency"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Invoice {html.escape(str(invoice['number']))}</title></head><body>"
        f"<h1>Invoice {html.escape(str(invoice['number']))}</h1>"
        f"<p>Status: <strong>{invoice['status']}</strong></p>"
        f"<table>{rows}</table>"
        f"<p>Total: {core.format_amount(invoice['total'], money)}</p>"
        f"<p>Amount due: {core.format_amount(invoice['amount_due'], money)}</p>"
        f"<p>Amount paid: {core.format_amount(invoice['amount_paid'], money)}</p>"
        "</body></html>"
    )


def _invoice_pdf(invoice: dict[str, Any]) -> bytes:
    """A minimal one-page PDF naming the invoice and its amounts."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    money = invoice["currency"]
    lines = [
        f"Invoice {invoice['number']}",
        f"Status: {invoice['status']}",
        f"Total: {core.format_amount(invoice['total'], money)}",
        f"Amount due: {core.format_amount(invoice['amount_due'], money)}",
    ]
    text = (
        "BT /F1 14 Tf 72 720 Td 18 TL "
        + " ".join(f"({escape(line.encode('ascii', 'replace').decode())}) Tj T*" for line in lines)
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text.encode() + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)
