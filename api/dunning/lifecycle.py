"""What every path that changes a case shares: locking it, its pending steps, finishing it.

Lock order: the case's invoice first, then the case. The webhook handlers lock the invoice (to
mirror it) before they touch the case, and payment retries lock the invoice again; taking the
same order everywhere means a webhook and a step running at once wait for each other instead of
deadlocking."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.dunning.models import DunningCase, DunningCaseStatus, DunningOutcome, DunningStep
from api.errors import NotFound
from api.invoice.models import Invoice

DUNNING_ACTOR = Actor.system("system:dunning")


async def lock_case(session: AsyncSession, case_id: uuid.UUID, *, skip_locked: bool = False) -> DunningCase | None:
    """The case, locked with its invoice; None when `skip_locked` and someone else holds either."""
    invoice_id = (
        await session.execute(select(DunningCase.invoice_id).where(DunningCase.id == case_id))
    ).scalar_one_or_none()
    if invoice_id is None:
        raise NotFound(f"dunning case {case_id} does not exist", field="case")
    locked_invoice = (
        await session.execute(
            select(Invoice.id).where(Invoice.id == invoice_id).with_for_update(skip_locked=skip_locked)
        )
    ).scalar_one_or_none()
    if locked_invoice is None:
        return None
    return (
        await session.execute(
            select(DunningCase)
            .where(DunningCase.id == case_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def case_steps(session: AsyncSession, case_id: uuid.UUID) -> list[DunningStep]:
    rows = await session.execute(
        select(DunningStep)
        .where(DunningStep.case_id == case_id)
        .order_by(DunningStep.position)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


def pending(steps: list[DunningStep]) -> list[DunningStep]:
    return [s for s in steps if s.outcome is None]


def case_snapshot(case: DunningCase) -> dict[str, Any]:
    return {
        "status": case.status.value,
        "invoice_id": str(case.invoice_id),
        "paused_at": case.paused_at.isoformat() if case.paused_at else None,
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "close_reason": case.close_reason,
    }


async def audit_case(
    session: AsyncSession, actor: Actor, action: str, case: DunningCase, before: dict[str, Any] | None, **extra: Any
) -> None:
    await record_audit(
        session, actor, action, "DunningCase", str(case.id), before=before, after={**case_snapshot(case), **extra}
    )


async def finish_case(
    session: AsyncSession, case: DunningCase, status: DunningCaseStatus, at: datetime, reason: str
) -> None:
    """Close the case; every step still pending is SKIPPED (it will never run)."""
    case.status, case.closed_at, case.close_reason, case.paused_at = status, at, reason[:500], None
    for step in pending(await case_steps(session, case.id)):
        step.outcome, step.error = DunningOutcome.SKIPPED, reason[:2000]
        step.results = [{"action": a, "outcome": DunningOutcome.SKIPPED.value, "error": None} for a in step.actions]
    await session.flush()
