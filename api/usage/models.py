from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
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
    # No foreign keys, on purpose: their per-row checks (a key-share lock on the customer and the
    # meter row for every event) halve ingest throughput. Ingest resolves both in the inserting
    # transaction, and customers and meters are never deleted (erasure anonymises the customer).
    customer_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    meter_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )

    # the unique key also serves "a customer's events"; reads go through the hourly buckets and the
    # events above the roll-up watermark (by id), so no other index slows the insert down
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_event_customer_id_idempotency_key"),
    )


class QuotaKind(enum.StrEnum):
    SOFT = "SOFT"  # alerts at 80% and 100%; events keep being accepted
    HARD = "HARD"  # alerts too, and ingest rejects what would go over (QUOTA_EXCEEDED)


class UsageQuota(UUIDPrimaryKey, Timestamps, Base):
    """How much of a meter a price's plan includes per billing period."""

    __tablename__ = "usage_quota"

    price_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("price.id"), nullable=False)
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"), nullable=False)
    quota_limit: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    kind: Mapped[QuotaKind] = mapped_column(enum_column(QuotaKind, "quota_kind"), nullable=False)

    __table_args__ = (UniqueConstraint("price_id", "meter_id", name="uq_usage_quota_price_id_meter_id"),)


class ReportStatus(enum.StrEnum):
    PENDING = "PENDING"  # to be sent to Stripe once its hour has closed
    REPORTED = "REPORTED"  # Stripe has the bucket's current value
    FAILED = "FAILED"  # the last attempt failed (see report_error); retried at next_report_at
    NOT_BILLED = "NOT_BILLED"  # no metered subscription of the customer bills this meter


class UsageBucket(Base):
    """One hour of one customer's usage of one meter, aggregated with the meter's aggregation.
    Written only by the roll-up; `value` for UNIQUE_COUNT is the number of rows in
    usage_bucket_value for the same key."""

    __tablename__ = "usage_bucket"

    # The hour's key (meter, customer, hour) is the primary key; `id` is a handle for the schema's
    # ids and cursors, unique by its identity and without an index of its own: every bucket the
    # roll-up writes would maintain it, and nothing looks a bucket up by it.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False)
    # no foreign keys, like usage_event (whose ids they come from): the roll-up writes hundreds of
    # thousands of buckets at once and per-row checks would double its time
    customer_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    meter_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    aggregation: Mapped[MeterAggregation] = mapped_column(
        enum_column(MeterAggregation, "meter_aggregation"), nullable=False
    )
    value: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    event_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # the newest event (LATEST takes its value; ties on time go to the later-received event)
    latest_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    latest_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    report_status: Mapped[ReportStatus] = mapped_column(
        enum_column(ReportStatus, "usage_report_status"), nullable=False, server_default=ReportStatus.PENDING.value
    )
    # what Stripe holds for this bucket, and how many meter events were sent for it (the next
    # event's identifier carries the revision, so a retry of the same revision never bills twice)
    reported_value: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    report_revision: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    report_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    report_error: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the meter event being sent, recorded before the call: after a crash the same event (same
    # identifier, same value) is sent again, and Stripe's identifier dedup makes it count once
    sending_identifier: Mapped[str | None] = mapped_column(String(100))
    sending_value: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))  # what the event carries
    sending_total: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))  # reported_value once it lands

    __table_args__ = (
        # meter first: the same index serves one customer's hours of a meter and a meter's hours
        # across every customer (usageSummary), so the roll-up maintains one index fewer
        PrimaryKeyConstraint("meter_id", "customer_id", "bucket_start"),
        # what the reporter has to do, oldest hour first; keyed by the hour alone (the status is
        # the index's condition), the narrowest entry every new bucket adds
        Index(
            "ix_usage_bucket_report_due",
            "bucket_start",
            postgresql_where=text("report_status IN ('PENDING', 'FAILED')"),
        ),
    )


class UsageBucketValue(Base):
    """The distinct values of a UNIQUE_COUNT meter's `uniqueProperty` seen in one bucket."""

    __tablename__ = "usage_bucket_value"

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    meter_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)


class UsageRollupState(Base):
    """The roll-up watermark: every usage event with id ≤ last_event_id is in the buckets.
    Advanced in the same transaction as the buckets it covers."""

    __tablename__ = "usage_rollup_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
