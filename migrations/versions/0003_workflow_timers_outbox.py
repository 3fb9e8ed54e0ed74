"""workflow timers tokens outbox delivery

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 21:40:51.945097
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('fire_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timers_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timers_status_fire_at'), ['status', 'fire_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_timers_task_id'), ['task_id'], unique=False)

    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detail', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('internal', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=32), nullable=False, server_default='event'))
        batch_op.add_column(sa.Column('recipient', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tokens', sa.Text(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('variables', sa.Text(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('first_decision_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('scope_attribute', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('scope_value', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('origin', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('waits_for', sa.String(length=36), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('waits_for')
        batch_op.drop_column('origin')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('scope_value')
        batch_op.drop_column('scope_attribute')
        batch_op.drop_column('due_at')

    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.drop_column('first_decision_at')
        batch_op.drop_column('variables')
        batch_op.drop_column('tokens')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status_next_attempt_at'))
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('recipient')
        batch_op.drop_column('channel')

    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.drop_column('internal')
        batch_op.drop_column('detail')

    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timers_task_id'))
        batch_op.drop_index(batch_op.f('ix_timers_status_fire_at'))
        batch_op.drop_index(batch_op.f('ix_timers_instance_id'))

    op.drop_table('timers')
