"""Dunning policies: the default, one editable policy per customer tier, and their validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.customer.models import CustomerTier
from api.dunning.models import DunningAction, DunningPolicy
from api.errors import Invalid

A = DunningAction
MAX_STEPS = 12
MAX_DAY = 120
EMAILS = (A.EMAIL_PAYMENT_FAILED, A.EMAIL_RETRY_FAILED, A.EMAIL_FINAL_NOTICE)


@dataclass(frozen=True, slots=True)
class PolicyStep:
    day: int
    actions: tuple[DunningAction, ...]

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "actions": [a.value for a in self.actions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyStep:
        return cls(int(data["day"]), tuple(DunningAction(a) for a in data["actions"]))


# day 0 tell, day 3 retry and tell, day 7 retry and warn, day 14 stop collecting and suspend
DEFAULT_STEPS: tuple[PolicyStep, ...] = (
    PolicyStep(0, (A.EMAIL_PAYMENT_FAILED,)),
    PolicyStep(3, (A.RETRY_PAYMENT, A.EMAIL_RETRY_FAILED)),
    PolicyStep(7, (A.RETRY_PAYMENT, A.EMAIL_FINAL_NOTICE)),
    PolicyStep(14, (A.MARK_UNCOLLECTIBLE, A.SUSPEND_CUSTOMER)),
)


@dataclass(frozen=True, slots=True)
class Policy:
    tier: CustomerTier
    steps: tuple[PolicyStep, ...]
    is_default: bool
    updated_at: datetime | None = None
    updated_by: str | None = None

    def steps_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


def _policy(tier: CustomerTier, row: DunningPolicy | None) -> Policy:
    if row is None:
        return Policy(tier, DEFAULT_STEPS, is_default=True)
    steps = tuple(PolicyStep.from_json(s) for s in row.steps)
    return Policy(tier, steps, is_default=False, updated_at=row.updated_at, updated_by=row.updated_by)


async def get_policy(session: AsyncSession, tier: CustomerTier) -> Policy:
    return _policy(tier, await session.get(DunningPolicy, tier))


async def list_policies(session: AsyncSession) -> list[Policy]:
    rows = {row.tier: row for row in (await session.execute(select(DunningPolicy))).scalars()}
    return [_policy(tier, rows.get(tier)) for tier in CustomerTier]


def validate_steps(steps: Sequence[PolicyStep]) -> None:
    """Errors name the input field (`steps.2.day`)."""
    if not 1 <= len(steps) <= MAX_STEPS:
        raise Invalid(f"give between 1 and {MAX_STEPS} `steps`", field="steps")
    previous_day = -1
    for i, step in enumerate(steps):
        if not 0 <= step.day <= MAX_DAY:
            raise Invalid(f"`day` must be between 0 and {MAX_DAY}", field=f"steps.{i}.day")
        if step.day <= previous_day:
            raise Invalid("`day` must be later than the previous step's", field=f"steps.{i}.day")
        previous_day = step.day
        if not step.actions:
            raise Invalid("a step needs at least one action", field=f"steps.{i}.actions")
        if len(set(step.actions)) != len(step.actions):
            raise Invalid("an action appears twice in this step", field=f"steps.{i}.actions")
        if A.EMAIL_RETRY_FAILED in step.actions and A.RETRY_PAYMENT not in step.actions:
            raise Invalid("EMAIL_RETRY_FAILED needs RETRY_PAYMENT in the same step", field=f"steps.{i}.actions")
        if A.EMAIL_RETRY_FAILED in step.actions and (
            step.actions.index(A.EMAIL_RETRY_FAILED) < step.actions.index(A.RETRY_PAYMENT)
        ):
            raise Invalid("EMAIL_RETRY_FAILED must come after RETRY_PAYMENT", field=f"steps.{i}.actions")


async def update_policy(session: AsyncSession, actor: Actor, tier: CustomerTier, steps: Sequence[PolicyStep]) -> Policy:
    """Replace the tier's steps (cases already open keep the steps they were opened with)."""
    validate_steps(steps)
    row = await session.get(DunningPolicy, tier, with_for_update=True)
    before = _policy(tier, row)
    new_steps = [s.to_json() for s in steps]
    if row is None:
        row = DunningPolicy(tier=tier, steps=new_steps, updated_by=actor.subject)
        session.add(row)
    else:
        row.steps, row.updated_by = new_steps, actor.subject
    await session.flush()
    await record_audit(
        session,
        actor,
        "updateDunningPolicy",
        "DunningPolicy",
        tier.value,
        before={"steps": before.steps_json(), "default": before.is_default},
        after={"steps": new_steps, "default": False},
    )
    return _policy(tier, row)
