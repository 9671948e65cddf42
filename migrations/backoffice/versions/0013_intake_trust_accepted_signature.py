"""accepted signatures: a resident's signed application or withdrawal is acted on once per part

Revision ID: 0013_intake_trust_accepted
Revises: 0011
Create Date: 2026-12-06 01:40:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0013_intake_trust_accepted'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'accepted_signature',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('signature_sha256', sa.String(length=64), nullable=False),
        sa.Column('part', sa.String(length=30), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.String(length=36), nullable=False),
        sa.Column('signed_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('accepted_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['application_case.id'],
                                name=op.f('fk_accepted_signature_case_id_application_case')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_accepted_signature')),
        sa.UniqueConstraint('signature_sha256', 'part', name='uq_accepted_signature_part'),
    )
    with op.batch_alter_table('accepted_signature', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accepted_signature_case_id'), ['case_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accepted_signature', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accepted_signature_case_id'))
    op.drop_table('accepted_signature')
