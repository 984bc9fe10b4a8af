from __future__ import annotations

from datetime import datetime

import strawberry

from api.auth.permissions import Capability
from api.common.daterange import make_range
from api.webhook.service import WebhookEventFilter, count_webhook_events, list_webhook_events
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg, parse_id
from schema.webhook.types import WebhookEvent, WebhookEventStatusEnum


@strawberry.input
class WebhookEventFilterInput:
    type: list[str] | None = strawberry.field(
        default=None, description="Event types, e.g. `invoice.paid`; `invoice.*` matches every invoice event."
    )
    status: list[WebhookEventStatusEnum] | None = None  # type: ignore[valid-type]
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    from_: datetime | None = strawberry.field(default=None, name="from", description="Received at or after.")
    to: datetime | None = strawberry.field(default=None, description="Received before.")

    def to_filter(self) -> WebhookEventFilter:
        return WebhookEventFilter(
            types=tuple(t.strip() for t in self.type or () if t.strip()),
            statuses=tuple(self.status or ()),
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            received=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class WebhookQueries:
    @guarded(Capability.WEBHOOK_LOG_READ, description="The Stripe webhook log with raw payloads, newest first.")
    async def webhook_events(
        self,
        info: Info,
        filter: WebhookEventFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[WebhookEvent] | None:
        flt = filter.to_filter() if filter else WebhookEventFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_webhook_events(s, flt, p),
            lambda s: count_webhook_events(s, flt),
            WebhookEvent.from_model,
        )
