"""Stored alerts. Each is raised once per `dedup_key` (one alert per trial ending, per quota
threshold and period, per failed invoice ...), whatever the number of times its cause is seen."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, UUIDPrimaryKey, utcnow


class AlertKind(enum.StrEnum):
    PAYMENT_FAILED = "PAYMENT_FAILED"
    TRIAL_ENDING = "TRIAL_ENDING"
    QUOTA_THRESHOLD = "QUOTA_THRESHOLD"
    CHURN_RISK = "CHURN_RISK"
    WEBHOOK_FAILURE = "WEBHOOK_FAILURE"


class AlertSeverity(enum.StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class AlertStatus(enum.StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"


class Alert(UUIDPrimaryKey, Base):
    __tablename__ = "alert"

    kind: Mapped[AlertKind] = mapped_column(enum_column(AlertKind, "alert_kind"), nullable=False)
    severity: Mapped[AlertSeverity] = mapped_column(enum_column(AlertSeverity, "alert_severity"), nullable=False)
    status: Mapped[AlertStatus] = mapped_column(
        enum_column(AlertStatus, "alert_status"), nullable=False, default=AlertStatus.OPEN
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id"))
    message: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    # what makes two raisings the same alert, e.g. `quota:<customer>:<meter>:<period start>:80`
    dedup_key: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        Index("ix_alert_created_at_id", "created_at", "id"),
        Index("ix_alert_kind_status", "kind", "status"),
        Index("ix_alert_customer_id", "customer_id"),
    )
