"""The outbox: one row per email to send, written in the transaction that decides to send it,
so an email exists only if that decision committed (and is sent after the commit)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, UUIDPrimaryKey, utcnow


class EmailStatus(enum.StrEnum):
    PENDING = "PENDING"  # waiting for delivery (or for another attempt)
    SENT = "SENT"  # the SMTP server accepted it
    FAILED = "FAILED"  # refused too many times; see last_error


class OutboundEmail(UUIDPrimaryKey, Base):
    __tablename__ = "outbound_email"

    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    template: Mapped[str] = mapped_column(String(64), nullable=False)
    # what makes two requests the same email, e.g. `dunning:<case>:<step>:<action>`: queued once
    dedup_key: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id"))
    # the object the email is about (a dunning case, a subscription), to list its emails
    related_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[EmailStatus] = mapped_column(
        enum_column(EmailStatus, "email_status"), nullable=False, default=EmailStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbound_email_status_created_at", "status", "created_at"),
        Index("ix_outbound_email_related_id", "related_id"),
    )
