"""bridge monitoring: alerts watched (one open row per condition, seen, counted, mailed, acknowledged, resolved); paused intake and the applications it holds

Revision ID: 0020_bridge_monitoring
Revises: 0015_intake_speed_movers
Create Date: 2026-12-06 04:20:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0020_bridge_monitoring'
down_revision = '0015_intake_speed_movers'
branch_labels = None
depends_on = None

OPEN = sa.text("resolved_at IS NULL AND subject IS NOT NULL")


def upgrade() -> None:
    op.create_table('intake_pause',
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('paused_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paused_by', sa.String(length=50), nullable=False),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_intake_pause'))
    )
    op.create_table('held_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('queue', sa.String(length=80), nullable=False),
    sa.Column('envelope', sa.Text(), nullable=False),
    sa.Column('held_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_message')),
    sa.UniqueConstraint('message_id', name=op.f('uq_held_message_message_id'))
    )
    with op.batch_alter_table('held_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_message_kind'), ['kind'], unique=False)
    with op.batch_alter_table('bridge_alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('count', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('mailed_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=80), nullable=True))
        batch_op.create_index(batch_op.f('ix_bridge_alert_resolved_at'), ['resolved_at'], unique=False)
        batch_op.create_index('uq_bridge_alert_open', ['kind', 'subject'], unique=True,
                              postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    with op.batch_alter_table('held_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_message_kind'))
    op.drop_table('held_message')
    op.drop_table('intake_pause')
    with op.batch_alter_table('bridge_alert', schema=None) as batch_op:
        batch_op.drop_index('uq_bridge_alert_open')
        batch_op.drop_index(batch_op.f('ix_bridge_alert_resolved_at'))
        for column in ('resolved_by', 'resolved_at', 'acknowledged_by', 'acknowledged_at', 'mailed_at', 'count',
                       'last_seen_at', 'subject'):
            batch_op.drop_column(column)
