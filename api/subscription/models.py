from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.common.columns import enum_column
from api.db import Base, Timestamps, UUIDPrimaryKey


class SubscriptionStatus(enum.StrEnum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    PAUSED = "PAUSED"
    UNPAID = "UNPAID"
    INCOMPLETE = "INCOMPLETE"
    CANCELED = "CANCELED"


class PauseBehavior(enum.StrEnum):
    KEEP_AS_DRAFT = "KEEP_AS_DRAFT"
    MARK_UNCOLLECTIBLE = "MARK_UNCOLLECTIBLE"
    VOID = "VOID"


class Subscription(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "subscription"

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), nullable=False)
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus, "subscription_status"), nullable=False
    )
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    current_period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    current_period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    trial_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    pause_behavior: Mapped[PauseBehavior | None] = mapped_column(enum_column(PauseBehavior, "pause_behavior"))
    pause_resumes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # the subscription's discount as Stripe applies it (revenue analytics takes it off MRR)
    discount_stripe_id: Mapped[str | None] = mapped_column(String(255))
    discount_percent_off: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    discount_amount_off: Mapped[int | None] = mapped_column(BigInteger)  # minor units, per invoice
    discount_duration: Mapped[str | None] = mapped_column(String(16))  # once, repeating, forever
    discount_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe's `created` of the newest event applied, so older deliveries never overwrite newer state
    stripe_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    items: Mapped[list[SubscriptionItem]] = relationship(back_populates="subscription", lazy="raise")

    @property
    def paused(self) -> bool:
        return self.pause_behavior is not None

    __table_args__ = (
        Index("ix_subscription_customer_id", "customer_id"),
        Index("ix_subscription_created_at_id", "created_at", "id"),
        Index("ix_subscription_status", "status"),
    )


class SubscriptionItem(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "subscription_item"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False, index=True
    )
    price_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("price.id"), nullable=False, index=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    stripe_subscription_item_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    subscription: Mapped[Subscription] = relationship(back_populates="items", lazy="raise")
