from __future__ import annotations

from datetime import datetime

import strawberry

from api.auth.permissions import Capability
from api.common.daterange import make_range
from api.dunning.policy import list_policies
from api.dunning.service import DunningCaseFilter, count_cases, list_cases
from schema.connections import paginate
from schema.context import Info
from schema.dunning.types import DunningCase, DunningCaseStatusEnum, DunningPolicy
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg, parse_id


@strawberry.input
class DunningCaseFilterInput:
    status: list[DunningCaseStatusEnum] | None = None  # type: ignore[valid-type]
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    from_: datetime | None = strawberry.field(default=None, name="from", description="Opened at or after.")
    to: datetime | None = strawberry.field(default=None, description="Opened before.")

    def to_filter(self) -> DunningCaseFilter:
        return DunningCaseFilter(
            statuses=tuple(self.status or ()),
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            opened=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class DunningQueries:
    @guarded(
        Capability.INVOICE_READ,
        description="Failed-payment recoveries, newest first, each with its steps (scheduled, executed, "
        "outcome) and the emails sent.",
    )
    async def dunning_cases(
        self,
        info: Info,
        filter: DunningCaseFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[DunningCase] | None:
        flt = filter.to_filter() if filter else DunningCaseFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_cases(s, flt, p),
            lambda s: count_cases(s, flt),
            DunningCase.from_view,
        )

    @guarded(Capability.INVOICE_READ, description="The dunning policy of every customer tier.")
    async def dunning_policies(self, info: Info) -> list[DunningPolicy] | None:
        async with info.context.read_session() as session:
            return [DunningPolicy.from_policy(p) for p in await list_policies(session)]
