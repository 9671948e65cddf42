"""support measures (支援措置): a person protected, the household members covered, the period, two people

Revision ID: 0031_support_measures
Revises: 0030_retention
Create Date: 2026-12-06 04:40:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db

revision = '0031_support_measures'
down_revision = '0030_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'support_measure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=False),
        sa.Column('covered_ids', sa.Text(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('hide_from_household', sa.Boolean(), nullable=False),
        sa.Column('requested_by', sa.String(length=50), nullable=False),
        sa.Column('requested_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('approved_by', sa.String(length=50), nullable=True),
        sa.Column('approved_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('pending_ends_on', sa.Date(), nullable=True),
        sa.Column('pending_by', sa.String(length=50), nullable=True),
        sa.Column('history', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_support_measure_resident_id_resident')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_support_measure')),
    )
    with op.batch_alter_table('support_measure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_measure_resident_id'), ['resident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('support_measure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_measure_resident_id'))
    op.drop_table('support_measure')
