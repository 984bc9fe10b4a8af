"""Reconciliation jobs: complete a run the `reconcile` mutation queued; the nightly run."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from api.reconciliation.models import ReconciliationRun
from api.reconciliation.service import SYSTEM_ACTOR, execute_run, fail_run, start_run
from api.runtime import Runtime

log = logging.getLogger("ledgerline.reconciliation")


async def _execute(runtime: Runtime, run_id: uuid.UUID) -> str:
    """One transaction for the comparison; a failure is recorded on the run (FAILED, error)."""
    try:
        async with runtime.session_factory() as session, session.begin():
            run = await session.get(ReconciliationRun, run_id, with_for_update=True)
            if run is None:
                return "MISSING"
            await execute_run(session, runtime.stripe, run)
            return run.status.value
    except Exception as exc:
        log.exception("reconciliation run %s failed", run_id)
        async with runtime.session_factory() as session, session.begin():
            await fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
        return "FAILED"


async def run_reconciliation(ctx: dict[str, Any], run_id: str) -> str:
    """The run a `reconcile` mutation (all customers) created RUNNING."""
    runtime: Runtime = ctx["runtime"]
    return await _execute(runtime, uuid.UUID(run_id))


async def nightly_reconciliation(ctx: dict[str, Any]) -> str:
    """Every customer, every night (cron, unique): the run is visible as RUNNING meanwhile."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session, session.begin():
        run = await start_run(session, SYSTEM_ACTOR, None)
    return await _execute(runtime, run.id)
