"""portal tokens: the account's API token version, raised at API sign-out to revoke its bearer tokens

Revision ID: 0007_portal_tokens_token_version
Revises: 0006
Create Date: 2026-12-06 01:30:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_portal_tokens_token_version'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('portal_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('portal_account', schema=None) as batch_op:
        batch_op.drop_column('token_version')
