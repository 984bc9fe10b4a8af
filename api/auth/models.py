from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, Timestamps, UUIDPrimaryKey, utcnow


class ApiKey(UUIDPrimaryKey, Timestamps, Base):
    """An integration's key. Only a hash of the secret is kept; the prefix finds the row."""

    __tablename__ = "api_key"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(50)), nullable=False)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # set on the old key when it is rotated: it keeps working until then
    rotated_grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column()


class StaffMember(Base):
    """What the owner decided about a staff subject: a role that overrides the token's claim,
    or a revocation. Subjects without a row simply use their token's role."""

    __tablename__ = "staff_member"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    role_override: Mapped[str | None] = mapped_column(String(32))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SecurityEventKind(enum.StrEnum):
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    FORBIDDEN = "FORBIDDEN"
    API_KEY_MISUSE = "API_KEY_MISUSE"
    WEBHOOK_SIGNATURE_INVALID = "WEBHOOK_SIGNATURE_INVALID"


class SecurityEvent(Base):
    __tablename__ = "security_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    kind: Mapped[SecurityEventKind] = mapped_column(
        enum_column(SecurityEventKind, "security_event_kind"), nullable=False
    )
    subject: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(32))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column()
    attempted: Mapped[str | None] = mapped_column(String(500))  # what was tried: a field, an operation, a path
    detail: Mapped[str | None] = mapped_column(String(1000))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_security_event_occurred_at_id", "occurred_at", "id"),
        Index("ix_security_event_kind", "kind"),
    )
