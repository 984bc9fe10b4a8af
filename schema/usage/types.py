from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode

from api.auth.permissions import Capability
from api.usage.ingest import IngestResult
from api.usage.models import Meter as MeterModel
from api.usage.models import MeterAggregation, QuotaKind, ReportStatus
from api.usage.models import UsageBucket as UsageBucketModel
from api.usage.models import UsageQuota as UsageQuotaModel
from api.usage.periods import decimal_text
from api.usage.service import BucketKey, Granularity, QuotaStatus
from api.usage.service import CustomerUsage as CustomerUsageValue
from api.usage.service import UsageSeries as UsageSeriesValue
from api.usage.service import UsageSummary as UsageSummaryValue
from schema.context import Info
from schema.mutations import UserError
from schema.permissions import guarded
from schema.scalars import Node, to_global_id

if TYPE_CHECKING:
    from schema.customer.types import Customer

MeterAggregationEnum = strawberry.enum(
    MeterAggregation,
    name="MeterAggregation",
    description="SUM of values; COUNT of events; MAX value; UNIQUE_COUNT of distinct `uniqueProperty` values; "
    "LATEST value (by timestamp).",
)
GranularityEnum = strawberry.enum(Granularity, name="UsageGranularity", description="Width of one point (UTC).")
QuotaKindEnum = strawberry.enum(
    QuotaKind, name="QuotaKind", description="SOFT: alerts at 80% and 100%; HARD: alerts, and ingest rejects overage."
)
ReportStatusEnum = strawberry.enum(
    ReportStatus,
    name="UsageReportStatus",
    description="PENDING: waiting for its hour to close; REPORTED: Stripe has it; FAILED: see reportError "
    "(retried at nextReportAt); NOT_BILLED: no metered subscription bills this meter.",
)


def _parse_usage_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a usage value is a number or a decimal string")
    return value


def _parse_usage_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Any:
    # the literal's own text: `0.1` stays exactly 0.1 (no float on the way)
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return node.value
    raise ValueError("a usage value is a number or a decimal string")


UsageValue = NewType("UsageValue", Decimal)
USAGE_VALUE_SCALAR = strawberry.scalar(
    name="UsageValue",
    description='A usage quantity: a number (`3`, `0.25`) or a decimal string (`"0.25"`); read back as a string.',
    serialize=decimal_text,
    parse_value=_parse_usage_value,
    parse_literal=_parse_usage_literal,
)


@strawberry.type(description="What is metered (API calls, storage ...) and how events aggregate.")
class Meter(Node):
    key: str = strawberry.field(description="What events name in `meter`; also the Stripe meter's `event_name`.")
    name: str
    unit: str | None
    aggregation: MeterAggregationEnum  # type: ignore[valid-type]
    value_property: str | None = strawberry.field(description="`properties` key read when an event has no `value`.")
    unique_property: str | None = strawberry.field(description="UNIQUE_COUNT: the property whose values are counted.")
    stripe_meter_id: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: MeterModel) -> Meter:
        return cls(
            id=to_global_id("Meter", m.id),
            key=m.key,
            name=m.name,
            unit=m.unit,
            aggregation=m.aggregation,
            value_property=m.value_property,
            unique_property=m.unique_property,
            stripe_meter_id=m.stripe_meter_id,
            created_at=m.created_at,
        )


@strawberry.type(description="One period of a usage series.")
class UsagePoint:
    start: datetime = strawberry.field(description="Start of the period (UTC).")
    value: UsageValue = strawberry.field(description="The meter's aggregation over the period.")
    event_count: int


@strawberry.type(description="A customer's usage of one meter over a range, per period and in total.")
class UsageSeries:
    meter: Meter
    granularity: GranularityEnum  # type: ignore[valid-type]
    total: UsageValue = strawberry.field(
        description="The meter's aggregation over the whole range (a SUM adds up, a MAX is the largest ...)."
    )
    event_count: int
    points: list[UsagePoint] = strawberry.field(description="Periods with usage, oldest first.")
    as_of: datetime = strawberry.field(description="When this was computed: every event received by then is in it.")

    @classmethod
    def of(cls, v: UsageSeriesValue, granularity: Granularity, as_of: datetime) -> UsageSeries:
        return cls(
            meter=Meter.from_model(v.meter),
            granularity=granularity,
            total=UsageValue(v.total),
            event_count=v.event_count,
            points=[UsagePoint(start=p.start, value=UsageValue(p.value), event_count=p.event_count) for p in v.points],
            as_of=as_of,
        )


@strawberry.type(description="One customer's share of a meter's usage.")
class CustomerUsage:
    customer_id: strawberry.ID
    value: UsageValue
    event_count: int

    @guarded(Capability.CUSTOMER_READ, description="The customer.")
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("schema.customer.types")] | None:
        from schema.customer.types import Customer

        model = await info.context.loaders.customer.load(self.local_id)
        return Customer.from_model(model) if model else None

    local_id: strawberry.Private[uuid.UUID]

    @classmethod
    def of(cls, v: CustomerUsageValue) -> CustomerUsage:
        return cls(
            customer_id=to_global_id("Customer", v.customer_id),
            value=UsageValue(v.value),
            event_count=v.event_count,
            local_id=v.customer_id,
        )


