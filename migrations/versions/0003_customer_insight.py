"""customer insight: tags, tag history, event feed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('record_tags',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.String(length=36), nullable=False),
    sa.Column('form_key', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_tags')),
    sa.UniqueConstraint('record_id', 'tag', name=op.f('uq_record_tags_record_id_tag'))
    )
    with op.batch_alter_table('record_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_tags_form_key_tag'), ['form_key', 'tag'], unique=False)

    op.create_table('tag_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.String(length=36), nullable=False),
    sa.Column('form_key', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('on', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cause', sa.String(length=160), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_history'))
    )
    with op.batch_alter_table('tag_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tag_history_record_id_id'), ['record_id', 'id'], unique=False)

    op.create_table('events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('dedup_key', sa.String(length=160), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_events_dedup_key'))
    )


def downgrade() -> None:
    op.drop_table('events')
    with op.batch_alter_table('tag_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tag_history_record_id_id'))
    op.drop_table('tag_history')
    with op.batch_alter_table('record_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_tags_form_key_tag'))
    op.drop_table('record_tags')
