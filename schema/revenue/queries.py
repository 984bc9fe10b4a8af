from __future__ import annotations

from typing import Annotated

import strawberry

from api.auth.permissions import Capability
from api.revenue.service import Granularity, revenue_report
from schema.context import Info
from schema.permissions import guarded
from schema.revenue.types import RevenueGranularityEnum, RevenueReport
from schema.scalars import DateRangeInput


@strawberry.type
class RevenueQueries:
    @guarded(
        Capability.REVENUE_READ,
        description="MRR, ARR, ARPU, movements, churn, retention, LTV, plan and tier breakdowns, payment "
        "health, trials and signup cohorts over a range of UTC days, in one currency (never converted). "
        "Definitions: README, Revenue analytics.",
    )
    async def revenue(
        self,
        info: Info,
        range_: Annotated[DateRangeInput, strawberry.argument(name="range", description="`from`/`to` or a preset.")],
        currency: Annotated[str, strawberry.argument(description="ISO 4217 code, e.g. `usd`.")],
        granularity: RevenueGranularityEnum = Granularity.MONTH,  # type: ignore[valid-type]
    ) -> RevenueReport | None:
        window = range_.to_range("range")
        async with info.context.read_session() as session:
            report = await revenue_report(session, window, Granularity(granularity), currency)
        return RevenueReport.of(report)