@strawberry.type(description="A meter over every customer in a range.")
class UsageSummary:
    meter: Meter
    from_: datetime = strawberry.field(name="from")
    to: datetime
    total: UsageValue = strawberry.field(description="The meter's aggregation over every event.")
    event_count: int
    customer_count: int = strawberry.field(description="Customers with usage in the range.")
    top_customers: list[CustomerUsage] = strawberry.field(description="By their own aggregate, largest first.")
    as_of: datetime

    @classmethod
    def of(cls, v: UsageSummaryValue, as_of: datetime) -> UsageSummary:
        return cls(
            meter=Meter.from_model(v.meter),
            from_=v.start,
            to=v.end,
            total=UsageValue(v.total),
            event_count=v.event_count,
            customer_count=v.customer_count,
            top_customers=[CustomerUsage.of(c) for c in v.top_customers],
            as_of=as_of,
        )


@strawberry.type(description="Usage so far this billing period against the plan's quota.")
class QuotaUsage:
    meter_key: str
    kind: QuotaKindEnum  # type: ignore[valid-type]
    limit: UsageValue
    used: UsageValue
    percent: float = strawberry.field(description="used / limit * 100.")
    period_start: datetime
    period_end: datetime

    @classmethod
    def of(cls, s: QuotaStatus) -> QuotaUsage:
        q = s.quota
        return cls(
            meter_key=q.meter_key,
            kind=q.kind,
            limit=UsageValue(q.limit),
            used=UsageValue(s.used),
            percent=round(s.percent, 2),
            period_start=q.period_start,
            period_end=q.period_end,
        )


@strawberry.type(description="How much of a meter a price's plan includes per billing period.")
class UsageQuota:
    price_id: strawberry.ID
    meter_id: strawberry.ID
    limit: UsageValue
    kind: QuotaKindEnum  # type: ignore[valid-type]

    @classmethod
    def from_model(cls, m: UsageQuotaModel) -> UsageQuota:
        return cls(
            price_id=to_global_id("Price", m.price_id),
            meter_id=to_global_id("Meter", m.meter_id),
            limit=UsageValue(m.quota_limit),
            kind=m.kind,
        )


@strawberry.type(description="One hour of one customer's usage of one meter, and its reporting to Stripe.")
class UsageBucket(Node):
    customer_id: strawberry.ID
    meter_id: strawberry.ID
    start: datetime = strawberry.field(description="The hour (UTC).")
    value: UsageValue
    event_count: int
    report_status: ReportStatusEnum  # type: ignore[valid-type]
    reported_value: UsageValue | None = strawberry.field(description="What Stripe holds for this hour.")
    report_attempts: int = strawberry.field(description="Failed attempts since the last success.")
    report_error: str | None
    reported_at: datetime | None
    next_report_at: datetime | None

    @classmethod
    def from_model(cls, m: UsageBucketModel) -> UsageBucket:
        return cls(
            id=to_global_id("UsageBucket", str(BucketKey.of(m))),
            customer_id=to_global_id("Customer", m.customer_id),
            meter_id=to_global_id("Meter", m.meter_id),
            start=m.bucket_start,
            value=UsageValue(m.value),
            event_count=m.event_count,
            report_status=m.report_status,
            reported_value=UsageValue(m.reported_value) if m.reported_value is not None else None,
            report_attempts=m.report_attempts,
            report_error=m.report_error,
            reported_at=m.reported_at,
            next_report_at=m.next_report_at if m.report_status is not ReportStatus.REPORTED else None,
        )


@strawberry.type(description="Why one event of a batch was rejected.")
class UsageEventError:
    index: int = strawberry.field(description="Position of the event in the batch (0-based).")
    code: str = strawberry.field(
        description="UNKNOWN_CUSTOMER, UNKNOWN_METER, VALUE_MISSING, VALUE_NEGATIVE, VALUE_INVALID, "
        "UNIQUE_PROPERTY_MISSING, TIMESTAMP_TOO_OLD, TIMESTAMP_IN_FUTURE, TIMESTAMP_INVALID, CUSTOMER_SUSPENDED, "
        "QUOTA_EXCEEDED, IDEMPOTENCY_KEY_MISSING, INVALID_EVENT."
    )
    message: str
    field: str | None = strawberry.field(description="The event's field at fault, e.g. `timestamp`.")


@strawberry.type(description="What happened to a batch of usage events.")
class RecordUsagePayload:
    accepted: int = strawberry.field(description="Stored now.")
    duplicates: int = strawberry.field(description="Already stored (same customer and idempotencyKey): ignored.")
    rejected: int
    errors: list[UsageEventError] = strawberry.field(description="One per rejected event, by index.")
    user_errors: list[UserError] = strawberry.field(description="A batch refused as a whole (e.g. too many events).")

    @classmethod
    def of(cls, r: IngestResult, user_errors: list[UserError]) -> RecordUsagePayload:
        return cls(
            accepted=r.accepted,
            duplicates=r.duplicates,
            rejected=r.rejected,
            errors=[
                UsageEventError(index=e.index, code=e.code.value, message=e.message, field=e.field)
                for e in r.rejections
            ],
            user_errors=user_errors,
        )
