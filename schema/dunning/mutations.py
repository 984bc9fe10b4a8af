"""updateDunningPolicy; pauseDunning, resumeDunning, retryDunningNow, closeDunningCase."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.db import utcnow
from api.dunning import cases
from api.dunning.models import DunningCase as DunningCaseModel
from api.dunning.policy import Policy, PolicyStep, update_policy
from api.dunning.service import case_views
from schema.context import Info
from schema.customer.types import CustomerTierEnum
from schema.dunning.types import DunningActionEnum, DunningCase, DunningPolicy, DunningStep
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import parse_id


@strawberry.input
class DunningPolicyStepInput:
    day: int = strawberry.field(description="Days after the failed payment (0 to 120), later than the step before.")
    actions: list[DunningActionEnum]  # type: ignore[valid-type]


@strawberry.input
class UpdateDunningPolicyInput:
    tier: CustomerTierEnum  # type: ignore[valid-type]
    steps: list[DunningPolicyStepInput]


@strawberry.type
class UpdateDunningPolicyPayload:
    policy: DunningPolicy | None
    user_errors: list[UserError]


@strawberry.input
class DunningCaseInput:
    case: strawberry.ID = strawberry.field(description="The DunningCase's id.")


@strawberry.input
class CloseDunningCaseInput:
    case: strawberry.ID = strawberry.field(description="The DunningCase's id.")
    reason: str = strawberry.field(description="Why it is closed (kept on the case and in the audit trail).")


@strawberry.type
class DunningCasePayload:
    dunning_case: DunningCase | None
    user_errors: list[UserError]


@strawberry.type
class RetryDunningNowPayload:
    dunning_case: DunningCase | None
    step: DunningStep | None = strawberry.field(description="The manual step this retry added, with its outcome.")
    user_errors: list[UserError]


CaseCommand = Callable[[AsyncSession, Actor, uuid.UUID], Awaitable[DunningCaseModel]]


async def _case_payload(info: Info, case_id: strawberry.ID, command: CaseCommand) -> DunningCasePayload:
    async def work(session: AsyncSession, actor: Actor) -> DunningCase:
        case = await command(session, actor, parse_id(case_id, "DunningCase", "case"))
        (view,) = await case_views(session, [case])
        return DunningCase.from_view(view)

    outcome = await run_mutation(info, work)
    return DunningCasePayload(dunning_case=outcome.value, user_errors=outcome.user_errors)


@strawberry.type
class DunningMutations:
    @guarded(
        Capability.DUNNING_POLICY_MANAGE,
        description="Replace a tier's dunning steps. Cases already open keep the steps they were opened with.",
    )
    async def update_dunning_policy(
        self, info: Info, input: UpdateDunningPolicyInput
    ) -> UpdateDunningPolicyPayload | None:
        steps = [PolicyStep(s.day, tuple(s.actions)) for s in input.steps]

        async def work(session: AsyncSession, actor: Actor) -> Policy:
            return await update_policy(session, actor, input.tier, steps)

        outcome = await run_mutation(info, work)
        return UpdateDunningPolicyPayload(
            policy=DunningPolicy.from_policy(outcome.value) if outcome.value else None,
            user_errors=outcome.user_errors,
        )

    @guarded(Capability.BILLING_OPERATIONS, description="Stop an OPEN case's steps until it is resumed.")
    async def pause_dunning(self, info: Info, input: DunningCaseInput) -> DunningCasePayload | None:
        return await _case_payload(info, input.case, lambda s, a, c: cases.pause_case(s, a, c, utcnow()))

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Resume a PAUSED case: its pending steps move later by the time it was paused.",
    )
    async def resume_dunning(self, info: Info, input: DunningCaseInput) -> DunningCasePayload | None:
        return await _case_payload(info, input.case, lambda s, a, c: cases.resume_case(s, a, c, utcnow()))

    @guarded(Capability.BILLING_OPERATIONS, description="Close an OPEN or PAUSED case: its pending steps never run.")
    async def close_dunning_case(self, info: Info, input: CloseDunningCaseInput) -> DunningCasePayload | None:
        reason = input.reason
        return await _case_payload(info, input.case, lambda s, a, c: cases.close_case(s, a, c, reason, utcnow()))

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Retry the invoice's payment through Stripe now (a manual step of the case); a success "
        "recovers the case, a decline is the step's FAILED outcome.",
    )
    async def retry_dunning_now(self, info: Info, input: DunningCaseInput) -> RetryDunningNowPayload | None:
        gateway = info.context.stripe

        async def work(session: AsyncSession, actor: Actor) -> tuple[DunningCase, DunningStep]:
            retried = await cases.retry_now(
                session, actor, gateway, parse_id(input.case, "DunningCase", "case"), utcnow()
            )
            (view,) = await case_views(session, [retried.case])
            return DunningCase.from_view(view), DunningStep.from_model(retried.step)

        outcome = await run_mutation(info, work)
        case, step = outcome.value if outcome.value else (None, None)
        return RetryDunningNowPayload(dunning_case=case, step=step, user_errors=outcome.user_errors)
