"""card continued use (継続利用): the destination takes the card record over at the 転入, 90 days to present it

Revision ID: 0071_card_continued_use
Revises: 0070_foreign_resident_items
Create Date: 2026-12-06 07:40:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0071_card_continued_use'
down_revision = '0070_foreign_resident_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('card_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transferred_from', sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column('continuation_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('continued_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('renewal_required_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('transferred_to', sa.String(length=6), nullable=True))
        batch_op.create_index(batch_op.f('ix_card_record_continuation_due'), ['continuation_due'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('card_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_record_continuation_due'))
        batch_op.drop_column('transferred_to')
        batch_op.drop_column('renewal_required_on')
        batch_op.drop_column('continued_on')
        batch_op.drop_column('continuation_due')
        batch_op.drop_column('transferred_from')
