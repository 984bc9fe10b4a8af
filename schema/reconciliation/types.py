from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from api.reconciliation.models import Discrepancy as DiscrepancyModel
from api.reconciliation.models import (
    DiscrepancyKind,
    ObjectType,
    ReconciliationScope,
    ReconciliationStatus,
)
from api.reconciliation.models import (
    ReconciliationRun as ReconciliationRunModel,
)
from schema.scalars import Node, to_global_id

ReconciliationScopeEnum = strawberry.enum(
    ReconciliationScope, name="ReconciliationScope", description="ALL customers, or one CUSTOMER."
)
ReconciliationStatusEnum = strawberry.enum(ReconciliationStatus, name="ReconciliationStatus")
ReconciliationObjectTypeEnum = strawberry.enum(ObjectType, name="ReconciliationObjectType")
DiscrepancyKindEnum = strawberry.enum(
    DiscrepancyKind,
    name="DiscrepancyKind",
    description="MISSING_LOCALLY: in Stripe, not in Ledgerline; MISSING_IN_STRIPE: a local row names a "
    "Stripe id Stripe does not know; FIELD_MISMATCH: see field, localValue, stripeValue.",
)


@strawberry.type(description="One comparison of the local mirror with Stripe.")
class ReconciliationRun(Node):
    scope: ReconciliationScopeEnum  # type: ignore[valid-type]
    customer_id: strawberry.ID | None = strawberry.field(description="The customer, when scope is CUSTOMER.")
    status: ReconciliationStatusEnum  # type: ignore[valid-type]
    started_at: datetime
    finished_at: datetime | None
    objects_checked: int
    discrepancy_count: int
    error: str | None
    requested_by: str = strawberry.field(description="Who asked for it (`system:reconciliation` for the nightly run).")

    @classmethod
    def from_model(cls, m: ReconciliationRunModel) -> ReconciliationRun:
        return cls(
            id=to_global_id("ReconciliationRun", m.id),
            scope=m.scope,
            customer_id=to_global_id("Customer", m.customer_id) if m.customer_id else None,
            status=m.status,
            started_at=m.started_at,
            finished_at=m.finished_at,
            objects_checked=m.objects_checked,
            discrepancy_count=m.discrepancy_count,
            error=m.error,
            requested_by=m.requested_by,
        )


LOCAL_TYPE_NAMES = {
    ObjectType.CUSTOMER: "Customer",
    ObjectType.SUBSCRIPTION: "Subscription",
    ObjectType.INVOICE: "Invoice",
}


@strawberry.type(description="A difference between the local mirror and Stripe found by a run.")
class Discrepancy(Node):
    run_id: strawberry.ID
    object_type: ReconciliationObjectTypeEnum  # type: ignore[valid-type]
    kind: DiscrepancyKindEnum  # type: ignore[valid-type]
    local_id: strawberry.ID | None = strawberry.field(description="The Customer/Subscription/Invoice id, if local.")
    stripe_id: str
    field: str | None = strawberry.field(description="The mirrored field that differs (FIELD_MISMATCH), e.g. `email`.")
    local_value: JSON | None = strawberry.field(description="Ledgerline's value (enum names, ISO 8601 UTC times).")
    stripe_value: JSON | None = strawberry.field(description="Stripe's value, in the same vocabulary.")
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None = strawberry.field(description="How it was resolved.")

    @classmethod
    def from_model(cls, m: DiscrepancyModel) -> Discrepancy:
        return cls(
            id=to_global_id("Discrepancy", m.id),
            run_id=to_global_id("ReconciliationRun", m.run_id),
            object_type=m.object_type,
            kind=m.kind,
            local_id=to_global_id(LOCAL_TYPE_NAMES[m.object_type], m.local_id) if m.local_id else None,
            stripe_id=m.stripe_id,
            field=m.field,
            local_value=cast(JSON, m.local_value),
            stripe_value=cast(JSON, m.stripe_value),
            created_at=m.created_at,
            resolved_at=m.resolved_at,
            resolution=m.resolution,
        )
