"""search prefix indexes: every shape of the two-of-four search is narrowed by an index

The folded search keys are matched by prefix (``LIKE 'key%'``). A plain btree serves that only under
the "C" collation, so on a database created with any other (``C.UTF-8``, ``ja_JP.UTF-8``) a kana prefix
with an address prefix read the whole ledger. The three search indexes are rebuilt with the byte-order
operator class ``text_pattern_ops`` (which still serves equality, as intake's exact match needs), and the
address index carries the birth date and both name keys, so whatever comes with an address is checked
inside the index even when the planner underestimates a 町字 (its histogram is coarse). SQLite ignores the
operator class. Building them takes a few seconds at 300,000 residents, during which the ledger is not
written.

Revision ID: 0014_search_prefix_indexes
Revises: 0013_intake_trust_accepted
Create Date: 2026-12-06 02:50:00.000000
"""

from alembic import op


revision = '0014_search_prefix_indexes'
down_revision = '0013_intake_trust_accepted'
branch_labels = None
depends_on = None

PATTERN = 'text_pattern_ops'


def upgrade() -> None:
    op.drop_index('ix_resident_name_search_birth', table_name='resident')
    op.drop_index('ix_resident_kana_search_birth', table_name='resident')
    op.drop_index('ix_resident_address_search', table_name='resident')
    op.create_index('ix_resident_name_search_prefix', 'resident', ['name_search', 'birth_date'],
                    postgresql_ops={'name_search': PATTERN})
    op.create_index('ix_resident_kana_search_prefix', 'resident', ['kana_search', 'birth_date'],
                    postgresql_ops={'kana_search': PATTERN})
    op.create_index('ix_resident_address_search_prefix', 'resident',
                    ['address_search', 'birth_date', 'name_search', 'kana_search'], postgresql_ops={'address_search': PATTERN, 'name_search': PATTERN, 'kana_search': PATTERN})


def downgrade() -> None:
    op.drop_index('ix_resident_address_search_prefix', table_name='resident')
    op.drop_index('ix_resident_kana_search_prefix', table_name='resident')
    op.drop_index('ix_resident_name_search_prefix', table_name='resident')
    op.create_index('ix_resident_address_search', 'resident', ['address_search'])
    op.create_index('ix_resident_kana_search_birth', 'resident', ['kana_search', 'birth_date'])
    op.create_index('ix_resident_name_search_birth', 'resident', ['name_search', 'birth_date'])
