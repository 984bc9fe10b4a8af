"""usage buckets, roll-up watermark, quotas

Revision ID: 8242ddb59332
Revises: 3a41c0de5b77
Create Date: 2026-11-22 01:21:55.220993+00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '8242ddb59332'
down_revision: str | None = '3a41c0de5b77'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('usage_bucket_value',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('meter_id', sa.Uuid(), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'meter_id', 'bucket_start', 'value', name=op.f('pk_usage_bucket_value'))
    )
    op.create_table('usage_rollup_state',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_rollup_state'))
    )
    op.create_table('usage_bucket',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('meter_id', sa.Uuid(), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('aggregation', sa.Enum('SUM', 'COUNT', 'MAX', 'UNIQUE_COUNT', 'LATEST', name='meter_aggregation', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('value', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('event_count', sa.BigInteger(), nullable=False),
    sa.Column('latest_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latest_event_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('report_status', sa.Enum('PENDING', 'REPORTED', 'FAILED', 'NOT_BILLED', name='usage_report_status', native_enum=False, create_constraint=True, length=32), server_default='PENDING', nullable=False),
    sa.Column('reported_value', sa.Numeric(precision=20, scale=6), nullable=True),
    sa.Column('report_revision', sa.Integer(), server_default='0', nullable=False),
    sa.Column('report_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('report_error', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_report_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sending_identifier', sa.String(length=100), nullable=True),
    sa.Column('sending_value', sa.Numeric(precision=20, scale=6), nullable=True),
    sa.Column('sending_total', sa.Numeric(precision=20, scale=6), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_bucket')),
    sa.UniqueConstraint('meter_id', 'customer_id', 'bucket_start', name='uq_usage_bucket_meter_id_customer_id_bucket_start')
    )
    op.create_index('ix_usage_bucket_report_due', 'usage_bucket', ['report_status', 'bucket_start'], unique=False, postgresql_where=sa.text("report_status IN ('PENDING', 'FAILED')"))
    op.create_table('usage_quota',
    sa.Column('price_id', sa.Uuid(), nullable=False),
    sa.Column('meter_id', sa.Uuid(), nullable=False),
    sa.Column('quota_limit', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('kind', sa.Enum('SOFT', 'HARD', name='quota_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meter.id'], name=op.f('fk_usage_quota_meter_id_meter')),
    sa.ForeignKeyConstraint(['price_id'], ['price.id'], name=op.f('fk_usage_quota_price_id_price')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_quota')),
    sa.UniqueConstraint('price_id', 'meter_id', name='uq_usage_quota_price_id_meter_id')
    )
    # ingest speed: no per-row foreign-key checks, no index the reads do not use (see UsageEvent)
    op.drop_constraint("fk_usage_event_customer_id_customer", "usage_event", type_="foreignkey")
    op.drop_constraint("fk_usage_event_meter_id_meter", "usage_event", type_="foreignkey")
    op.drop_index("ix_usage_event_customer_id_meter_id_occurred_at", table_name="usage_event")
    # the single watermark row: the roll-up locks it, so roll-ups never overlap
    op.execute("INSERT INTO usage_rollup_state (id, last_event_id) VALUES (1, 0)")


def downgrade() -> None:
    op.create_index(
        "ix_usage_event_customer_id_meter_id_occurred_at", "usage_event", ["customer_id", "meter_id", "occurred_at"]
    )
    op.create_foreign_key("fk_usage_event_meter_id_meter", "usage_event", "meter", ["meter_id"], ["id"])
    op.create_foreign_key("fk_usage_event_customer_id_customer", "usage_event", "customer", ["customer_id"], ["id"])
    op.drop_table('usage_quota')
    op.drop_index('ix_usage_bucket_report_due', table_name='usage_bucket', postgresql_where=sa.text("report_status IN ('PENDING', 'FAILED')"))
    op.drop_table('usage_bucket')
    op.drop_table('usage_rollup_state')
    op.drop_table('usage_bucket_value')
