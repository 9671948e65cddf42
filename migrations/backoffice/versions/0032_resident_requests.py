"""resident requests: disclosure, correction and suspension of use (開示・訂正・利用停止請求), with their deadline

Revision ID: 0032_resident_requests
Revises: 0031_support_measures
Create Date: 2026-12-06 04:50:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db

revision = '0032_resident_requests'
down_revision = '0031_support_measures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'resident_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=False),
        sa.Column('item', sa.String(length=50), nullable=True),
        sa.Column('correct_value', sa.Text(), nullable=True),
        sa.Column('received_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('received_by', sa.String(length=50), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('extension_reason', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('confirmed_by', sa.String(length=50), nullable=True),
        sa.Column('decided_by', sa.String(length=50), nullable=True),
        sa.Column('decided_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_resident_request_resident_id_resident')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_resident_request')),
    )
    with op.batch_alter_table('resident_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_request_due_on'), ['due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_resident_request_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_resident_request_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('resident_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_request_status'))
        batch_op.drop_index(batch_op.f('ix_resident_request_resident_id'))
        batch_op.drop_index(batch_op.f('ix_resident_request_due_on'))
    op.drop_table('resident_request')
