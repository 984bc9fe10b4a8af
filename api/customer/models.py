from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, Timestamps, UUIDPrimaryKey


class CustomerTier(enum.StrEnum):
    KICKSTART = "KICKSTART"
    PRO = "PRO"
    CUSTOM = "CUSTOM"


class CustomerStatus(enum.StrEnum):
    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    SUSPENDED = "SUSPENDED"
    CANCELED = "CANCELED"


class Customer(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "customer"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    address_city: Mapped[str | None] = mapped_column(String(100))
    address_state: Mapped[str | None] = mapped_column(String(100))
    address_postal_code: Mapped[str | None] = mapped_column(String(20))
    address_country: Mapped[str | None] = mapped_column(String(2))
    tax_id: Mapped[str | None] = mapped_column(String(50))
    tier: Mapped[CustomerTier] = mapped_column(enum_column(CustomerTier, "customer_tier"), nullable=False)
    industry: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[CustomerStatus] = mapped_column(enum_column(CustomerStatus, "customer_status"), nullable=False)
    internal_team: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="usd", server_default="usd")
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    suspended_reason: Mapped[str | None] = mapped_column(String(500))
    # the default payment method, mirrored from Stripe (never the full card number)
    payment_method_brand: Mapped[str | None] = mapped_column(String(30))
    payment_method_last4: Mapped[str | None] = mapped_column(String(4))
    payment_method_exp_month: Mapped[int | None] = mapped_column(SmallInteger)
    payment_method_exp_year: Mapped[int | None] = mapped_column(SmallInteger)
    notes: Mapped[str | None] = mapped_column(String(5000))
    # Stripe's `created` of the newest customer event applied (older webhook deliveries are skipped)
    stripe_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # keyset orders: (created_at, id) and (name, id)
        Index("ix_customer_created_at_id", "created_at", "id"),
        Index("ix_customer_name_id", "name", "id"),
        Index("ix_customer_tier", "tier"),
        Index("ix_customer_status", "status"),
        Index("ix_customer_industry", "industry"),
        # search: substring match on name and email
        Index("ix_customer_name_trgm", text("lower(name) gin_trgm_ops"), postgresql_using="gin"),
        Index("ix_customer_email_trgm", text("lower(email) gin_trgm_ops"), postgresql_using="gin"),
    )


class CustomerReferenceVersion(Base):
    """One row whose `version` moves (by a trigger, in the changing transaction) whenever a
    customer's external id or Stripe customer id changes: what a cache of "which customer does
    this reference name" checks to know it is still right."""

    __tablename__ = "customer_reference_version"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
