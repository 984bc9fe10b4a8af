"""Customer health: the nightly job computes every customer's health."""

from __future__ import annotations

from typing import Any

from api.health.service import prune_snapshots, recompute_health
from api.runtime import Runtime


async def compute_customer_health(ctx: dict[str, Any]) -> int:
    """Compute and store today's health of every customer (idempotent: a rerun replaces the day),
    then drop the snapshots older than HEALTH_SNAPSHOT_DAYS."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session, session.begin():
        summary = await recompute_health(session)
        await prune_snapshots(session, runtime.settings.health_snapshot_days, summary.computed_on)
    return summary.customers
