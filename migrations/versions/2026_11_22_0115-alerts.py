"""alerts

Revision ID: 3a41c0de5b77
Revises: 0ff0c2149768
Create Date: 2026-11-22 01:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3a41c0de5b77"
down_revision: str | None = "0ff0c2149768"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column(
            "kind",
            _enum("alert_kind", "PAYMENT_FAILED", "TRIAL_ENDING", "QUOTA_THRESHOLD", "CHURN_RISK", "WEBHOOK_FAILURE"),
            nullable=False,
        ),
        sa.Column("severity", _enum("alert_severity", "INFO", "WARNING", "CRITICAL"), nullable=False),
        sa.Column("status", _enum("alert_status", "OPEN", "ACKNOWLEDGED"), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=320), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_alert_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_alert_dedup_key")),
    )
    op.create_index("ix_alert_created_at_id", "alert", ["created_at", "id"], unique=False)
    op.create_index("ix_alert_kind_status", "alert", ["kind", "status"], unique=False)
    op.create_index("ix_alert_customer_id", "alert", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alert_customer_id", table_name="alert")
    op.drop_index("ix_alert_kind_status", table_name="alert")
    op.drop_index("ix_alert_created_at_id", table_name="alert")
    op.drop_table("alert")
