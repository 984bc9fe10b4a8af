"""Billing meters, meter events (identifier dedup, timestamp window) and event summaries."""

from __future__ import annotations

import re
import uuid
from typing import Any

from stripe.params import billing as pb

from ..core import Ctx, diff, emit, get, new_id, paginate, put, render, route
from ..errors import StripeError, invalid, state_error
from ..state import EmulatorState, StoredObject

MAX_AGE = 35 * 86400
MAX_AHEAD = 5 * 60
DEDUP_WINDOW = 24 * 3600
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@route("POST", "/v1/billing/meters", pb.MeterCreateParams)
def create_meter(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    event_name = params["event_name"]
    if not event_name:
        raise invalid("Missing required param: event_name.", param="event_name", code="parameter_missing")
    for other in state.collection("billing.meter").values():
        if other["event_name"] == event_name and other["status"] == "active":
            raise invalid(
                f"An active meter with event_name `{event_name}` already exists.",
                param="event_name",
                code="resource_already_exists",
            )
    mapping = params.get("customer_mapping") or {}
    value_settings = params.get("value_settings") or {}
    meter: StoredObject = {
        "id": new_id("mtr"),
        "object": "billing.meter",
        "created": ctx.now,
        "customer_mapping": {
            "event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
            "type": "by_id",
        },
        "default_aggregation": {"formula": params["default_aggregation"]["formula"]},
        "display_name": params["display_name"],
        "event_name": event_name,
        "event_time_window": params.get("event_time_window"),
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": ctx.now,
        "value_settings": {"event_payload_key": value_settings.get("event_payload_key", "value")},
    }
    put(state, meter)
    emit(state, "billing.meter.created", meter)
    return render(state, meter)


@route("GET", "/v1/billing/meters/{id}", pb.MeterRetrieveParams)
def retrieve_meter(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "billing.meter", ctx.path["id"]))


@route("POST", "/v1/billing/meters/{id}", pb.MeterUpdateParams)
def update_meter(ctx: Ctx) -> dict[str, Any]:
    meter = get(ctx.state, "billing.meter", ctx.path["id"])
    before = render(ctx.state, meter)
    if "display_name" in ctx.params:
        meter["display_name"] = ctx.params["display_name"]
        meter["updated"] = ctx.now
    after = render(ctx.state, meter)
    emit(ctx.state, "billing.meter.updated", meter, diff(before, after))
    return after


@route("POST", "/v1/billing/meters/{id}/deactivate", pb.MeterDeactivateParams)
def deactivate_meter(ctx: Ctx) -> dict[str, Any]:
    meter = get(ctx.state, "billing.meter", ctx.path["id"])
    if meter["status"] != "active":
        raise state_error("This meter is already inactive.")
    meter["status"] = "inactive"
    meter["status_transitions"]["deactivated_at"] = ctx.now
    meter["updated"] = ctx.now
    emit(ctx.state, "billing.meter.deactivated", meter)
    return render(ctx.state, meter)


@route("POST", "/v1/billing/meters/{id}/reactivate", pb.MeterReactivateParams)
def reactivate_meter(ctx: Ctx) -> dict[str, Any]:
    meter = get(ctx.state, "billing.meter", ctx.path["id"])
    if meter["status"] != "inactive":
        raise state_error("This meter is already active.")
    meter["status"] = "active"
    meter["status_transitions"]["deactivated_at"] = None
    meter["updated"] = ctx.now
    emit(ctx.state, "billing.meter.reactivated", meter)
    return render(ctx.state, meter)


