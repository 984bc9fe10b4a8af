from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from api.auth.permissions import Capability
from api.common.daterange import make_range
from api.db import utcnow
from api.usage.models import ReportStatus
from api.usage.service import MAX_TOP, BucketFilter, count_buckets, list_buckets, list_meters, summarize_usage
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg, parse_id
from schema.usage.types import Meter, ReportStatusEnum, UsageBucket, UsageSummary


@strawberry.input
class UsageBucketFilterInput:
    customer: strawberry.ID | None = strawberry.field(default=None, description="Customer id.")
    meter: str | None = strawberry.field(default=None, description="Meter key.")
    status: list[ReportStatusEnum] | None = None  # type: ignore[valid-type]
    from_: datetime | None = strawberry.field(default=None, name="from", description="Hours starting at or after.")
    to: datetime | None = strawberry.field(default=None, description="Hours starting before.")

    def to_filter(self) -> BucketFilter:
        statuses: tuple[ReportStatus, ...] = tuple(self.status or ())
        return BucketFilter(
            customer_id=parse_id(self.customer, "Customer", "filter.customer") if self.customer else None,
            meter_key=self.meter,
            statuses=statuses,
            period=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class UsageQueries:
    @guarded(Capability.USAGE_READ, description="Every meter usage can be recorded against.")
    async def meters(self, info: Info) -> list[Meter] | None:
        async with info.context.read_session() as session:
            return [Meter.from_model(m) for m in await list_meters(session)]

    @guarded(
        Capability.USAGE_READ,
        description="One meter over every customer in [from, to) (default: the last 30 days), with the top "
        "customers. Counted in whole UTC hours; events not rolled up yet are included.",
    )
    async def usage_summary(
        self,
        info: Info,
        meter: str,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        top: Annotated[int, strawberry.argument(description=f"How many top customers (at most {MAX_TOP}).")] = 10,
    ) -> UsageSummary | None:
        now = utcnow()
        async with info.context.read_session() as session:
            summary = await summarize_usage(session, meter, from_, to, top, now)
        return UsageSummary.of(summary, now)

    @guarded(
        Capability.USAGE_READ,
        description="Hourly usage buckets (newest first) and where each stands in reporting to Stripe.",
    )
    async def usage_buckets(
        self,
        info: Info,
        filter: UsageBucketFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[UsageBucket] | None:
        flt = filter.to_filter() if filter else BucketFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_buckets(s, flt, p),
            lambda s: count_buckets(s, flt),
            UsageBucket.from_model,
        )
