"""Reconciliation runs (one comparison of the local mirror with Stripe) and the discrepancies
each run found."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, UUIDPrimaryKey, utcnow


class ReconciliationScope(enum.StrEnum):
    ALL = "ALL"
    CUSTOMER = "CUSTOMER"


class ReconciliationStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ObjectType(enum.StrEnum):
    CUSTOMER = "CUSTOMER"
    SUBSCRIPTION = "SUBSCRIPTION"
    INVOICE = "INVOICE"


class DiscrepancyKind(enum.StrEnum):
    MISSING_LOCALLY = "MISSING_LOCALLY"  # Stripe has it, Ledgerline does not
    MISSING_IN_STRIPE = "MISSING_IN_STRIPE"  # a local row names a Stripe id Stripe does not know
    FIELD_MISMATCH = "FIELD_MISMATCH"


class ReconciliationRun(UUIDPrimaryKey, Base):
    __tablename__ = "reconciliation_run"

    scope: Mapped[ReconciliationScope] = mapped_column(
        enum_column(ReconciliationScope, "reconciliation_scope"), nullable=False
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id"))  # scope CUSTOMER
    status: Mapped[ReconciliationStatus] = mapped_column(
        enum_column(ReconciliationStatus, "reconciliation_status"), nullable=False
    )
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    objects_checked: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    discrepancy_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(320), nullable=False)

    __table_args__ = (Index("ix_reconciliation_run_started_at_id", "started_at", "id"),)


class Discrepancy(UUIDPrimaryKey, Base):
    __tablename__ = "discrepancy"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reconciliation_run.id", ondelete="CASCADE"), nullable=False)
    object_type: Mapped[ObjectType] = mapped_column(
        enum_column(ObjectType, "reconciliation_object_type"), nullable=False
    )
    kind: Mapped[DiscrepancyKind] = mapped_column(enum_column(DiscrepancyKind, "discrepancy_kind"), nullable=False)
    local_id: Mapped[uuid.UUID | None] = mapped_column()  # the customer/subscription/invoice row, if any
    stripe_id: Mapped[str] = mapped_column(String(255), nullable=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))  # what resolving locks on
    field: Mapped[str | None] = mapped_column(String(100))  # FIELD_MISMATCH only
    # JSON values in one vocabulary on both sides (Ledgerline's enum names, ISO 8601 UTC times)
    local_value: Mapped[Any] = mapped_column(JSONB(none_as_null=True), nullable=True)
    stripe_value: Mapped[Any] = mapped_column(JSONB(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_discrepancy_run_id_created_at_id", "run_id", "created_at", "id"),)
