"""customer reference version: moves whenever a customer's external id or Stripe customer id
changes, so usage ingest's cache of references knows when to forget

Revision ID: 9e4a6c1f2b83
Revises: 5d0b7e93a1c4
Create Date: 2026-11-22 05:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e4a6c1f2b83"
down_revision: str | None = "5d0b7e93a1c4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# in the changing transaction: a reader that sees the new version sees the new reference too
BUMP = [
    """
CREATE FUNCTION customer_reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customer_reference_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$""",
    """CREATE TRIGGER customer_reference_changed AFTER UPDATE OF external_id, stripe_customer_id ON customer
    FOR EACH ROW WHEN (OLD.external_id IS DISTINCT FROM NEW.external_id
                       OR OLD.stripe_customer_id IS DISTINCT FROM NEW.stripe_customer_id)
    EXECUTE FUNCTION customer_reference_changed()""",
]


def upgrade() -> None:
    op.create_table(
        "customer_reference_version",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_reference_version")),
    )
    op.execute("INSERT INTO customer_reference_version (id, version) VALUES (1, 0)")
    for statement in BUMP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER customer_reference_changed ON customer")
    op.execute("DROP FUNCTION customer_reference_changed()")
    op.drop_table("customer_reference_version")
