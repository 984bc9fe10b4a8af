"""createMeter and setUsageQuota (CATALOG_MANAGE: what is billed is a pricing decision),
recordUsage (USAGE_WRITE: an API key with `usage:write`, or an owner), rollUpUsage and reportUsage
(BILLING_OPERATIONS: run now what the workers run every minute)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from api.audit.record import Actor, record_audit
from api.auth.permissions import Capability
from api.catalog.models import Price as PriceModel
from api.catalog.models import PriceInterval
from api.db import utcnow
from api.errors import Invalid
from api.usage.ingest import IngestResult
from api.usage.models import Meter as MeterModel
from api.usage.models import MeterAggregation, QuotaKind
from api.usage.models import UsageQuota as UsageQuotaModel
from api.usage.reporting import ReportResult, report_usage
from api.usage.rollup import RollupResult, roll_up
from api.usage.service import (
    GRAPHQL_BATCH_LIMIT,
    NewMeter,
    NewMeteredPrice,
    create_meter,
    create_metered_price,
    record_usage,
    set_usage_quota,
)
from schema.catalog.types import Price, PriceIntervalEnum
from schema.context import Info
from schema.customer.mutations import idempotency_key_field
from schema.mutations import Outcome, UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import MoneyInput, parse_id
from schema.usage.types import (
    Meter,
    MeterAggregationEnum,
    QuotaKindEnum,
    RecordUsagePayload,
    UsageQuota,
    UsageValue,
)


@strawberry.input
class CreateMeterInput:
    key: str = strawberry.field(description="Lower-case, e.g. `api_calls`; events name it in `meter`.")
    name: str
    aggregation: MeterAggregationEnum  # type: ignore[valid-type]
    value_property: str | None = strawberry.field(
        default=None, description="SUM, MAX, LATEST: take the value from this `properties` key when `value` is absent."
    )
    unique_property: str | None = strawberry.field(
        default=None, description="UNIQUE_COUNT (required): the `properties` key whose distinct values are counted."
    )
    unit: str | None = strawberry.field(default=None, description="For display, e.g. `requests`, `GB`.")
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type
class CreateMeterPayload:
    meter: Meter | None
    user_errors: list[UserError]


@strawberry.input
class SetUsageQuotaInput:
    price: strawberry.ID = strawberry.field(description="The plan's Price.")
    meter: str = strawberry.field(description="Meter key.")
    limit: UsageValue | None = strawberry.field(
        description="Included per billing period, in the meter's aggregation; null removes the quota."
    )
    kind: QuotaKindEnum = QuotaKind.SOFT  # type: ignore[valid-type]


@strawberry.type
class SetUsageQuotaPayload:
    quota: UsageQuota | None = strawberry.field(description="null when removed.")
    user_errors: list[UserError]


@strawberry.input(description="One usage event. Same fields as `POST /v1/usage-events`.")
class UsageEventInput:
    customer: str = strawberry.field(
        description="The customer: its Ledgerline id, its Stripe customer id (`cus_…`) or its external id."
    )
    meter: str = strawberry.field(description="Meter key.")
    idempotency_key: str = strawberry.field(
        description="Unique per customer: an event sent again with the same key is counted once (a duplicate)."
    )
    value: UsageValue | None = strawberry.field(
        default=None, description="Required for SUM, MAX and LATEST meters (≥ 0 except LATEST); ignored by COUNT."
    )
    timestamp: str | None = strawberry.field(
        default=None,
        description="When it happened: ISO 8601 with an offset; at most 35 days old and 5 minutes ahead. "
        "Default: when it is received.",
    )
    properties: JSON | None = strawberry.field(default=None, description="Anything else (a JSON object).")

    def as_event(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "meter": self.meter,
            "idempotencyKey": self.idempotency_key,
            "value": self.value,
            "timestamp": self.timestamp,
            "properties": self.properties,
        }


@strawberry.input
class CreateMeteredPriceInput:
    meter: str = strawberry.field(description="Meter key (a meter made by createMeter).")
    unit_amount: MoneyInput = strawberry.field(description="Per unit of the meter's aggregate over a period.")
    interval: PriceIntervalEnum = PriceInterval.MONTH  # type: ignore[valid-type]
    product_name: str | None = strawberry.field(default=None, description="Default: the meter's name.")
    nickname: str | None = None
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type
class CreateMeteredPricePayload:
    price: Price | None
    user_errors: list[UserError]


@strawberry.type(description="What a roll-up did.")
class RollUpUsagePayload:
    events: int = strawberry.field(description="Events rolled up into hourly buckets by this run.")
    buckets: int = strawberry.field(description="Buckets created or updated.")
    watermark: str = strawberry.field(description="Every event id up to this one is in the buckets.")
    alerts_raised: int = strawberry.field(description="Quota alerts this run raised.")
    user_errors: list[UserError]


@strawberry.type(description="What a reporting run did.")
class ReportUsagePayload:
    reported: int = strawberry.field(description="Buckets whose meter event Stripe now has.")
    failed: int = strawberry.field(description="Buckets that failed (retried later with backoff).")
    not_billed: int = strawberry.field(description="Buckets no metered subscription bills.")
    unchanged: int
    user_errors: list[UserError]


async def _audit_run(info: Info, action: str, facts: dict[str, Any]) -> Outcome[None]:
    """The audit entry of a worker job run on demand (the job commits its own work as it goes)."""

    async def work(session: AsyncSession, actor: Actor) -> None:
        await record_audit(session, actor, action, "UsageBucket", None, after=facts)

    return await run_mutation(info, work)


@strawberry.type
class UsageMutations:
    @guarded(
        Capability.CATALOG_MANAGE,
        description="A meter, and its Stripe billing meter (`event_name` = key) that metered prices bill from.",
    )
    async def create_meter(self, info: Info, input: CreateMeterInput) -> CreateMeterPayload | None:
        data = NewMeter(
            key=input.key.strip(),
            name=input.name,
            aggregation=MeterAggregation(input.aggregation),
            value_property=input.value_property,
            unique_property=input.unique_property,
            unit=input.unit,
        )

        async def work(session: AsyncSession, actor: Actor) -> MeterModel:
            return await create_meter(session, actor, info.context.stripe, data, input.idempotency_key)

        outcome = await run_mutation(info, work)
        return CreateMeterPayload(
            meter=Meter.from_model(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )

    @guarded(
        Capability.CATALOG_MANAGE,
        description="A price billed per unit of a meter, in Ledgerline and in Stripe (a metered price on the "
        "meter's billing meter). Subscribe customers to it with createSubscription; reported usage is billed.",
    )
    async def create_metered_price(
        self, info: Info, input: CreateMeteredPriceInput
    ) -> CreateMeteredPricePayload | None:
        data = NewMeteredPrice(
            meter_key=input.meter,
            unit_amount=input.unit_amount.to_amount(),
            interval=PriceInterval(input.interval),
            product_name=input.product_name,
            nickname=input.nickname,
        )

        async def work(session: AsyncSession, actor: Actor) -> PriceModel:
            return await create_metered_price(session, actor, info.context.stripe, data, input.idempotency_key)

        outcome = await run_mutation(info, work)
        return CreateMeteredPricePayload(
            price=Price.from_model(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )

    @guarded(
        Capability.CATALOG_MANAGE,
        description="How much of a meter a price's plan includes per billing period (SOFT: alerts at 80% and 100%; "
        "HARD: also refuses overage at ingest). `limit: null` removes it.",
    )
    async def set_usage_quota(self, info: Info, input: SetUsageQuotaInput) -> SetUsageQuotaPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> UsageQuotaModel | None:
            price_id = parse_id(input.price, "Price", "price")
            limit = Decimal(str(input.limit)) if input.limit is not None else None
            return await set_usage_quota(session, actor, price_id, input.meter, limit, QuotaKind(input.kind))

        outcome = await run_mutation(info, work)
        return SetUsageQuotaPayload(
            quota=UsageQuota.from_model(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )

    @guarded(
        Capability.USAGE_WRITE,
        description=f"Record up to {GRAPHQL_BATCH_LIMIT} usage events. Each is checked alone: bad ones are "
        "rejected with their index and a code, the good ones are stored; an event already stored (same customer "
        "and idempotencyKey) is a duplicate. For high volume use `POST /v1/usage-events`.",
    )
    async def record_usage(self, info: Info, events: list[UsageEventInput]) -> RecordUsagePayload | None:
        if len(events) > GRAPHQL_BATCH_LIMIT:
            error = UserError(
                field="events",
                message=f"{len(events)} events in one call; at most {GRAPHQL_BATCH_LIMIT}",
                code=Invalid.code,
            )
            return RecordUsagePayload.of(IngestResult(), [error])
        raw = [e.as_event() for e in events]

        async def work(session: AsyncSession, actor: Actor) -> IngestResult:
            result = await record_usage(session, raw, utcnow())
            counts = {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}
            await record_audit(session, actor, "usage.record", "UsageEvent", None, after=counts)
            return result

        outcome = await run_mutation(info, work)
        return RecordUsagePayload.of(outcome.value or IngestResult(), outcome.user_errors)

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Roll every usage event received so far into the hourly buckets now (a worker does it "
        "every minute). Safe to run at any time: each event is counted once.",
    )
    async def roll_up_usage(self, info: Info) -> RollUpUsagePayload | None:
        result: RollupResult = await roll_up(info.context.session_factory)
        facts = {"events": result.events, "buckets": result.buckets, "watermark": result.watermark}
        outcome = await _audit_run(info, "usage.rollup", facts)
        return RollUpUsagePayload(
            events=result.events,
            buckets=result.buckets,
            watermark=str(result.watermark),
            alerts_raised=len(result.alerts),
            user_errors=outcome.user_errors,
        )

    @guarded(
        Capability.BILLING_OPERATIONS,
        description="Report every closed, due usage bucket to Stripe now (a worker does it every minute).",
    )
    async def report_usage(self, info: Info) -> ReportUsagePayload | None:
        result: ReportResult = await report_usage(info.context.session_factory, info.context.stripe, utcnow())
        facts = {"reported": result.reported, "failed": result.failed, "notBilled": result.not_billed}
        outcome = await _audit_run(info, "usage.report", facts)
        return ReportUsagePayload(
            reported=result.reported,
            failed=result.failed,
            not_billed=result.not_billed,
            unchanged=result.unchanged,
            user_errors=outcome.user_errors,
        )
