from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from api.webhook.models import WebhookEvent as WebhookEventModel
from api.webhook.models import WebhookStatus
from schema.scalars import Node, to_global_id

WebhookEventStatusEnum = strawberry.enum(
    WebhookStatus,
    name="WebhookEventStatus",
    description="RECEIVED: stored, waiting; PROCESSED: applied; FAILED: see lastError (retried while "
    "nextAttemptAt is set); IGNORED: a type Ledgerline does not handle.",
)


@strawberry.type(description="A Stripe webhook event as received (raw payload) and what processing it did.")
class WebhookEvent(Node):
    stripe_event_id: str
    type: str = strawberry.field(description="Stripe's event type, e.g. `invoice.paid`.")
    status: WebhookEventStatusEnum  # type: ignore[valid-type]
    attempts: int = strawberry.field(description="Processing attempts so far.")
    last_error: str | None
    customer_id: strawberry.ID | None = strawberry.field(description="The Ledgerline customer it concerns.")
    stripe_created_at: datetime = strawberry.field(description="When Stripe created the event (`created`).")
    received_at: datetime
    processed_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="When a failed event is retried next.")
    payload: JSON = strawberry.field(description="The event exactly as Stripe sent it.")

    @classmethod
    def from_model(cls, m: WebhookEventModel) -> WebhookEvent:
        return cls(
            id=to_global_id("WebhookEvent", m.id),
            stripe_event_id=m.stripe_event_id,
            type=m.type,
            status=m.status,
            attempts=m.attempts,
            last_error=m.last_error,
            customer_id=to_global_id("Customer", m.customer_id) if m.customer_id else None,
            stripe_created_at=m.stripe_created_at,
            received_at=m.received_at,
            processed_at=m.processed_at,
            next_attempt_at=m.next_attempt_at,
            payload=cast(JSON, m.payload),
        )
