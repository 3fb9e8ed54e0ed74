"""field encryption: blind index

Sensitive fields are sealed inside ``records.data``; their lookup rows in ``record_values``
hold an HMAC-SHA256 blind index instead of the value, under the master key ``key_id`` names.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_values") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("record_values") as batch:
        batch.drop_column("key_id")
