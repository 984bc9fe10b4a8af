"""Dunning cases: opened by a failed payment, recovered by a paid invoice (both from webhooks),
stepped by the worker, and paused, resumed, retried or closed by staff (each audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.audit.record import Actor
from api.common.money import format_minor
from api.customer.models import Customer
from api.dunning.lifecycle import (
    DUNNING_ACTOR,
    audit_case,
    case_snapshot,
    case_steps,
    finish_case,
    lock_case,
    pending,
)
from api.dunning.models import CLOSED_STATUSES, DunningCase, DunningCaseStatus, DunningStep
from api.dunning.policy import get_policy
from api.dunning.steps import ActionResult, execute_step
from api.errors import Invalid
from api.invoice.models import Invoice, InvoiceStatus
from api.stripe.gateway import StripeGateway

MAX_REASON = 500


# --- from webhooks ----------------------------------------------------------------------------------


async def _invoice_by_stripe_id(session: AsyncSession, stripe_invoice_id: str | None) -> Invoice | None:
    if stripe_invoice_id is None:
        return None
    return (
        await session.execute(select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice_id))
    ).scalar_one_or_none()


async def open_case(session: AsyncSession, stripe_invoice_id: str | None, failed_at: datetime) -> DunningCase | None:
    """On invoice.payment_failed (after the invoice is mirrored): one case per invoice, whatever
    the number of deliveries or failed attempts, with the customer's tier's steps counted from
    the failure. Nothing when the invoice is no longer open (paid in the meantime). The new case
    raises a PAYMENT_FAILED alert."""
    invoice = await _invoice_by_stripe_id(session, stripe_invoice_id)
    if invoice is None or invoice.status is not InvoiceStatus.OPEN:
        return None
    customer = await session.get(Customer, invoice.customer_id)
    assert customer is not None
    policy = await get_policy(session, customer.tier)
    case_id = (
        await session.execute(
            insert(DunningCase)
            .values(
                id=uuid.uuid4(),
                invoice_id=invoice.id,
                customer_id=customer.id,
                status=DunningCaseStatus.OPEN,
                tier=customer.tier,
                opened_at=failed_at,
            )
            .on_conflict_do_nothing(index_elements=[DunningCase.invoice_id])
            .returning(DunningCase.id)
        )
    ).scalar_one_or_none()
    if case_id is None:
        return None  # a case exists for this invoice already
    for position, step in enumerate(policy.steps):
        session.add(
            DunningStep(
                case_id=case_id,
                position=position,
                day=step.day,
                actions=[a.value for a in step.actions],
                scheduled_at=failed_at + timedelta(days=step.day),
            )
        )
    await session.flush()
    case = await session.get(DunningCase, case_id)
    assert case is not None
    amount = f"{format_minor(invoice.amount_remaining, invoice.currency)} {invoice.currency.upper()}"
    await raise_alert(
        session,
        NewAlert(
            kind=AlertKind.PAYMENT_FAILED,
            severity=AlertSeverity.WARNING,
            message=f"Payment of {amount} failed for invoice {invoice.number or invoice.id} of {customer.name}",
            dedup_key=f"payment_failed:{invoice.id}",
            customer_id=customer.id,
            details={"invoice_id": str(invoice.id), "dunning_case_id": str(case.id), "amount": amount},
        ),
    )
    await audit_case(session, DUNNING_ACTOR, "dunningCaseOpened", case, None, tier=case.tier.value)
    return case


async def recover_case(session: AsyncSession, stripe_invoice_id: str | None, paid_at: datetime) -> DunningCase | None:
    """On invoice.paid: the invoice's open or paused case is RECOVERED; its pending steps never run."""
    invoice = await _invoice_by_stripe_id(session, stripe_invoice_id)
    if invoice is None or invoice.status is not InvoiceStatus.PAID:
        return None
    case_id = (
        await session.execute(select(DunningCase.id).where(DunningCase.invoice_id == invoice.id))
    ).scalar_one_or_none()
    if case_id is None:
        return None
    case = await lock_case(session, case_id)
    if case is None or case.status in CLOSED_STATUSES:
        return None
    before = case_snapshot(case)
    await finish_case(session, case, DunningCaseStatus.RECOVERED, paid_at, "the invoice was paid")
    await audit_case(session, DUNNING_ACTOR, "dunningCaseRecovered", case, before)
    return case


# --- the worker ---------------------------------------------------------------------------------------


async def _next_due_step(session: AsyncSession, case_id: uuid.UUID, now: datetime) -> DunningStep | None:
    due = [s for s in pending(await case_steps(session, case_id)) if s.scheduled_at <= now]
    return due[0] if due else None


