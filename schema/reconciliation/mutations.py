"""reconcile, resolveDiscrepancies, resyncCustomer."""

from __future__ import annotations

import logging

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.reconciliation.models import ReconciliationRun as ReconciliationRunModel
from api.reconciliation.models import ReconciliationStatus
from api.reconciliation.service import (
    RECONCILE_JOB,
    ResolveResult,
    fail_run,
    get_run,
    reconcile_job_id,
    request_reconciliation,
    resolve_discrepancies,
    resync_customer,
)
from schema.context import Info
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.reconciliation.types import Discrepancy, ReconciliationRun
from schema.scalars import parse_id

log = logging.getLogger("ledgerline.reconciliation")


@strawberry.input
class ReconcileInput:
    customer: strawberry.ID | None = strawberry.field(
        default=None,
        description="One customer: compared now, the run is returned COMPLETED. Omitted: every customer, "
        "compared by a worker; the run is returned RUNNING.",
    )


@strawberry.type
class ReconcilePayload:
    run: ReconciliationRun | None
    user_errors: list[UserError]


@strawberry.input
class ResolveDiscrepanciesInput:
    run: strawberry.ID = strawberry.field(description="A COMPLETED ReconciliationRun.")
    apply: bool = strawberry.field(
        default=False, description="true: correct the local mirror from Stripe; false: a dry run."
    )


@strawberry.input
class ResyncCustomerInput:
    customer: strawberry.ID


@strawberry.type(description="What resolving did (or, in a dry run, would do) for one discrepancy.")
class DiscrepancyResolution:
    discrepancy: Discrepancy
    action: str = strawberry.field(
        description="UPDATE_FROM_STRIPE, CREATE_FROM_STRIPE, CLOSE_LOCALLY (a customer deleted in Stripe) "
        "or NEEDS_REVIEW (Stripe does not know the object: nothing is changed)."
    )
    applied: bool
    note: str | None


@strawberry.type
class ResolveDiscrepanciesPayload:
    run: ReconciliationRun | None
    applied: bool = strawberry.field(description="false for a dry run: nothing was changed.")
    resolutions: list[DiscrepancyResolution]
    user_errors: list[UserError]


def _resolve_payload(
    outcome_value: ResolveResult | None, errors: list[UserError], apply: bool
) -> ResolveDiscrepanciesPayload:
    if outcome_value is None:
        return ResolveDiscrepanciesPayload(run=None, applied=False, resolutions=[], user_errors=errors)
    return ResolveDiscrepanciesPayload(
        run=ReconciliationRun.from_model(outcome_value.run),
        applied=apply,
        resolutions=[
            DiscrepancyResolution(
                discrepancy=Discrepancy.from_model(r.discrepancy), action=r.action, applied=r.applied, note=r.note
            )
            for r in outcome_value.resolutions
        ],
        user_errors=errors,
    )


@strawberry.type
class ReconciliationMutations:
    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Compare the local mirror with Stripe (customers, subscriptions, invoices) and record "
        "every discrepancy.",
    )
    async def reconcile(self, info: Info, input: ReconcileInput | None = None) -> ReconcilePayload | None:
        context = info.context
        customer_id = parse_id(input.customer, "Customer", "customer") if input and input.customer else None

        async def work(session: AsyncSession, actor: Actor) -> ReconciliationRunModel:
            return await request_reconciliation(session, context.stripe, actor, customer_id)

        outcome = await run_mutation(info, work)
        run = outcome.value
        if run is not None and run.status is ReconciliationStatus.RUNNING:
            run = await _enqueue(info, run)
        return ReconcilePayload(run=ReconciliationRun.from_model(run) if run else None, user_errors=outcome.user_errors)

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Resolve a run's open discrepancies: with apply, the local mirror is corrected from "
        "Stripe (the source of truth); without, a dry run says what would change.",
    )
    async def resolve_discrepancies(
        self, info: Info, input: ResolveDiscrepanciesInput
    ) -> ResolveDiscrepanciesPayload | None:
        gateway = info.context.stripe

        async def work(session: AsyncSession, actor: Actor) -> ResolveResult:
            run_id = parse_id(input.run, "ReconciliationRun", "run")
            return await resolve_discrepancies(session, gateway, actor, run_id, apply=input.apply)

        outcome = await run_mutation(info, work)
        return _resolve_payload(outcome.value, outcome.user_errors, input.apply)

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Reconcile one customer and correct its local mirror from Stripe at once.",
    )
    async def resync_customer(self, info: Info, input: ResyncCustomerInput) -> ResolveDiscrepanciesPayload | None:
        gateway = info.context.stripe

        async def work(session: AsyncSession, actor: Actor) -> ResolveResult:
            customer_id = parse_id(input.customer, "Customer", "customer")
            return await resync_customer(session, gateway, actor, customer_id)

        outcome = await run_mutation(info, work)
        return _resolve_payload(outcome.value, outcome.user_errors, True)


async def _enqueue(info: Info, run: ReconciliationRunModel) -> ReconciliationRunModel:
    """After commit: queue the run's job; a run that cannot be queued is marked FAILED."""
    context = info.context
    try:
        if context.arq is None:
            raise RuntimeError("no job queue is configured")
        pool = await context.arq()
        await pool.enqueue_job(RECONCILE_JOB, str(run.id), _job_id=reconcile_job_id(run.id))
        return run
    except Exception as exc:
        log.exception("could not enqueue reconciliation run %s", run.id)
        async with context.session() as session, session.begin():
            await fail_run(session, run.id, f"could not be queued: {exc}")
            return await get_run(session, run.id)
