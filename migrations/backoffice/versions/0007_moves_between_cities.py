"""moves between cities: the 転出証明書情報 received from the former municipality

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 15:06:23.274057
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('moveout_certificate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('origin', sa.String(length=50), nullable=False),
    sa.Column('move_id', sa.String(length=36), nullable=True),
    sa.Column('juminhyo_code', sa.String(length=11), nullable=False),
    sa.Column('person_index', sa.String(length=64), nullable=False),
    sa.Column('items_encrypted', sa.LargeBinary(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.Column('received_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('matched_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['application_case.id'], name=op.f('fk_moveout_certificate_case_id_application_case')),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_moveout_certificate_resident_id_resident')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moveout_certificate')),
    sa.UniqueConstraint('message_id', name=op.f('uq_moveout_certificate_message_id'))
    )
    with op.batch_alter_table('moveout_certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moveout_certificate_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_moveout_certificate_juminhyo_code'), ['juminhyo_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_moveout_certificate_move_id'), ['move_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_moveout_certificate_person_index'), ['person_index'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('moveout_certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moveout_certificate_person_index'))
        batch_op.drop_index(batch_op.f('ix_moveout_certificate_move_id'))
        batch_op.drop_index(batch_op.f('ix_moveout_certificate_juminhyo_code'))
        batch_op.drop_index(batch_op.f('ix_moveout_certificate_case_id'))

    op.drop_table('moveout_certificate')
