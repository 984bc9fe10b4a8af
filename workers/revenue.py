"""Daily revenue snapshots: the nightly job stores the last closed days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.revenue.daily import recompute
from api.runtime import Runtime

# yesterday, and the day before for webhooks that arrived late
SNAPSHOT_DAYS_BACK = 2


async def snapshot_revenue(ctx: dict[str, Any]) -> int:
    """Recompute and store the last closed days (idempotent: a rerun replaces them)."""
    runtime: Runtime = ctx["runtime"]
    today = datetime.now(UTC).date()
    async with runtime.session_factory() as session, session.begin():
        return await recompute(session, today - timedelta(days=SNAPSHOT_DAYS_BACK), today - timedelta(days=1))
