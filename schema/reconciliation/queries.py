from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.reconciliation.service import (
    DiscrepancyFilter,
    count_discrepancies,
    count_runs,
    list_discrepancies,
    list_runs,
)
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.reconciliation.types import Discrepancy, ReconciliationObjectTypeEnum, ReconciliationRun
from schema.scalars import AfterArg, Connection, FirstArg, parse_id


@strawberry.input
class DiscrepancyFilterInput:
    run: strawberry.ID | None = strawberry.field(default=None, description="ReconciliationRun id.")
    object_type: list[ReconciliationObjectTypeEnum] | None = None  # type: ignore[valid-type]
    resolved: bool | None = strawberry.field(default=None, description="true: resolved only; false: open only.")

    def to_filter(self) -> DiscrepancyFilter:
        return DiscrepancyFilter(
            run_id=parse_id(self.run, "ReconciliationRun", "filter.run") if self.run else None,
            object_types=tuple(self.object_type or ()),
            resolved=self.resolved,
        )


@strawberry.type
class ReconciliationQueries:
    @guarded(Capability.BILLING_OPERATIONS, description="Stripe reconciliation runs, newest first.")
    async def reconciliation_runs(
        self, info: Info, first: FirstArg = None, after: AfterArg = None
    ) -> Connection[ReconciliationRun] | None:
        return await paginate(info, first, after, list_runs, count_runs, ReconciliationRun.from_model)

    @guarded(Capability.BILLING_OPERATIONS, description="Discrepancies found by reconciliation runs, oldest first.")
    async def discrepancies(
        self,
        info: Info,
        filter: DiscrepancyFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Discrepancy] | None:
        flt = filter.to_filter() if filter else DiscrepancyFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_discrepancies(s, flt, p),
            lambda s: count_discrepancies(s, flt),
            Discrepancy.from_model,
        )
