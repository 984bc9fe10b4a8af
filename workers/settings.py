"""arq WorkerSettings: `ledgerline worker` (or `arq workers.settings.WorkerSettings`).

Jobs are thin: open what they need from the runtime, call a service, done."""

from __future__ import annotations

import time
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from api.logs import configure_logging
from api.runtime import Runtime
from api.settings import get_settings
from workers.dunning import run_dunning
from workers.health import compute_customer_health
from workers.reconciliation import nightly_reconciliation, run_reconciliation
from workers.revenue import snapshot_revenue
from workers.usage import report_usage_to_stripe, roll_up_usage
from workers.webhooks import process_webhook_event, sweep_webhook_events

HEARTBEAT_KEY = "ledgerline:worker:heartbeat"


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    ctx["runtime"] = Runtime.create(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def heartbeat(ctx: dict[str, Any]) -> float:
    """Records that a worker is alive (readiness checks and `make run` can read it)."""
    runtime: Runtime = ctx["runtime"]
    now = time.time()
    await runtime.redis.set(HEARTBEAT_KEY, str(now), ex=180)
    return now


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set (`ledgerline worker` resolves it before starting)")
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions = [
        heartbeat,
        # attempts are counted on the event (api/webhook); arq's own cap only has to stay above them
        func(process_webhook_event, max_tries=50, keep_result=0),
        sweep_webhook_events,
        func(run_reconciliation, max_tries=1, timeout=3600),
        func(nightly_reconciliation, max_tries=1, timeout=3600),
        func(roll_up_usage, max_tries=1, timeout=1800),
        func(report_usage_to_stripe, max_tries=1, timeout=1800),
        func(run_dunning, max_tries=1, timeout=600),
        func(snapshot_revenue, max_tries=3, timeout=3600),
        func(compute_customer_health, max_tries=3, timeout=3600),
    ]
    cron_jobs = [
        cron(heartbeat, second=0, unique=True, run_at_startup=True),
        cron(sweep_webhook_events, second=30, unique=True),
        # 03:00 UTC, when billing traffic is lowest
        cron(nightly_reconciliation, hour=3, minute=0, second=0, unique=True, timeout=3600),
        # every minute; a run that overruns is not doubled (unique), and the next one catches up
        cron(roll_up_usage, second=10, unique=True, timeout=1800),
        cron(report_usage_to_stripe, second=40, unique=True, timeout=1800),
        # every minute: due dunning steps, trial-ending warnings, queued emails
        cron(run_dunning, second=15, unique=True, timeout=600),
        # 00:10 UTC: yesterday is closed (late webhooks are caught by the next night's rerun)
        cron(snapshot_revenue, hour=0, minute=10, second=0, unique=True, timeout=3600),
        # 02:00 UTC: yesterday's usage is rolled up and engagement counts closed days
        cron(compute_customer_health, hour=2, minute=0, second=0, unique=True, timeout=3600),
    ]
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 20
    job_timeout = 300
    keep_result = 3600