async def cases_with_due_steps(session: AsyncSession, now: datetime, limit: int = 500) -> list[uuid.UUID]:
    rows = await session.execute(
        select(DunningStep.case_id)
        .join(DunningCase, DunningCase.id == DunningStep.case_id)
        .where(
            DunningCase.status == DunningCaseStatus.OPEN,
            DunningStep.outcome.is_(None),
            DunningStep.scheduled_at <= now,
        )
        .group_by(DunningStep.case_id)
        .order_by(func.min(DunningStep.scheduled_at))
        .limit(limit)
    )
    return list(rows.scalars())


async def run_next_step(
    session: AsyncSession, gateway: StripeGateway, case_id: uuid.UUID, now: datetime
) -> DunningStep | None:
    """Run the case's earliest due step, unless another run holds the case (SKIP LOCKED) or
    nothing is due any more; the step executed, or None."""
    case = await lock_case(session, case_id, skip_locked=True)
    if case is None or case.status is not DunningCaseStatus.OPEN:
        return None
    step = await _next_due_step(session, case.id, now)
    if step is None:
        return None
    before = case_snapshot(case)
    await execute_step(session, DUNNING_ACTOR, gateway, case, step, now)
    if case.status is not DunningCaseStatus.OPEN:
        await audit_case(session, DUNNING_ACTOR, f"dunningCase{case.status.value.title()}", case, before)
    return step


# --- staff actions ----------------------------------------------------------------------------------------


async def _lock_for_command(session: AsyncSession, case_id: uuid.UUID) -> DunningCase:
    case = await lock_case(session, case_id)
    assert case is not None  # a blocking lock always returns the case
    return case


def _require(case: DunningCase, *statuses: DunningCaseStatus, doing: str) -> None:
    if case.status not in statuses:
        allowed = " or ".join(s.value for s in statuses)
        raise Invalid(f"only a case that is {allowed} can be {doing} (this one is {case.status.value})", field="case")


async def pause_case(session: AsyncSession, actor: Actor, case_id: uuid.UUID, now: datetime) -> DunningCase:
    case = await _lock_for_command(session, case_id)
    _require(case, DunningCaseStatus.OPEN, doing="paused")
    before = case_snapshot(case)
    case.status, case.paused_at = DunningCaseStatus.PAUSED, now
    await session.flush()
    await audit_case(session, actor, "pauseDunning", case, before)
    return case


async def resume_case(session: AsyncSession, actor: Actor, case_id: uuid.UUID, now: datetime) -> DunningCase:
    """Back to OPEN; the pending steps move later by the time the case was paused, so the
    customer gets the same spacing between steps as without the pause."""
    case = await _lock_for_command(session, case_id)
    _require(case, DunningCaseStatus.PAUSED, doing="resumed")
    before = case_snapshot(case)
    paused_for = max(now - (case.paused_at or now), timedelta(0))
    for step in pending(await case_steps(session, case.id)):
        step.scheduled_at += paused_for
    case.status, case.paused_at = DunningCaseStatus.OPEN, None
    await session.flush()
    await audit_case(session, actor, "resumeDunning", case, before, shifted_by_seconds=int(paused_for.total_seconds()))
    return case


async def close_case(
    session: AsyncSession, actor: Actor, case_id: uuid.UUID, reason: str, now: datetime
) -> DunningCase:
    reason = reason.strip()
    if not reason:
        raise Invalid("`reason` must not be empty", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"`reason` is longer than {MAX_REASON} characters", field="reason")
    case = await _lock_for_command(session, case_id)
    _require(case, DunningCaseStatus.OPEN, DunningCaseStatus.PAUSED, doing="closed")
    before = case_snapshot(case)
    await finish_case(session, case, DunningCaseStatus.CLOSED, now, reason)
    await audit_case(session, actor, "closeDunningCase", case, before)
    return case


@dataclass(slots=True)
class Retried:
    case: DunningCase
    step: DunningStep
    results: list[ActionResult]


async def retry_now(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, case_id: uuid.UUID, now: datetime
) -> Retried:
    """Retry the payment now, as a manual step of the case (attributed to the person); a success
    recovers the case. The scheduled steps stay as they are."""
    case = await _lock_for_command(session, case_id)
    _require(case, DunningCaseStatus.OPEN, DunningCaseStatus.PAUSED, doing="retried")
    before = case_snapshot(case)
    steps = await case_steps(session, case.id)
    step = DunningStep(
        case_id=case.id,
        position=max((s.position for s in steps), default=-1) + 1,
        day=None,
        actions=["RETRY_PAYMENT"],
        manual=True,
        scheduled_at=now,
    )
    session.add(step)
    await session.flush()
    results = await execute_step(session, actor, gateway, case, step, now)
    await audit_case(session, actor, "retryDunningNow", case, before, retry=[r.to_json() for r in results])
    return Retried(case, step, results)
