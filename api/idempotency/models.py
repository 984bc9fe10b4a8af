from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, utcnow


class MutationIdempotency(Base):
    """The first result of a mutation called with an `idempotencyKey`, per (actor, mutation, key).

    A repeat with the same input returns `result`; a repeat with other input is refused."""

    __tablename__ = "mutation_idempotency"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    actor_subject: Mapped[str] = mapped_column(String(255), nullable=False)
    mutation: Mapped[str] = mapped_column(String(100), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    input_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA-256 of the canonical input
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )

    __table_args__ = (UniqueConstraint("actor_subject", "mutation", "idempotency_key"),)
