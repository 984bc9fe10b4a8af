"""Running one step of a case: its actions in order, each with its own outcome.

A step runs inside the caller's transaction with the case locked (see lifecycle), and is marked
executed in that same transaction, so a step commits exactly once. Stripe calls carry
idempotency keys derived from (case, step, action): a run repeated after a crash gets Stripe's
first answer back and never charges twice. Emails are only queued here; they are sent after
the commit. A Stripe outage (ProviderError) propagates: the step is rolled back whole and runs
again on the next round."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.common.money import format_minor
from api.customer.commands import suspend_customer
from api.customer.models import Customer, CustomerStatus
from api.dunning.lifecycle import case_steps, finish_case, pending
from api.dunning.models import DunningAction, DunningCase, DunningCaseStatus, DunningOutcome, DunningStep
from api.errors import Conflict, Invalid, NotFound
from api.invoice.commands import mark_invoice_uncollectible, pay_invoice
from api.invoice.models import Invoice, InvoiceStatus
from api.mail.service import NewEmail, queue_email
from api.mail.templates import EmailTemplate
from api.stripe.gateway import StripeGateway
from api.subscription.commands import cancel_subscription
from api.subscription.models import Subscription, SubscriptionStatus

A = DunningAction
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: DunningAction
    outcome: DunningOutcome
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "outcome": self.outcome.value, "error": self.error}


@dataclass(slots=True)
class StepRun:
    """Everything an action needs, and what earlier actions of the step did."""

    session: AsyncSession
    actor: Actor
    gateway: StripeGateway
    case: DunningCase
    step: DunningStep
    invoice: Invoice
    customer: Customer
    now: datetime
    final_at: datetime
    results: list[ActionResult]

    def key(self, action: DunningAction) -> str:
        """The idempotency key of one action of this step (the same on every re-run)."""
        return f"dunning-{self.case.id}-{self.step.position}-{action.value.lower()}"

    def ok(self, action: DunningAction) -> ActionResult:
        return ActionResult(action, DunningOutcome.SUCCEEDED)

    def skip(self, action: DunningAction, why: str) -> ActionResult:
        return ActionResult(action, DunningOutcome.SKIPPED, why)

    def fail(self, action: DunningAction, why: str) -> ActionResult:
        return ActionResult(action, DunningOutcome.FAILED, why[:MAX_ERROR])


EMAIL_TEMPLATES = {
    A.EMAIL_PAYMENT_FAILED: EmailTemplate.PAYMENT_FAILED,
    A.EMAIL_RETRY_FAILED: EmailTemplate.RETRY_FAILED,
    A.EMAIL_FINAL_NOTICE: EmailTemplate.FINAL_NOTICE,
}


async def _email(run: StepRun, action: DunningAction) -> ActionResult:
    if action is A.EMAIL_RETRY_FAILED and not any(
        r.action is A.RETRY_PAYMENT and r.outcome is DunningOutcome.FAILED for r in run.results
    ):
        return run.skip(action, "the payment retry did not fail")
    if not run.customer.email:
        return run.skip(action, "the customer has no email address")
    invoice = run.invoice
    values = {
        "customer_name": run.customer.name,
        "invoice_number": invoice.number or str(invoice.id),
        "amount": f"{format_minor(invoice.amount_remaining, invoice.currency)} {invoice.currency.upper()}",
        "pay_url": invoice.hosted_invoice_url or "reply to this email and we will help you pay",
        "deadline": run.final_at.strftime("%d %B %Y"),
    }
    await queue_email(
        run.session,
        NewEmail(
            to=run.customer.email,
            template=EMAIL_TEMPLATES[action],
            values=values,
            dedup_key=run.key(action),
            customer_id=run.customer.id,
            related_id=run.case.id,
        ),
    )
    return run.ok(action)


async def recover(run: StepRun, why: str) -> None:
    await finish_case(run.session, run.case, DunningCaseStatus.RECOVERED, run.now, why)


async def _retry_payment(run: StepRun, action: DunningAction) -> ActionResult:
    if run.invoice.status is InvoiceStatus.PAID:
        await recover(run, "the invoice was paid")
        return run.skip(action, "the invoice is already paid")
    if run.invoice.status is InvoiceStatus.VOID:
        return run.skip(action, "the invoice is void")
    outcome = await pay_invoice(run.session, run.actor, run.gateway, run.invoice.id, run.key(action))
    if outcome.error is not None:
        return run.fail(action, f"{outcome.error.message} ({outcome.error.reason})")
    if outcome.invoice.status is InvoiceStatus.PAID:
        await recover(run, "the payment retry succeeded")
    return run.ok(action)


async def _mark_uncollectible(run: StepRun, action: DunningAction) -> ActionResult:
    if run.invoice.status is not InvoiceStatus.OPEN:
        return run.skip(action, f"the invoice is {run.invoice.status.value}")
    await mark_invoice_uncollectible(run.session, run.actor, run.gateway, run.invoice.id, run.key(action))
    return run.ok(action)


async def _suspend(run: StepRun, action: DunningAction) -> ActionResult:
    if run.customer.status is CustomerStatus.SUSPENDED:
        return run.skip(action, "the customer is already suspended")
    reason = f"unpaid invoice {run.invoice.number or run.invoice.id} (dunning)"
    await suspend_customer(run.session, run.actor, run.customer.id, reason, run.key(action))
    return run.ok(action)


async def _cancel(run: StepRun, action: DunningAction) -> ActionResult:
    if run.invoice.subscription_id is None:
        return run.skip(action, "the invoice belongs to no subscription")
    sub = await run.session.get(Subscription, run.invoice.subscription_id)
    if sub is None or sub.status is SubscriptionStatus.CANCELED:
        return run.skip(action, "the subscription is already canceled")
    await cancel_subscription(run.session, run.actor, run.gateway, sub.id, False, run.key(action))
    return run.ok(action)


ACTIONS: dict[DunningAction, Callable[[StepRun, DunningAction], Awaitable[ActionResult]]] = {
    A.EMAIL_PAYMENT_FAILED: _email,
    A.EMAIL_RETRY_FAILED: _email,
    A.EMAIL_FINAL_NOTICE: _email,
    A.RETRY_PAYMENT: _retry_payment,
    A.MARK_UNCOLLECTIBLE: _mark_uncollectible,
    A.SUSPEND_CUSTOMER: _suspend,
    A.CANCEL_SUBSCRIPTION: _cancel,
}
assert set(ACTIONS) == set(DunningAction), "every action needs an implementation"


def _step_outcome(results: list[ActionResult]) -> tuple[DunningOutcome, str | None]:
    failed = [r for r in results if r.outcome is DunningOutcome.FAILED]
    if failed:
        return DunningOutcome.FAILED, failed[0].error
    if all(r.outcome is DunningOutcome.SKIPPED for r in results):
        return DunningOutcome.SKIPPED, results[0].error if results else None
    return DunningOutcome.SUCCEEDED, None


async def execute_step(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, case: DunningCase, step: DunningStep, now: datetime
) -> list[ActionResult]:
    """Run the step's actions (the case and its invoice locked by the caller), record each
    outcome, and close the case as EXHAUSTED when this was its last step and it is not paid."""
    invoice = await session.get(Invoice, case.invoice_id, populate_existing=True)
    customer = await session.get(Customer, case.customer_id, populate_existing=True)
    assert invoice is not None and customer is not None
    steps = await case_steps(session, case.id)
    final_at = max(s.scheduled_at for s in steps)
    run = StepRun(session, actor, gateway, case, step, invoice, customer, now, final_at, [])
    for name in step.actions:
        action = DunningAction(name)
        if case.status is DunningCaseStatus.RECOVERED:
            run.results.append(run.skip(action, "the invoice was paid"))
            continue
        try:
            async with session.begin_nested():
                result = await ACTIONS[action](run, action)
        except (Invalid, NotFound, Conflict) as exc:
            result = run.fail(action, exc.message)
        run.results.append(result)
    step.executed_at = now
    step.outcome, step.error = _step_outcome(run.results)
    step.results = [r.to_json() for r in run.results]
    await session.flush()
    remaining = [s for s in pending(await case_steps(session, case.id)) if s.id != step.id]
    if case.status is DunningCaseStatus.OPEN and not remaining and not step.manual:
        await finish_case(session, case, DunningCaseStatus.EXHAUSTED, now, "every step ran; the invoice is unpaid")
    return run.results
