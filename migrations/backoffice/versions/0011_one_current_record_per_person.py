"""one current record per person: a returning resident gets a new record beside the 除票

The 住民票コード and the My Number stay with a person for life and a 除票 is kept for ever, so the
two numbers are unique among current records only (partial unique indexes), with plain indexes
for finding every record of a code.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 16:40:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

CURRENT = sa.text("status = 'current'")


def upgrade() -> None:
    with op.batch_alter_table('resident', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_resident_juminhyo_code'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_resident_my_number_index'), type_='unique')
        batch_op.create_index(batch_op.f('ix_resident_juminhyo_code'), ['juminhyo_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_resident_my_number_index'), ['my_number_index'], unique=False)
        batch_op.create_index('uq_resident_juminhyo_code_current', ['juminhyo_code'], unique=True,
                              postgresql_where=CURRENT, sqlite_where=CURRENT)
        batch_op.create_index('uq_resident_my_number_index_current', ['my_number_index'], unique=True,
                              postgresql_where=CURRENT, sqlite_where=CURRENT)


def downgrade() -> None:
    # Fails, as it should, once a returning resident has a 除票 and a current record with the same numbers.
    with op.batch_alter_table('resident', schema=None) as batch_op:
        batch_op.drop_index('uq_resident_my_number_index_current')
        batch_op.drop_index('uq_resident_juminhyo_code_current')
        batch_op.drop_index(batch_op.f('ix_resident_my_number_index'))
        batch_op.drop_index(batch_op.f('ix_resident_juminhyo_code'))
        batch_op.create_unique_constraint(batch_op.f('uq_resident_my_number_index'), ['my_number_index'])
        batch_op.create_unique_constraint(batch_op.f('uq_resident_juminhyo_code'), ['juminhyo_code'])
