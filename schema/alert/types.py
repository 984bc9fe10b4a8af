from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from api.alert.models import Alert as AlertModel
from api.alert.models import AlertKind, AlertSeverity, AlertStatus
from schema.scalars import Node, to_global_id

AlertKindEnum = strawberry.enum(AlertKind, name="AlertKind")
AlertSeverityEnum = strawberry.enum(AlertSeverity, name="AlertSeverity")
AlertStatusEnum = strawberry.enum(AlertStatus, name="AlertStatus")


@strawberry.type(description="Something staff should look at; raised once per cause (see `kind`).")
class Alert(Node):
    kind: AlertKindEnum  # type: ignore[valid-type]
    severity: AlertSeverityEnum  # type: ignore[valid-type]
    status: AlertStatusEnum  # type: ignore[valid-type]
    customer_id: strawberry.ID | None = strawberry.field(description="The customer it concerns, if any.")
    message: str
    details: JSON = strawberry.field(description="The figures behind the alert (meter, usage, limit ...).")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @classmethod
    def from_model(cls, m: AlertModel) -> Alert:
        return cls(
            id=to_global_id("Alert", m.id),
            kind=m.kind,
            severity=m.severity,
            status=m.status,
            customer_id=to_global_id("Customer", m.customer_id) if m.customer_id else None,
            message=m.message,
            details=cast(JSON, m.details),
            created_at=m.created_at,
            acknowledged_at=m.acknowledged_at,
            acknowledged_by=m.acknowledged_by,
        )
