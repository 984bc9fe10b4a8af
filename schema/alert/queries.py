from __future__ import annotations

from datetime import datetime

import strawberry

from api.alert.service import AlertFilter, count_alerts, list_alerts, visible_kinds
from api.auth.permissions import Capability
from api.common.daterange import make_range
from schema.alert.types import Alert, AlertKindEnum, AlertStatusEnum
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg, parse_id


@strawberry.input
class AlertFilterInput:
    kind: list[AlertKindEnum] | None = None  # type: ignore[valid-type]
    status: list[AlertStatusEnum] | None = None  # type: ignore[valid-type]
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    from_: datetime | None = strawberry.field(default=None, name="from", description="Raised at or after.")
    to: datetime | None = strawberry.field(default=None, description="Raised before.")

    def to_filter(self) -> AlertFilter:
        return AlertFilter(
            kinds=tuple(self.kind or ()),
            statuses=tuple(self.status or ()),
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            created=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class AlertQueries:
    @guarded(
        Capability.CUSTOMER_READ,
        description="Alerts, newest first: only the kinds whose data the caller may read "
        "(webhook failures need the webhook log, failed payments need invoices ...).",
    )
    async def alerts(
        self,
        info: Info,
        filter: AlertFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Alert] | None:
        flt = filter.to_filter() if filter else AlertFilter()
        visible = visible_kinds(info.context.capabilities)
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_alerts(s, flt, visible, p),
            lambda s: count_alerts(s, flt, visible),
            Alert.from_model,
        )
