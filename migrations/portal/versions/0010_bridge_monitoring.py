"""bridge monitoring: alerts watched (one open row per condition, seen, counted, mailed, acknowledged, resolved); the municipalities' paused intake

Revision ID: 0010_bridge_monitoring
Revises: 0007_portal_tokens_token_version
Create Date: 2026-12-06 04:20:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0010_bridge_monitoring'
down_revision = '0007_portal_tokens_token_version'
branch_labels = None
depends_on = None

OPEN = sa.text("resolved_at IS NULL AND subject IS NOT NULL")


def upgrade() -> None:
    op.create_table('intake_notice',
    sa.Column('municipality_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('changed_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('municipality_code', 'kind', name=op.f('pk_intake_notice'))
    )
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
    op.drop_table('intake_notice')
    with op.batch_alter_table('bridge_alert', schema=None) as batch_op:
        batch_op.drop_index('uq_bridge_alert_open')
        batch_op.drop_index(batch_op.f('ix_bridge_alert_resolved_at'))
        for column in ('resolved_by', 'resolved_at', 'acknowledged_by', 'acknowledged_at', 'mailed_at', 'count',
                       'last_seen_at', 'subject'):
            batch_op.drop_column(column)
