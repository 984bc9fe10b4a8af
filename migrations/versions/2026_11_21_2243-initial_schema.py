"""initial schema

Revision ID: 8c7e41f8147d
Revises:
Create Date: 2026-11-21 22:43:30.499103+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8c7e41f8147d"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# audit rows can be inserted, never changed or removed (not even by the application's own user)
AUDIT_APPEND_ONLY = [
    """
CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entry is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$""",
    """CREATE TRIGGER audit_entry_no_update_delete BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
    """CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()""",
]


def upgrade() -> None:
    # substring search on customer name and email
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "api_key",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=50)), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_subject", sa.String(length=255), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=False),
        sa.Column("target_id", sa.String(length=100), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum("SUCCESS", "FAILURE", name="audit_outcome", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_entry_entry_hash")),
    )
    op.create_index("ix_audit_entry_action", "audit_entry", ["action"], unique=False)
    op.create_index("ix_audit_entry_actor_subject", "audit_entry", ["actor_subject"], unique=False)
    op.create_index("ix_audit_entry_occurred_at_id", "audit_entry", ["occurred_at", "id"], unique=False)
    op.create_index("ix_audit_entry_target", "audit_entry", ["target_type", "target_id"], unique=False)
    op.create_table(
        "customer",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=200), nullable=True),
        sa.Column("address_city", sa.String(length=100), nullable=True),
        sa.Column("address_state", sa.String(length=100), nullable=True),
        sa.Column("address_postal_code", sa.String(length=20), nullable=True),
        sa.Column("address_country", sa.String(length=2), nullable=True),
        sa.Column("tax_id", sa.String(length=50), nullable=True),
        sa.Column(
            "tier",
            sa.Enum(
                "KICKSTART", "PRO", "CUSTOM", name="customer_tier", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "TRIAL",
                "ACTIVE",
                "PAST_DUE",
                "SUSPENDED",
                "CANCELED",
                name="customer_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("internal_team", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="usd", nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("suspended_reason", sa.String(length=500), nullable=True),
        sa.Column("notes", sa.String(length=5000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
        sa.UniqueConstraint("external_id", name=op.f("uq_customer_external_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_customer_stripe_customer_id")),
    )
    op.create_index("ix_customer_created_at_id", "customer", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_customer_email_trgm",
        "customer",
        [sa.literal_column("lower(email) gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_customer_industry", "customer", ["industry"], unique=False)
    op.create_index("ix_customer_name_id", "customer", ["name", "id"], unique=False)
    op.create_index(
        "ix_customer_name_trgm",
        "customer",
        [sa.literal_column("lower(name) gin_trgm_ops")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_customer_status", "customer", ["status"], unique=False)
    op.create_index("ix_customer_tier", "customer", ["tier"], unique=False)
    op.create_table(
        "meter",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=True),
        sa.Column(
            "aggregation",
            sa.Enum(
                "SUM",
                "COUNT",
                "MAX",
                "UNIQUE_COUNT",
                "LATEST",
                name="meter_aggregation",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("value_property", sa.String(length=100), nullable=True),
        sa.Column("unique_property", sa.String(length=100), nullable=True),
        sa.Column("stripe_event_name", sa.String(length=100), nullable=True),
        sa.Column("stripe_meter_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter")),
        sa.UniqueConstraint("key", name=op.f("uq_meter_key")),
        sa.UniqueConstraint("stripe_event_name", name=op.f("uq_meter_stripe_event_name")),
        sa.UniqueConstraint("stripe_meter_id", name=op.f("uq_meter_stripe_meter_id")),
    )
    op.create_table(
        "product",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("stripe_product_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
        sa.UniqueConstraint("stripe_product_id", name=op.f("uq_product_stripe_product_id")),
    )
    op.create_table(
        "price",
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("nickname", sa.String(length=200), nullable=True),
        sa.Column("unit_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "interval",
            sa.Enum("MONTH", "YEAR", name="price_interval", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "usage_type",
            sa.Enum(
                "LICENSED", "METERED", name="price_usage_type", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("meter_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_price_meter_id_meter")),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_price_product_id_product")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price")),
        sa.UniqueConstraint("stripe_price_id", name=op.f("uq_price_stripe_price_id")),
    )
    op.create_index("ix_price_currency_interval", "price", ["currency", "interval"], unique=False)
    op.create_index(op.f("ix_price_meter_id"), "price", ["meter_id"], unique=False)
    op.create_index(op.f("ix_price_product_id"), "price", ["product_id"], unique=False)
    op.create_table(
        "subscription",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "TRIALING",
                "ACTIVE",
                "PAST_DUE",
                "PAUSED",
                "UNPAID",
                "INCOMPLETE",
                "CANCELED",
                name="subscription_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "pause_behavior",
            sa.Enum(
                "KEEP_AS_DRAFT",
                "MARK_UNCOLLECTIBLE",
                "VOID",
                name="pause_behavior",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("pause_resumes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_subscription_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
        sa.UniqueConstraint("stripe_subscription_id", name=op.f("uq_subscription_stripe_subscription_id")),
    )
    op.create_index("ix_subscription_created_at_id", "subscription", ["created_at", "id"], unique=False)
    op.create_index("ix_subscription_customer_id", "subscription", ["customer_id"], unique=False)
    op.create_index("ix_subscription_status", "subscription", ["status"], unique=False)
    op.create_table(
        "usage_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_usage_event_customer_id_customer")),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_usage_event_meter_id_meter")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_event")),
        sa.UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_event_customer_id_idempotency_key"),
    )
    op.create_index(
        "ix_usage_event_customer_id_meter_id_occurred_at",
        "usage_event",
        ["customer_id", "meter_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "webhook_event",
        sa.Column("stripe_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "RECEIVED",
                "PROCESSED",
                "FAILED",
                "IGNORED",
                name="webhook_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_webhook_event_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_event")),
        sa.UniqueConstraint("stripe_event_id", name=op.f("uq_webhook_event_stripe_event_id")),
    )
    op.create_index("ix_webhook_event_received_at_id", "webhook_event", ["received_at", "id"], unique=False)
    op.create_index("ix_webhook_event_status", "webhook_event", ["status"], unique=False)
    op.create_index("ix_webhook_event_type", "webhook_event", ["type"], unique=False)
    op.create_table(
        "invoice",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "DRAFT",
                "OPEN",
                "PAID",
                "VOID",
                "UNCOLLECTIBLE",
                name="invoice_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("amount_remaining", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("hosted_invoice_url", sa.String(length=1000), nullable=True),
        sa.Column("invoice_pdf_url", sa.String(length=1000), nullable=True),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_payment_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_invoice_customer_id_customer")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscription.id"], name=op.f("fk_invoice_subscription_id_subscription")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_number")),
        sa.UniqueConstraint("stripe_invoice_id", name=op.f("uq_invoice_stripe_invoice_id")),
    )
    op.create_index("ix_invoice_created_at_id", "invoice", ["created_at", "id"], unique=False)
    op.create_index("ix_invoice_customer_id_created_at", "invoice", ["customer_id", "created_at", "id"], unique=False)
    op.create_index("ix_invoice_status", "invoice", ["status"], unique=False)
    op.create_index("ix_invoice_subscription_id", "invoice", ["subscription_id"], unique=False)
    op.create_table(
        "subscription_item",
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("price_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("stripe_subscription_item_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["price_id"], ["price.id"], name=op.f("fk_subscription_item_price_id_price")),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_subscription_item_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_item")),
        sa.UniqueConstraint(
            "stripe_subscription_item_id", name=op.f("uq_subscription_item_stripe_subscription_item_id")
        ),
    )
    op.create_index(op.f("ix_subscription_item_price_id"), "subscription_item", ["price_id"], unique=False)
    op.create_index(
        op.f("ix_subscription_item_subscription_id"), "subscription_item", ["subscription_id"], unique=False
    )
    op.create_table(
        "invoice_line",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price_id", sa.Uuid(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proration", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("stripe_line_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoice.id"], name=op.f("fk_invoice_line_invoice_id_invoice"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["price_id"], ["price.id"], name=op.f("fk_invoice_line_price_id_price")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_line")),
    )
    op.create_index(op.f("ix_invoice_line_invoice_id"), "invoice_line", ["invoice_id"], unique=False)
    op.create_table(
        "payment",
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum("SUCCEEDED", "FAILED", name="payment_status", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("failure_code", sa.String(length=100), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_payment_customer_id_customer")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name=op.f("fk_payment_invoice_id_invoice")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment")),
        sa.UniqueConstraint("stripe_charge_id", name=op.f("uq_payment_stripe_charge_id")),
    )
    op.create_index(op.f("ix_payment_customer_id"), "payment", ["customer_id"], unique=False)
    op.create_index(op.f("ix_payment_invoice_id"), "payment", ["invoice_id"], unique=False)
    op.create_table(
        "refund",
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "SUCCEEDED",
                "FAILED",
                name="refund_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name=op.f("fk_refund_invoice_id_invoice")),
        sa.ForeignKeyConstraint(["payment_id"], ["payment.id"], name=op.f("fk_refund_payment_id_payment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refund_stripe_refund_id")),
    )
    op.create_index(op.f("ix_refund_invoice_id"), "refund", ["invoice_id"], unique=False)
    op.create_index(op.f("ix_refund_payment_id"), "refund", ["payment_id"], unique=False)
    # ### end Alembic commands ###
    for statement in AUDIT_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update_delete ON audit_entry")
    op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(op.f("ix_refund_payment_id"), table_name="refund")
    op.drop_index(op.f("ix_refund_invoice_id"), table_name="refund")
    op.drop_table("refund")
    op.drop_index(op.f("ix_payment_invoice_id"), table_name="payment")
    op.drop_index(op.f("ix_payment_customer_id"), table_name="payment")
    op.drop_table("payment")
    op.drop_index(op.f("ix_invoice_line_invoice_id"), table_name="invoice_line")
    op.drop_table("invoice_line")
    op.drop_index(op.f("ix_subscription_item_subscription_id"), table_name="subscription_item")
    op.drop_index(op.f("ix_subscription_item_price_id"), table_name="subscription_item")
    op.drop_table("subscription_item")
    op.drop_index("ix_invoice_subscription_id", table_name="invoice")
    op.drop_index("ix_invoice_status", table_name="invoice")
    op.drop_index("ix_invoice_customer_id_created_at", table_name="invoice")
    op.drop_index("ix_invoice_created_at_id", table_name="invoice")
    op.drop_table("invoice")
    op.drop_index("ix_webhook_event_type", table_name="webhook_event")
    op.drop_index("ix_webhook_event_status", table_name="webhook_event")
    op.drop_index("ix_webhook_event_received_at_id", table_name="webhook_event")
    op.drop_table("webhook_event")
    op.drop_index("ix_usage_event_customer_id_meter_id_occurred_at", table_name="usage_event")
    op.drop_table("usage_event")
    op.drop_index("ix_subscription_status", table_name="subscription")
    op.drop_index("ix_subscription_customer_id", table_name="subscription")
    op.drop_index("ix_subscription_created_at_id", table_name="subscription")
    op.drop_table("subscription")
    op.drop_index(op.f("ix_price_product_id"), table_name="price")
    op.drop_index(op.f("ix_price_meter_id"), table_name="price")
    op.drop_index("ix_price_currency_interval", table_name="price")
    op.drop_table("price")
    op.drop_table("product")
    op.drop_table("meter")
    op.drop_index("ix_customer_tier", table_name="customer")
    op.drop_index("ix_customer_status", table_name="customer")
    op.drop_index("ix_customer_name_trgm", table_name="customer", postgresql_using="gin")
    op.drop_index("ix_customer_name_id", table_name="customer")
    op.drop_index("ix_customer_industry", table_name="customer")
    op.drop_index("ix_customer_email_trgm", table_name="customer", postgresql_using="gin")
    op.drop_index("ix_customer_created_at_id", table_name="customer")
    op.drop_table("customer")
    op.drop_index("ix_audit_entry_target", table_name="audit_entry")
    op.drop_index("ix_audit_entry_occurred_at_id", table_name="audit_entry")
    op.drop_index("ix_audit_entry_actor_subject", table_name="audit_entry")
    op.drop_index("ix_audit_entry_action", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.drop_table("api_key")
    # ### end Alembic commands ###
