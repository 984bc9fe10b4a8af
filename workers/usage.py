"""Usage jobs: roll new events into hourly buckets, report closed buckets to Stripe."""

from __future__ import annotations

import logging
from typing import Any

from api.db import utcnow
from api.runtime import Runtime
from api.usage.reporting import report_usage
from api.usage.rollup import roll_up

log = logging.getLogger("ledgerline.usage")


async def roll_up_usage(ctx: dict[str, Any]) -> dict[str, int]:
    """Every event received so far, into the buckets, exactly once (see api/usage/rollup.py)."""
    runtime: Runtime = ctx["runtime"]
    result = await roll_up(runtime.session_factory)
    if result.events:
        log.info("rolled up %d usage events into %d buckets", result.events, result.buckets)
    return {"events": result.events, "buckets": result.buckets, "watermark": result.watermark}


async def report_usage_to_stripe(ctx: dict[str, Any]) -> dict[str, int]:
    """Every closed, due bucket to Stripe as a meter event (see api/usage/reporting.py)."""
    runtime: Runtime = ctx["runtime"]
    result = await report_usage(runtime.session_factory, runtime.stripe, utcnow())
    if result.reported or result.failed:
        log.info("usage reporting: %d reported, %d failed", result.reported, result.failed)
    return {"reported": result.reported, "failed": result.failed, "not_billed": result.not_billed}
