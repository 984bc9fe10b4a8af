"""webhook retries, customer stripe_updated_at

Revision ID: 7b3e2c9d5a10
Revises: 480901b00406
Create Date: 2026-11-22 00:10:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b3e2c9d5a10"
down_revision: str | None = "480901b00406"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customer", sa.Column("stripe_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhook_event", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_event", "next_attempt_at")
    op.drop_column("customer", "stripe_updated_at")
