"""Shared machinery for resource handlers: ids, lookup, rendering, expansion, lists, events."""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import json
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import StripeError, invalid, no_such
from .schema import EMPTY
from .shapes import complete
from .state import EmulatorState, StoredObject

API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits

Renderer = Callable[[EmulatorState, StoredObject, dict[str, Any]], None]
RENDERERS: dict[str, Renderer] = {}

# Human names used in "No such <kind>" messages.
KIND_NAMES = {
    "billing.meter": "billing meter",
    "customer_balance_transaction": "customer balance transaction",
    "invoiceitem": "invoice item",
    "payment_intent": "payment_intent",
    "payment_method": "PaymentMethod",
    "subscription_item": "subscription item",
    "promotion_code": "promotion code",
}


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass
class Ctx:
    """What a handler gets: the state, validated params, path params and request facts."""

    state: EmulatorState
    params: dict[str, Any]
    path: dict[str, str]
    method: str
    url_path: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return self.state.now()


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn

    return register


# --------------------------------------------------------------------------------------------
# Storage


def put(state: EmulatorState, obj: StoredObject) -> StoredObject:
    state.collection(obj["object"])[obj["id"]] = obj
    return obj


def find(state: EmulatorState, kind: str, object_id: str) -> StoredObject | None:
    return state.collection(kind).get(object_id)


def get(
    state: EmulatorState,
    kind: str,
    object_id: Any,
    *,
    param: str | None = None,
    allow_deleted: bool = False,
) -> StoredObject:
    """Fetch an object or raise: 404 ``param=id`` for URL ids, 400 naming ``param`` otherwise."""
    name = KIND_NAMES.get(kind, kind)
    if not isinstance(object_id, str) or not object_id:
        raise invalid(f"Invalid {name} id", param=param or "id")
    obj = state.collection(kind).get(object_id)
    if obj is None or (obj.get("deleted") and not allow_deleted):
        if param is None:
            raise no_such(name, object_id)
        raise no_such(name, object_id, param=param, status=400)
    return obj


def find_any(state: EmulatorState, object_id: str) -> StoredObject | None:
    for collection in state.objects.values():
        obj = collection.get(object_id)
        if obj is not None:
            return obj
    return None


# --------------------------------------------------------------------------------------------
# Rendering


def render(state: EmulatorState, obj: StoredObject) -> dict[str, Any]:
    """The JSON form of a stored object: computed fields added, private ``_keys`` dropped."""
    out = {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
    if not obj.get("deleted"):
        fn = RENDERERS.get(obj["object"])
        if fn is not None:
            fn(state, obj, out)
    return complete(out)


def list_object(state: EmulatorState, items: Iterable[StoredObject], url: str) -> dict[str, Any]:
    data = [render(state, o) for o in items]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "total_count": len(data),
        "url": url,
    }


def expand(state: EmulatorState, data: Any, paths: list[str]) -> Any:
    for path in paths:
        _expand_path(state, data, path.split("."), path)
    return data


def _expand_path(state: EmulatorState, node: Any, parts: list[str], full: str) -> None:
    if not parts or node is None:
        return
    if isinstance(node, list):
        for entry in node:
            _expand_path(state, entry, parts, full)
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head not in node:
        if node.get("object") == "list" and head == "data":
            return
        raise invalid(f"This property cannot be expanded ({full}).", param="expand")
    value = node[head]
    if isinstance(value, str):
        target = find_any(state, value)
        if target is not None:
            value = render(state, target)
            node[head] = value
    elif isinstance(value, list):
        expanded = []
        for entry in value:
            if isinstance(entry, str):
                target = find_any(state, entry)
                expanded.append(render(state, target) if target is not None else entry)
            else:
                expanded.append(entry)
        node[head] = value = expanded
    _expand_path(state, value, rest, full)


# --------------------------------------------------------------------------------------------
# Lists


def paginate(
    state: EmulatorState,
    objects: list[StoredObject],
    params: dict[str, Any],
    url: str,
) -> dict[str, Any]:
    """Newest first, with ``limit`` / ``starting_after`` / ``ending_before`` like Stripe."""
    ordered = list(reversed(objects))
    created = params.get("created")
    if isinstance(created, int):
        ordered = [o for o in ordered if o.get("created") == created]
    elif isinstance(created, dict):
        ordered = [o for o in ordered if _in_range(o.get("created"), created)]
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    ids = [o["id"] for o in ordered]
    if params.get("starting_after"):
        anchor = params["starting_after"]
        if anchor not in ids:
            raise no_such("object", anchor, param="starting_after", status=400)
        ordered = ordered[ids.index(anchor) + 1 :]
        page = ordered[:limit]
        has_more = len(ordered) > limit
    elif params.get("ending_before"):
        anchor = params["ending_before"]
        if anchor not in ids:
            raise no_such("object", anchor, param="ending_before", status=400)
        before = ordered[: ids.index(anchor)]
        page = before[-limit:]
        has_more = len(before) > limit
    else:
        page = ordered[:limit]
        has_more = len(ordered) > limit
    return {
        "object": "list",
        "data": [render(state, o) for o in page],
        "has_more": has_more,
        "url": url,
    }


