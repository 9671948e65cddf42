"""counter visits

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 15:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counter_visit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.Integer(), nullable=False),
    sa.Column('checked_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('result', sa.Enum('verified', 'refused', name='visitresult', native_enum=False, length=20), nullable=False),
    sa.Column('reason', sa.String(length=50), nullable=True),
    sa.Column('cert_serial', sa.String(length=64), nullable=True),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['application_case.id'], name=op.f('fk_counter_visit_case_id_application_case')),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_counter_visit_resident_id_resident')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_counter_visit_staff_id_staff')),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminal.id'], name=op.f('fk_counter_visit_terminal_id_terminal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_counter_visit'))
    )
    with op.batch_alter_table('counter_visit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counter_visit_case_id'), ['case_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('counter_visit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_counter_visit_case_id'))

    op.drop_table('counter_visit')
