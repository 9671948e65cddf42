"""the answer to a granted disclosure request (R20), shown in My applications

Revision ID: 0040_disclosure_answer
Revises: 0020_retention
Create Date: 2026-12-06 07:35:00.000000

The application kind column is a plain string (no database enum), so the three request kinds need
no change of their own.
"""

from alembic import op
import sqlalchemy as sa

revision = '0040_disclosure_answer'
down_revision = '0020_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_column('answer')
