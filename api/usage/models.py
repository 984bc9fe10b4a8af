from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Numeric, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, Timestamps, UUIDPrimaryKey, utcnow


class MeterAggregation(enum.StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    MAX = "MAX"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    LATEST = "LATEST"


class Meter(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "meter"

    key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit: Mapped[str | None] = mapped_column(String(50))
    aggregation: Mapped[MeterAggregation] = mapped_column(
        enum_column(MeterAggregation, "meter_aggregation"), nullable=False
    )
    value_property: Mapped[str | None] = mapped_column(String(100))
    unique_property: Mapped[str | None] = mapped_column(String(100))
    stripe_event_name: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_meter_id: Mapped[str | None] = mapped_column(String(255), unique=True)


class UsageEvent(Base):
    __tablename__ = "usage_event"

    # bigint identity: ingest is the hottest write path, and the roll-up watermark follows it
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), nullable=False)
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"), nullable=False)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_event_customer_id_idempotency_key"),
        Index("ix_usage_event_customer_id_meter_id_occurred_at", "customer_id", "meter_id", "occurred_at"),
    )
