"""support measure changes: an extension's reason and a change of the household members covered, each waiting
for its second person

Revision ID: 0050_support_measure_changes
Revises: 0040_resident_requests_online
Create Date: 2026-12-06 07:20:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0050_support_measure_changes'
down_revision = '0040_resident_requests_online'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('support_measure', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_reason', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('pending_covered_ids', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('pending_covered_by', sa.String(length=50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('support_measure', schema=None) as batch_op:
        batch_op.drop_column('pending_covered_by')
        batch_op.drop_column('pending_covered_ids')
        batch_op.drop_column('pending_reason')
