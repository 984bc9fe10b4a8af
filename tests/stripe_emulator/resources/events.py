"""Events: retrieve and list what the emulator recorded."""

from __future__ import annotations

from typing import Any

from stripe import params as p

from ..core import Ctx, get, paginate, render, route


@route("GET", "/v1/events/{id}", p.EventRetrieveParams)
def retrieve_event(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "event", ctx.path["id"]))


@route("GET", "/v1/events", p.EventListParams)
def list_events(ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    objects = list(ctx.state.collection("event").values())
    wanted: list[str] = []
    if params.get("type"):
        wanted.append(params["type"])
    wanted.extend(params.get("types") or [])
    if wanted:
        objects = [o for o in objects if any(_matches(o["type"], w) for w in wanted)]
    return paginate(ctx.state, objects, params, "/v1/events")


def _matches(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
