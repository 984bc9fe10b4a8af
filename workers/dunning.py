"""The dunning job (cron, every minute): due steps of open cases, trial-ending warnings, then
delivery of the emails they queued (after those transactions committed).

The job owns the transactions: one per step, one for the warnings, one per email. Its clock is
`ctx["clock"]` when set (tests move it together with the Stripe emulator's), real time otherwise.
Safe to run twice or concurrently: a step runs under its case's row locks (SKIP LOCKED) and is
marked executed in its own transaction; warnings and emails are deduplicated by key; each email
is locked while it is sent."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from api.db import utcnow
from api.dunning.cases import cases_with_due_steps, run_next_step
from api.dunning.trials import warn_trials_ending
from api.errors import ProviderError
from api.mail.service import deliver_email, make_sender, pending_email_ids
from api.runtime import Runtime

log = logging.getLogger("ledgerline.dunning")


async def _run_case(runtime: Runtime, case_id: uuid.UUID, now: datetime) -> int:
    """The case's due steps, oldest first, each in its own transaction; how many ran. A Stripe
    outage rolls the step back: it stays pending for the next round."""
    ran = 0
    try:
        while True:
            async with runtime.session_factory() as session, session.begin():
                step = await run_next_step(session, runtime.stripe, case_id, now)
            if step is None:
                return ran
            ran += 1
    except ProviderError as exc:
        log.warning("dunning case %s: Stripe failed, the step runs again next round: %s", case_id, exc)
        return ran


async def _deliver(runtime: Runtime) -> tuple[int, int]:
    """(sent, refused) among the pending emails; none is sent while SMTP_URL is unset."""
    async with runtime.session_factory() as session:
        ids = await pending_email_ids(session)
    sender = make_sender(runtime.settings)
    if sender is None:
        if ids:
            log.warning("%d emails wait in the outbox: SMTP_URL is not set", len(ids))
        return 0, 0
    sent = refused = 0
    for email_id in ids:
        async with runtime.session_factory() as session, session.begin():
            outcome = await deliver_email(session, email_id, sender)
        sent += outcome is True
        refused += outcome is False
    return sent, refused


async def run_dunning(ctx: dict[str, Any]) -> dict[str, int]:
    runtime: Runtime = ctx["runtime"]
    clock: Callable[[], datetime] = ctx.get("clock") or utcnow
    now = clock()
    async with runtime.session_factory() as session:
        case_ids = await cases_with_due_steps(session, now)
    steps = 0
    for case_id in case_ids:
        steps += await _run_case(runtime, case_id, now)
    async with runtime.session_factory() as session, session.begin():
        warned = await warn_trials_ending(session, now)
    sent, refused = await _deliver(runtime)
    if steps or warned or sent or refused:
        log.info("dunning: %d steps run, %d trials warned, %d emails sent, %d refused", steps, warned, sent, refused)
    return {"steps": steps, "trials_warned": warned, "emails_sent": sent, "emails_refused": refused}
