"""bridge alerts: what the relay tells the operator (Redis lost its data)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 15:40:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bridge_alert',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bridge_alert'))
    )
    with op.batch_alter_table('bridge_alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bridge_alert_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bridge_alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bridge_alert_created_at'))

    op.drop_table('bridge_alert')