@route("GET", "/v1/billing/meters", pb.MeterListParams)
def list_meters(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("billing.meter").values())
    if ctx.params.get("status"):
        objects = [o for o in objects if o["status"] == ctx.params["status"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/billing/meters")


def _active_meter(state: EmulatorState, event_name: str) -> StoredObject | None:
    for meter in state.collection("billing.meter").values():
        if meter["event_name"] == event_name and meter["status"] == "active":
            return meter
    return None


@route("POST", "/v1/billing/meter_events", pb.MeterEventCreateParams)
def create_meter_event(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    now = ctx.now
    event_name = params["event_name"]
    payload = params["payload"] if isinstance(params["payload"], dict) else {}
    timestamp = params.get("timestamp", now)
    if timestamp < now - MAX_AGE:
        raise invalid(
            "The timestamp must be within the past 35 calendar days.",
            param="timestamp",
            code="parameter_invalid_integer",
        )
    if timestamp > now + MAX_AHEAD:
        raise invalid(
            "The timestamp can't be more than 5 minutes in the future.",
            param="timestamp",
            code="parameter_invalid_integer",
        )
    identifier = params.get("identifier") or str(uuid.uuid4())
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", param="identifier")
    seen_at = state.meter_identifiers.get(identifier)
    if seen_at is not None and now - seen_at < DEDUP_WINDOW:
        raise StripeError(
            400,
            f"An event already exists with identifier {identifier}.",
            param="identifier",
            should_retry=False,
        )
    meter = _active_meter(state, event_name)
    customer_id = None
    value = 1.0
    if meter is not None:
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        customer_id = payload.get(customer_key)
        if not customer_id:
            raise invalid(
                f"Missing required param: payload[{customer_key}].",
                param=f"payload[{customer_key}]",
                code="parameter_missing",
            )
        raw_value = payload.get(value_key)
        if raw_value is None and meter["default_aggregation"]["formula"] != "count":
            raise invalid(
                f"Missing required param: payload[{value_key}].",
                param=f"payload[{value_key}]",
                code="parameter_missing",
            )
        if raw_value is not None:
            if not _NUMBER.match(str(raw_value)):
                raise invalid(f"payload[{value_key}] must be a number.", param=f"payload[{value_key}]")
            value = float(raw_value)
    state.meter_identifiers[identifier] = now
    state.meter_events.append(
        {
            "identifier": identifier,
            "event_name": event_name,
            "payload": dict(payload),
            "timestamp": timestamp,
            "created": now,
            "meter": meter["id"] if meter else None,
            "customer": customer_id,
            "value": value,
        }
    )
    return {
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": dict(payload),
        "timestamp": timestamp,
    }


def usage_for(state: EmulatorState, meter_id: str | None, customer: str, start: int, end: int) -> float:
    """The meter's aggregate for ``customer`` over events timestamped in ``[start, end)``."""
    meter = state.collection("billing.meter").get(meter_id or "")
    if meter is None:
        return 0.0
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    events = [
        e
        for e in state.meter_events
        if e["event_name"] == meter["event_name"]
        and e["payload"].get(customer_key) == customer
        and start <= e["timestamp"] < end
    ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return float(len(events))
    values = [float(e["payload"].get(value_key, 0) or 0) for e in events]
    if formula == "last":
        if not events:
            return 0.0
        latest = max(range(len(events)), key=lambda i: (events[i]["timestamp"], i))
        return values[latest]
    return float(sum(values))


@route("GET", "/v1/billing/meters/{id}/event_summaries", pb.MeterEventSummaryListParams)
def list_event_summaries(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    meter = get(state, "billing.meter", ctx.path["id"])
    params = ctx.params
    start, end = params["start_time"], params["end_time"]
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    window = {"hour": 3600, "day": 86400}.get(params.get("value_grouping_window") or "")
    bounds = [(t, min(t + window, end)) for t in range(start, end, window)] if window else [(start, end)]
    summaries = [
        {
            "id": f"mtrusg_{meter['id'][4:]}_{lo}",
            "object": "billing.meter_event_summary",
            "aggregated_value": usage_for(state, meter["id"], params["customer"], lo, hi),
            "end_time": hi,
            "livemode": False,
            "meter": meter["id"],
            "start_time": lo,
        }
        for lo, hi in bounds
    ]
    limit = params.get("limit", 10)
    return {
        "object": "list",
        "data": summaries[:limit],
        "has_more": len(summaries) > limit,
        "url": f"/v1/billing/meters/{meter['id']}/event_summaries",
    }
