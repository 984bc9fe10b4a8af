from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.webhook.models import WebhookEvent as WebhookEventModel
from api.webhook.service import RetryPolicy, reprocess_event
from schema.context import Info
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import parse_id
from schema.webhook.types import WebhookEvent


@strawberry.input
class ReprocessWebhookEventInput:
    id: strawberry.ID = strawberry.field(description="The WebhookEvent's id.")


@strawberry.type
class ReprocessWebhookEventPayload:
    webhook_event: WebhookEvent | None = strawberry.field(
        description="The event after this run: PROCESSED, IGNORED, or FAILED with `lastError`."
    )
    user_errors: list[UserError]


@strawberry.type
class WebhookMutations:
    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Run one stored Stripe event again now, whatever its status. Safe to repeat: "
        "handlers are idempotent and never apply older state over newer.",
    )
    async def reprocess_webhook_event(
        self, info: Info, input: ReprocessWebhookEventInput
    ) -> ReprocessWebhookEventPayload | None:
        policy = RetryPolicy.of(info.context.settings)

        async def work(session: AsyncSession, actor: Actor) -> WebhookEventModel:
            return await reprocess_event(session, actor, parse_id(input.id, "WebhookEvent"), policy)

        outcome = await run_mutation(info, work)
        return ReprocessWebhookEventPayload(
            webhook_event=WebhookEvent.from_model(outcome.value) if outcome.value else None,
            user_errors=outcome.user_errors,
        )
