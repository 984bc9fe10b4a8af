"""revenue analytics: subscription discounts, MRR history, daily revenue snapshots

Revision ID: 7b2e5f0c9d14
Revises: 2ddc6b45153d
Create Date: 2026-11-22 02:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b2e5f0c9d14"
down_revision: str | None = "2ddc6b45153d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("TRIALING", "ACTIVE", "PAST_DUE", "PAUSED", "UNPAID", "INCOMPLETE", "CANCELED")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.add_column("subscription", sa.Column("discount_stripe_id", sa.String(length=255), nullable=True))
    op.add_column("subscription", sa.Column("discount_percent_off", sa.Numeric(7, 4), nullable=True))
    op.add_column("subscription", sa.Column("discount_amount_off", sa.BigInteger(), nullable=True))
    op.add_column("subscription", sa.Column("discount_duration", sa.String(length=16), nullable=True))
    op.add_column("subscription", sa.Column("discount_ends_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "subscription_mrr_change",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", _enum("mrr_change_status", *STATUSES), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("undiscounted_mrr", sa.BigInteger(), nullable=False),
        sa.Column("discount_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", _enum("mrr_change_source", "MIRROR", "SEED", "BACKFILL"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_subscription_mrr_change_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_subscription_mrr_change_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_subscription_mrr_change_product_id_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_mrr_change")),
    )
    op.create_index(
        "ix_subscription_mrr_change_subscription_effective",
        "subscription_mrr_change",
        ["subscription_id", "effective_at", "id"],
    )
    op.create_index(
        "ix_subscription_mrr_change_customer_effective", "subscription_mrr_change", ["customer_id", "effective_at"]
    )
    op.create_index("ix_subscription_mrr_change_effective_at", "subscription_mrr_change", ["effective_at"])
    op.create_index(
        "ix_subscription_mrr_change_discount_ends_at",
        "subscription_mrr_change",
        ["discount_ends_at"],
        postgresql_where=sa.text("discount_ends_at IS NOT NULL"),
    )

    counters = (
        "new",
        "expansion",
        "contraction",
        "churned",
        "reactivation",
    )
    op.create_table(
        "revenue_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("trialing_customers", sa.Integer(), nullable=False),
        *(
            column
            for name in counters
            for column in (
                sa.Column(f"{name}_mrr", sa.BigInteger(), nullable=False),
                sa.Column(f"{name}_customers", sa.Integer(), nullable=False),
            )
        ),
        sa.Column("trials_started", sa.Integer(), nullable=False),
        sa.Column("trials_ended", sa.Integer(), nullable=False),
        sa.Column("trials_converted", sa.Integer(), nullable=False),
        sa.Column("charges_succeeded", sa.Integer(), nullable=False),
        sa.Column("charges_succeeded_amount", sa.BigInteger(), nullable=False),
        sa.Column("charges_failed", sa.Integer(), nullable=False),
        sa.Column("charges_failed_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("recovered_invoices", sa.Integer(), nullable=False),
        sa.Column("recovered_amount", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_revenue_day")),
    )
    op.create_table(
        "revenue_day_segment",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("dimension", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("mrr", sa.BigInteger(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", "dimension", "key", name=op.f("pk_revenue_day_segment")),
    )

    op.create_index("ix_payment_created_at", "payment", ["created_at"])
    op.create_index("ix_refund_created_at", "refund", ["created_at"])
    op.create_index("ix_invoice_paid_at", "invoice", ["paid_at"], postgresql_where=sa.text("paid_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_invoice_paid_at", table_name="invoice")
    op.drop_index("ix_refund_created_at", table_name="refund")
    op.drop_index("ix_payment_created_at", table_name="payment")
    op.drop_table("revenue_day_segment")
    op.drop_table("revenue_day")
    op.drop_index("ix_subscription_mrr_change_discount_ends_at", table_name="subscription_mrr_change")
    op.drop_index("ix_subscription_mrr_change_effective_at", table_name="subscription_mrr_change")
    op.drop_index("ix_subscription_mrr_change_customer_effective", table_name="subscription_mrr_change")
    op.drop_index("ix_subscription_mrr_change_subscription_effective", table_name="subscription_mrr_change")
    op.drop_table("subscription_mrr_change")
    for column in (
        "discount_ends_at",
        "discount_duration",
        "discount_amount_off",
        "discount_percent_off",
        "discount_stripe_id",
    ):
        op.drop_column("subscription", column)
