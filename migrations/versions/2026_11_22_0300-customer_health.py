"""customer health: daily snapshots per customer and the current band

Revision ID: c4e81a2d7f35
Revises: 7b2e5f0c9d14
Create Date: 2026-11-22 03:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4e81a2d7f35"
down_revision: str | None = "7b2e5f0c9d14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS = ("HIGH_RISK", "MEDIUM", "HEALTHY")
COMPONENTS = ("usage", "engagement", "support", "payment", "adoption")


def _band() -> sa.Enum:
    return sa.Enum(*BANDS, name="health_band", native_enum=False, create_constraint=True, length=32)


def _score(name: str) -> sa.Column[sa.Numeric]:
    return sa.Column(name, sa.Numeric(5, 2), nullable=False)


def upgrade() -> None:
    op.create_table(
        "customer_health_snapshot",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("computed_on", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _score("score"),
        sa.Column("band", _band(), nullable=False),
        *[_score(f"{name}_score") for name in COMPONENTS],
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_customer_health_snapshot_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("customer_id", "computed_on", name=op.f("pk_customer_health_snapshot")),
    )
    op.create_table(
        "customer_health",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("computed_on", sa.Date(), nullable=False),
        _score("score"),
        sa.Column("band", _band(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_customer_health_customer_id_customer")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_health")),
    )
    op.create_index("ix_customer_health_band_customer_id", "customer_health", ["band", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_health_band_customer_id", table_name="customer_health")
    op.drop_table("customer_health")
    op.drop_table("customer_health_snapshot")
