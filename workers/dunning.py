"""The dunning job (cron, every minute): due steps of open cases, trial-ending warnings, then
delivery of the emails they queued (after those transactions committed).

Its clock is `ctx["clock"]` when set (tests move it together with the Stripe emulator's), real
time otherwise. Safe to run twice or concurrently: each step runs under its case's row lock
(SKIP LOCKED) and is marked executed in the same transaction; warnings and emails are deduplicated
by key; each email is locked while it is sent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from api.db import utcnow
from api.dunning.cases import run_due_steps
from api.dunning.trials import warn_trials_ending
from api.mail.service import deliver_pending, make_sender
from api.runtime import Runtime

log = logging.getLogger("ledgerline.dunning")

Clock = Callable[[], datetime]


def job_clock(ctx: dict[str, Any]) -> Clock:
    clock: Clock = ctx.get("clock") or utcnow
    return clock


async def run_dunning(ctx: dict[str, Any]) -> dict[str, int]:
    runtime: Runtime = ctx["runtime"]
    now = job_clock(ctx)()
    report = await run_due_steps(runtime.session_factory, runtime.stripe, now)
    async with runtime.session_factory() as session, session.begin():
        warned = await warn_trials_ending(session, now)
    delivery = await deliver_pending(runtime.session_factory, make_sender(runtime.settings))
    if report.steps or warned or delivery.sent or delivery.failed:
        log.info(
            "dunning: %d steps run, %d trials warned, %d emails sent, %d refused",
            report.steps,
            warned,
            delivery.sent,
            delivery.failed,
        )
    return {
        "steps": report.steps,
        "step_errors": report.errors,
        "trials_warned": warned,
        "emails_sent": delivery.sent,
        "emails_refused": delivery.failed,
    }
