"""Revenue analytics storage: the append-only MRR history of every subscription, and the daily
aggregates computed from it (one row per day and currency, plus its plan / tier / cohort cells)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from api.common.columns import enum_column
from api.db import Base, utcnow
from api.invoice.models import Invoice, Payment, Refund
from api.subscription.models import SubscriptionStatus


class MrrSource(enum.StrEnum):
    MIRROR = "MIRROR"  # a Stripe answer or webhook applied to the subscription
    SEED = "SEED"  # demo data
    BACKFILL = "BACKFILL"  # rebuilt from a subscription's current state


class SubscriptionMrrChange(Base):
    """One row each time a subscription's normalised MRR, status, pause, plan, quantity or
    discount changes. The state at a moment is the newest row effective before it."""

    __tablename__ = "subscription_mrr_change"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"), nullable=False)
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus, "mrr_change_status"), nullable=False
    )
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    product_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("product.id"))  # the plan
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    # MRR counted (minor units, 0 unless ACTIVE or PAST_DUE and not paused), with the discount
    mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # the same without the discount: what counts from `discount_ends_at` on
    undiscounted_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    discount_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[MrrSource] = mapped_column(enum_column(MrrSource, "mrr_change_source"), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index("ix_subscription_mrr_change_subscription_effective", "subscription_id", "effective_at", "id"),
        Index("ix_subscription_mrr_change_customer_effective", "customer_id", "effective_at"),
        Index("ix_subscription_mrr_change_effective_at", "effective_at"),
        Index(
            "ix_subscription_mrr_change_discount_ends_at",
            "discount_ends_at",
            postgresql_where="discount_ends_at IS NOT NULL",
        ),
    )


class RevenueDay(Base):
    """A day's totals in one currency: the state at the end of the day (UTC) and what moved during it."""

    __tablename__ = "revenue_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    customers: Mapped[int] = mapped_column(Integer, nullable=False)
    trialing_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    new_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    new_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    expansion_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expansion_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    contraction_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contraction_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    churned_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    churned_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    reactivation_mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reactivation_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    trials_started: Mapped[int] = mapped_column(Integer, nullable=False)
    trials_ended: Mapped[int] = mapped_column(Integer, nullable=False)
    trials_converted: Mapped[int] = mapped_column(Integer, nullable=False)
    charges_succeeded: Mapped[int] = mapped_column(Integer, nullable=False)
    charges_succeeded_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    charges_failed: Mapped[int] = mapped_column(Integer, nullable=False)
    charges_failed_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refunds: Mapped[int] = mapped_column(Integer, nullable=False)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recovered_invoices: Mapped[int] = mapped_column(Integer, nullable=False)
    recovered_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RevenueDaySegment(Base):
    """MRR and paying customers at the end of a day in one cell: a plan (product id), a tier, or a
    signup-month cohort (`2026-01`)."""

    __tablename__ = "revenue_day_segment"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(8), primary_key=True)  # PLAN, TIER, COHORT
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    mrr: Mapped[int] = mapped_column(BigInteger, nullable=False)
    customers: Mapped[int] = mapped_column(Integer, nullable=False)


# Payment health reads payments, refunds and paid invoices by day: these keep today's live figures
# (and the recomputation of a range) from scanning whole tables.
Index("ix_payment_created_at", Payment.created_at)
Index("ix_refund_created_at", Refund.created_at)
Index("ix_invoice_paid_at", Invoice.paid_at, postgresql_where=Invoice.paid_at.isnot(None))
