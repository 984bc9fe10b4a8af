"""Customer health storage: one snapshot per customer and day (the history the trend reads), and
the newest one per customer (what the customer list filters on by band)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, ForeignKey, Index, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base


class HealthBand(enum.StrEnum):
    HIGH_RISK = "HIGH_RISK"  # score < 40
    MEDIUM = "MEDIUM"  # 40 ≤ score ≤ 70
    HEALTHY = "HEALTHY"  # score > 70


SCORE = Numeric(5, 2)  # 0.00 to 100.00


class CustomerHealthSnapshot(Base):
    """A customer's health as computed on one UTC day (a rerun that day replaces it)."""

    __tablename__ = "customer_health_snapshot"

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    computed_on: Mapped[date] = mapped_column(Date, primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    band: Mapped[HealthBand] = mapped_column(enum_column(HealthBand, "health_band"), nullable=False)
    usage_score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    engagement_score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    support_score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    payment_score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    adoption_score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    # the facts each component was computed from (active days, support actions, quotas ...)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class CustomerHealth(Base):
    """The newest snapshot's day, score and band of each customer: `customers(filter:
    {healthBand})` is an indexed condition on this table."""

    __tablename__ = "customer_health"

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    computed_on: Mapped[date] = mapped_column(Date, nullable=False)
    score: Mapped[Decimal] = mapped_column(SCORE, nullable=False)
    band: Mapped[HealthBand] = mapped_column(enum_column(HealthBand, "health_band"), nullable=False)

    __table_args__ = (Index("ix_customer_health_band_customer_id", "band", "customer_id"),)
