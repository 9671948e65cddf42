"""move-out movers: the duplicate move-out check asks an indexed table instead of reading every open case

Revision ID: 0015_intake_speed_movers
Revises: 0014_search_prefix_indexes
Create Date: 2026-12-06 02:45:00.000000
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0015_intake_speed_movers'
down_revision = '0014_search_prefix_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'move_out_mover',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['application_case.id'],
                                name=op.f('fk_move_out_mover_case_id_application_case')),
        sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_move_out_mover_resident_id_resident')),
        sa.PrimaryKeyConstraint('case_id', 'resident_id', name=op.f('pk_move_out_mover')),
    )
    with op.batch_alter_table('move_out_mover', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_move_out_mover_resident_id'), ['resident_id'], unique=False)
    # The movers of the move-out cases already received, from the JSON list intake kept on each case.
    cases = op.get_bind().execute(sa.text(
        "SELECT id, mover_resident_ids FROM application_case WHERE kind = 'move_out'")).all()
    rows = [{'case_id': case_id, 'resident_id': resident_id} for case_id, movers in cases
            for resident_id in sorted({i for i in json.loads(movers or '[]') if isinstance(i, int)})]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    with op.batch_alter_table('move_out_mover', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_move_out_mover_resident_id'))
    op.drop_table('move_out_mover')
