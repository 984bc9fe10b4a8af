"""Dunning policies (per tier), cases (one per failed invoice) and their steps.

A case copies its policy's steps when it opens: editing a policy changes the cases opened after
the edit, never the schedule a customer was already told about."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.customer.models import CustomerTier
from api.db import Base, Timestamps, UUIDPrimaryKey


class DunningAction(enum.StrEnum):
    EMAIL_PAYMENT_FAILED = "EMAIL_PAYMENT_FAILED"
    RETRY_PAYMENT = "RETRY_PAYMENT"
    EMAIL_RETRY_FAILED = "EMAIL_RETRY_FAILED"  # sent when the step's payment retry failed
    EMAIL_FINAL_NOTICE = "EMAIL_FINAL_NOTICE"
    MARK_UNCOLLECTIBLE = "MARK_UNCOLLECTIBLE"
    SUSPEND_CUSTOMER = "SUSPEND_CUSTOMER"
    CANCEL_SUBSCRIPTION = "CANCEL_SUBSCRIPTION"


class DunningCaseStatus(enum.StrEnum):
    OPEN = "OPEN"  # steps run when due
    PAUSED = "PAUSED"  # nothing runs; resuming shifts the pending steps by the pause
    RECOVERED = "RECOVERED"  # the invoice was paid
    EXHAUSTED = "EXHAUSTED"  # every step ran and the invoice is still unpaid
    CLOSED = "CLOSED"  # closed by a person


CLOSED_STATUSES = (DunningCaseStatus.RECOVERED, DunningCaseStatus.EXHAUSTED, DunningCaseStatus.CLOSED)


class DunningOutcome(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class DunningPolicy(Timestamps, Base):
    """A tier's edited policy; a tier without a row uses the default policy."""

    __tablename__ = "dunning_policy"

    tier: Mapped[CustomerTier] = mapped_column(enum_column(CustomerTier, "customer_tier"), primary_key=True)
    # [{"day": 0, "actions": ["EMAIL_PAYMENT_FAILED"]}, ...], days strictly increasing
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(320), nullable=False)


class DunningCase(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "dunning_case"

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoice.id"), nullable=False, unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), nullable=False)
    status: Mapped[DunningCaseStatus] = mapped_column(
        enum_column(DunningCaseStatus, "dunning_case_status"), nullable=False
    )
    tier: Mapped[CustomerTier] = mapped_column(enum_column(CustomerTier, "customer_tier"), nullable=False)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_dunning_case_opened_at_id", "opened_at", "id"),
        Index("ix_dunning_case_status", "status"),
        Index("ix_dunning_case_customer_id", "customer_id"),
    )


class DunningStep(UUIDPrimaryKey, Base):
    __tablename__ = "dunning_step"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dunning_case.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    day: Mapped[int | None] = mapped_column(Integer)  # days after the case opened; None for a manual retry
    actions: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    manual: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[DunningOutcome | None] = mapped_column(enum_column(DunningOutcome, "dunning_outcome"))
    error: Mapped[str | None] = mapped_column(String(2000))
    # one {"action", "outcome", "error"} per action, in order
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list, server_default="[]")

    __table_args__ = (
        UniqueConstraint("case_id", "position", name="uq_dunning_step_case_id_position"),
        Index("ix_dunning_step_scheduled_at", "scheduled_at"),
    )