def _in_range(value: Any, bounds: dict[str, int]) -> bool:
    if not isinstance(value, int):
        return False
    if "gt" in bounds and not value > bounds["gt"]:
        return False
    if "gte" in bounds and not value >= bounds["gte"]:
        return False
    if "lt" in bounds and not value < bounds["lt"]:
        return False
    return not ("lte" in bounds and not value <= bounds["lte"])


# --------------------------------------------------------------------------------------------
# Parameter helpers


def merge_metadata(existing: dict[str, str] | None, update: Any) -> dict[str, str]:
    """Stripe metadata semantics: ``""`` clears all, a key set to ``""`` is removed."""
    if update == EMPTY:
        return {}
    result = dict(existing or {})
    if isinstance(update, dict):
        for key, value in update.items():
            if value == "":
                result.pop(key, None)
            else:
                result[key] = str(value)
    return result


def unset(value: Any) -> Any:
    """``None`` for a posted empty string (Stripe's "unset this"), the value otherwise."""
    return None if value == EMPTY else value


def require(params: dict[str, Any], name: str) -> Any:
    if name not in params or params[name] in (None, EMPTY):
        raise StripeError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
    return params[name]


def check_currency(currency: Any, param: str = "currency") -> str:
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise invalid(f"Invalid currency: {currency}", param=param)
    return currency.lower()


def non_negative(value: Any, param: str) -> int:
    if not isinstance(value, int) or value < 0:
        raise invalid(
            "This value must be greater than or equal to 0.",
            param=param,
            code="parameter_invalid_integer",
        )
    return value


def positive(value: Any, param: str) -> int:
    if not isinstance(value, int) or value <= 0:
        raise invalid(
            "This value must be greater than or equal to 1.",
            param=param,
            code="parameter_invalid_integer",
        )
    return value


# --------------------------------------------------------------------------------------------
# Events


def emit(
    state: EmulatorState,
    event_type: str,
    obj: StoredObject | dict[str, Any],
    previous_attributes: dict[str, Any] | None = None,
) -> None:
    """Record an Event (and queue its webhook) carrying a snapshot of ``obj``.

    ``obj`` is either the stored object itself (rendered here) or an already rendered dict.
    """
    if state.dry_run:
        return
    stored = state.collection(obj["object"]).get(obj.get("id", "")) is obj
    snapshot = render(state, obj) if stored else complete(copy.deepcopy(obj))
    request = state.current_request
    webhook_pending = bool(state.webhooks.url)
    event: dict[str, Any] = {
        "id": new_id("evt"),
        "object": "event",
        "account": None,
        "api_version": API_VERSION,
        "context": None,
        "created": state.now(),
        "data": {"object": snapshot},
        "livemode": False,
        "pending_webhooks": 1 if webhook_pending else 0,
        "request": {
            "id": request.get("id") if request else None,
            "idempotency_key": request.get("idempotency_key") if request else None,
        },
        "type": event_type,
    }
    if previous_attributes:
        event["data"]["previous_attributes"] = previous_attributes
    put(state, event)
    if webhook_pending:
        state.outbox.append((event["id"], event_type, json.dumps(event, indent=2)))


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``previous_attributes``: the old values of top-level fields that changed."""
    return {k: v for k, v in before.items() if after.get(k) != v}


# --------------------------------------------------------------------------------------------
# Time and money


def add_interval(anchor: int, interval: str, count: int) -> int:
    """``anchor`` plus ``count`` intervals, keeping the anchor's day of month (clamped)."""
    if interval == "day":
        return anchor + 86400 * count
    if interval == "week":
        return anchor + 7 * 86400 * count
    months = count * (12 if interval == "year" else 1)
    start = dt.datetime.fromtimestamp(anchor, dt.UTC)
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    end = start.replace(year=year, month=month, day=day)
    return int(end.timestamp())


def format_amount(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    text = f"{abs(amount) / 100:,.2f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def format_date(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%d %b %Y")


# --------------------------------------------------------------------------------------------
# Endpoint registry

Handler = Callable[[Ctx], dict[str, Any]]


@dataclass
class Endpoint:
    method: str
    template: str  # e.g. "/v1/customers/{customer}"
    params: Any  # the SDK TypedDict typing this endpoint's parameters
    handler: Handler


ENDPOINTS: list[Endpoint] = []


def route(method: str, template: str, params: Any) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ENDPOINTS.append(Endpoint(method.upper(), template, params, fn))
        return fn

    return register
