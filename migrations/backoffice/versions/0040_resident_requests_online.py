"""resident requests filed on the portal: receipt number, the signature acted on once, the resident's reason

Revision ID: 0040_resident_requests_online
Revises: 0032_resident_requests
Create Date: 2026-12-06 07:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0040_resident_requests_online'
down_revision = '0032_resident_requests'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resident_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receipt_number', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('signature_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('statement', sa.Text(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_resident_request_receipt_number'), ['receipt_number'])
        batch_op.create_unique_constraint(batch_op.f('uq_resident_request_signature_sha256'), ['signature_sha256'])


def downgrade() -> None:
    with op.batch_alter_table('resident_request', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_resident_request_signature_sha256'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_resident_request_receipt_number'), type_='unique')
        batch_op.drop_column('statement')
        batch_op.drop_column('signature_sha256')
        batch_op.drop_column('receipt_number')
