"""Customer health: the nightly job computes every customer's health."""

from __future__ import annotations

from typing import Any

from api.health.service import recompute_health
from api.runtime import Runtime


async def compute_customer_health(ctx: dict[str, Any]) -> int:
    """Compute and store today's health of every customer (idempotent: a rerun replaces the day)."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session, session.begin():
        summary = await recompute_health(session)
    return summary.customers
