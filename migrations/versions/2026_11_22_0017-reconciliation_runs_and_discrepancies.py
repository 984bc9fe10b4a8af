"""reconciliation runs and discrepancies

Revision ID: 0ff0c2149768
Revises: 7b3e2c9d5a10
Create Date: 2026-11-22 00:17:36.095043+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0ff0c2149768"
down_revision: str | None = "7b3e2c9d5a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_run",
        sa.Column(
            "scope",
            sa.Enum(
                "ALL", "CUSTOMER", name="reconciliation_scope", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "RUNNING",
                "COMPLETED",
                "FAILED",
                name="reconciliation_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("objects_checked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("discrepancy_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_reconciliation_run_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_run")),
    )
    op.create_index("ix_reconciliation_run_started_at_id", "reconciliation_run", ["started_at", "id"], unique=False)
    op.create_table(
        "discrepancy",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column(
            "object_type",
            sa.Enum(
                "CUSTOMER",
                "SUBSCRIPTION",
                "INVOICE",
                name="reconciliation_object_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "MISSING_LOCALLY",
                "MISSING_IN_STRIPE",
                "FIELD_MISMATCH",
                name="discrepancy_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("local_id", sa.Uuid(), nullable=True),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("field", sa.String(length=100), nullable=True),
        sa.Column("local_value", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.Column("stripe_value", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_run.id"],
            name=op.f("fk_discrepancy_run_id_reconciliation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancy")),
    )
    op.create_index("ix_discrepancy_run_id_created_at_id", "discrepancy", ["run_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_discrepancy_run_id_created_at_id", table_name="discrepancy")
    op.drop_table("discrepancy")
    op.drop_index("ix_reconciliation_run_started_at_id", table_name="reconciliation_run")
    op.drop_table("reconciliation_run")
