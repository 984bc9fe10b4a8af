from __future__ import annotations

from datetime import datetime

import strawberry

from api.usage.models import Meter as MeterModel
from api.usage.models import MeterAggregation
from api.usage.service import UsageTotal as UsageTotalValue
from schema.scalars import Node, to_global_id

MeterAggregationEnum = strawberry.enum(MeterAggregation, name="MeterAggregation")


@strawberry.type(description="What is metered (API calls, storage ...) and how events aggregate.")
class Meter(Node):
    key: str
    name: str
    unit: str | None
    aggregation: MeterAggregationEnum  # type: ignore[valid-type]
    value_property: str | None
    unique_property: str | None
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
            created_at=m.created_at,
        )


@strawberry.type(description="A customer's usage of one meter over a range: the sum and the number of events.")
class UsageTotal:
    meter: Meter
    total: str = strawberry.field(description="Sum of the event values, as a decimal string.")
    event_count: int

    @classmethod
    def from_value(cls, v: UsageTotalValue) -> UsageTotal:
        return cls(meter=Meter.from_model(v.meter), total=str(v.total.normalize()), event_count=v.event_count)
