from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.auth.permissions import Capability
from api.dunning.models import DunningAction, DunningCaseStatus, DunningOutcome
from api.dunning.models import DunningStep as DunningStepModel
from api.dunning.policy import Policy
from api.dunning.service import CaseView
from api.mail.models import EmailStatus
from api.mail.models import OutboundEmail as OutboundEmailModel
from schema.context import Info
from schema.customer.types import CustomerTierEnum
from schema.invoice.types import Invoice
from schema.permissions import guarded
from schema.scalars import Node, to_global_id

if TYPE_CHECKING:
    from schema.customer.types import Customer

DunningActionEnum = strawberry.enum(
    DunningAction,
    name="DunningAction",
    description="EMAIL_PAYMENT_FAILED, EMAIL_RETRY_FAILED (only when the step's RETRY_PAYMENT failed) and "
    "EMAIL_FINAL_NOTICE email the customer; RETRY_PAYMENT charges the invoice through Stripe (a success "
    "recovers the case); MARK_UNCOLLECTIBLE, SUSPEND_CUSTOMER, CANCEL_SUBSCRIPTION end collection.",
)
DunningCaseStatusEnum = strawberry.enum(
    DunningCaseStatus,
    name="DunningCaseStatus",
    description="OPEN: steps run when due; PAUSED: nothing runs (resuming shifts the pending steps by the "
    "pause); RECOVERED: the invoice was paid; EXHAUSTED: every step ran unpaid; CLOSED: closed by a person.",
)
DunningOutcomeEnum = strawberry.enum(DunningOutcome, name="DunningOutcome")
EmailStatusEnum = strawberry.enum(EmailStatus, name="EmailStatus")


@strawberry.type(description="One step of a dunning policy: what happens `day` days after the failed payment.")
class DunningPolicyStep:
    day: int
    actions: list[DunningActionEnum]  # type: ignore[valid-type]


@strawberry.type(description="The steps taken after a failed payment of a customer of this tier.")
class DunningPolicy:
    tier: CustomerTierEnum  # type: ignore[valid-type]
    steps: list[DunningPolicyStep]
    is_default: bool = strawberry.field(description="true: the tier uses the default policy (never edited).")
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def from_policy(cls, p: Policy) -> DunningPolicy:
        return cls(
            tier=p.tier,
            steps=[DunningPolicyStep(day=s.day, actions=list(s.actions)) for s in p.steps],
            is_default=p.is_default,
            updated_at=p.updated_at,
            updated_by=p.updated_by,
        )


@strawberry.type(description="What one action of a step did.")
class DunningActionResult:
    action: DunningActionEnum  # type: ignore[valid-type]
    outcome: DunningOutcomeEnum  # type: ignore[valid-type]
    error: str | None = strawberry.field(description="Why it failed or was skipped.")


@strawberry.type(description="A step of a case: scheduled from the policy (or a manual retry), then executed once.")
class DunningStep:
    position: int
    day: int | None = strawberry.field(description="Days after the case opened; null for a manual retry.")
    manual: bool = strawberry.field(description="true: a retryDunningNow by a person.")
    actions: list[DunningActionEnum]  # type: ignore[valid-type]
    scheduled_at: datetime
    executed_at: datetime | None
    outcome: DunningOutcomeEnum | None = strawberry.field(  # type: ignore[valid-type]
        description="null while pending; FAILED when an action failed (see `error`); SKIPPED when it will "
        "never run (the case ended first) or had nothing to do."
    )
    error: str | None
    results: list[DunningActionResult]

    @classmethod
    def from_model(cls, m: DunningStepModel) -> DunningStep:
        return cls(
            position=m.position,
            day=m.day,
            manual=m.manual,
            actions=[DunningAction(a) for a in m.actions],
            scheduled_at=m.scheduled_at,
            executed_at=m.executed_at,
            outcome=m.outcome,
            error=m.error,
            results=[
                DunningActionResult(
                    action=DunningAction(r["action"]), outcome=DunningOutcome(r["outcome"]), error=r.get("error")
                )
                for r in m.results
            ],
        )


@strawberry.type(description="An email sent (or waiting to be sent) to the customer about this case.")
class DunningEmail:
    to: str
    subject: str
    template: str
    status: EmailStatusEnum  # type: ignore[valid-type]
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None

    @classmethod
    def from_model(cls, m: OutboundEmailModel) -> DunningEmail:
        return cls(
            to=m.to_address,
            subject=m.subject,
            template=m.template,
            status=m.status,
            created_at=m.created_at,
            sent_at=m.sent_at,
            last_error=m.last_error,
        )


@strawberry.type(description="The recovery of one failed invoice: its steps, their outcomes and the emails sent.")
class DunningCase(Node):
    status: DunningCaseStatusEnum  # type: ignore[valid-type]
    tier: CustomerTierEnum = strawberry.field(description="The tier whose policy the steps came from.")  # type: ignore[valid-type]
    opened_at: datetime = strawberry.field(description="When the payment failed (Stripe's event time).")
    paused_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    invoice_id: strawberry.ID
    customer_id: strawberry.ID
    steps: list[DunningStep]
    emails: list[DunningEmail]
    local_invoice_id: strawberry.Private[uuid.UUID]
    local_customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The unpaid invoice.")
    async def invoice(self, info: Info) -> Invoice | None:
        model = await info.context.loaders.invoice.load(self.local_invoice_id)
        return Invoice.from_model(model) if model else None

    @guarded(Capability.CUSTOMER_READ)
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("schema.customer.types")] | None:
        from schema.customer.types import Customer

        model = await info.context.loaders.customer.load(self.local_customer_id)
        return Customer.from_model(model) if model else None

    @classmethod
    def from_view(cls, v: CaseView) -> DunningCase:
        c = v.case
        return cls(
            id=to_global_id("DunningCase", c.id),
            status=c.status,
            tier=c.tier,
            opened_at=c.opened_at,
            paused_at=c.paused_at,
            closed_at=c.closed_at,
            close_reason=c.close_reason,
            invoice_id=to_global_id("Invoice", c.invoice_id),
            customer_id=to_global_id("Customer", c.customer_id),
            steps=[DunningStep.from_model(s) for s in v.steps],
            emails=[DunningEmail.from_model(e) for e in v.emails],
            local_invoice_id=c.invoice_id,
            local_customer_id=c.customer_id,
        )
