"""foreign-resident items of 第30条の45 and the 別添1 items the ledger lacked

Revision ID: 0070_foreign_resident_items
Revises: 0050_support_measure_changes
Create Date: 2026-12-06 07:20:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0070_foreign_resident_items'
down_revision = '0050_support_measure_changes'
branch_labels = None
depends_on = None

COLUMNS = (
    ('removal_notified_on', sa.Date()),
    ('foreign_resident_category', sa.String(length=20)),
    ('residence_card_number_encrypted', sa.LargeBinary()),
    ('became_foreign_resident_on', sa.Date()),
    ('became_foreign_resident_reason', sa.String(length=20)),
    ('became_foreign_resident_notified_on', sa.Date()),
    ('residence_period_years', sa.Integer()),
    ('residence_period_months', sa.Integer()),
    ('residence_period_days', sa.Integer()),
    ('special_permanent_certificate_issued_on', sa.Date()),
    ('alphabet_name_kana', sa.String(length=200)),
    ('kanji_name', sa.String(length=100)),
    ('kanji_name_kana', sa.String(length=200)),
    ('electoral_roll', sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table('resident', schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('resident', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
