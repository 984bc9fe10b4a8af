"""dunning policies, cases and steps; the email outbox

Revision ID: 2ddc6b45153d
Revises: 8242ddb59332
Create Date: 2026-11-22 02:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2ddc6b45153d"
down_revision: str | None = "8242ddb59332"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIERS = ("KICKSTART", "PRO", "CUSTOM")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "dunning_policy",
        sa.Column("tier", _enum("customer_tier", *TIERS), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tier", name=op.f("pk_dunning_policy")),
    )
    op.create_table(
        "outbound_email",
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("related_id", sa.Uuid(), nullable=True),
        sa.Column("status", _enum("email_status", "PENDING", "SENT", "FAILED"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_outbound_email_customer_id_customer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_email")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_outbound_email_dedup_key")),
    )
    op.create_index("ix_outbound_email_related_id", "outbound_email", ["related_id"], unique=False)
    op.create_index("ix_outbound_email_status_created_at", "outbound_email", ["status", "created_at"], unique=False)
    op.create_table(
        "dunning_case",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            _enum("dunning_case_status", "OPEN", "PAUSED", "RECOVERED", "EXHAUSTED", "CLOSED"),
            nullable=False,
        ),
        sa.Column("tier", _enum("customer_tier", *TIERS), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_dunning_case_customer_id_customer")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name=op.f("fk_dunning_case_invoice_id_invoice")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_case")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_dunning_case_invoice_id")),
    )
    op.create_index("ix_dunning_case_customer_id", "dunning_case", ["customer_id"], unique=False)
    op.create_index("ix_dunning_case_opened_at_id", "dunning_case", ["opened_at", "id"], unique=False)
    op.create_index("ix_dunning_case_status", "dunning_case", ["status"], unique=False)
    op.create_table(
        "dunning_step",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("manual", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", _enum("dunning_outcome", "SUCCEEDED", "FAILED", "SKIPPED"), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["dunning_case.id"], name=op.f("fk_dunning_step_case_id_dunning_case"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_step")),
        sa.UniqueConstraint("case_id", "position", name="uq_dunning_step_case_id_position"),
    )
    op.create_index("ix_dunning_step_scheduled_at", "dunning_step", ["scheduled_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dunning_step_scheduled_at", table_name="dunning_step")
    op.drop_table("dunning_step")
    op.drop_index("ix_dunning_case_status", table_name="dunning_case")
    op.drop_index("ix_dunning_case_opened_at_id", table_name="dunning_case")
    op.drop_index("ix_dunning_case_customer_id", table_name="dunning_case")
    op.drop_table("dunning_case")
    op.drop_index("ix_outbound_email_status_created_at", table_name="outbound_email")
    op.drop_index("ix_outbound_email_related_id", table_name="outbound_email")
    op.drop_table("outbound_email")
    op.drop_table("dunning_policy")
