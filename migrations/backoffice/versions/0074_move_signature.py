"""moveout certificate move signature: the 転出証明書情報 of an online move names the signature it came from

Revision ID: 0074_move_signature
Revises: 0073_outbox_job_id
Create Date: 2026-12-06 19:45:00.000000

A compromised portal sees every move id, so a 転入予約 someone else signed could claim the movers'
move id. The origin now sends the SHA-256 of the signed move's signing input with each person's
転出証明書情報, and the destination gives it only to the 転入予約 carrying that very signature.
Null for a move filed without a move id, and for certificates received before.
"""

import sqlalchemy as sa
from alembic import op

revision = '0074_move_signature'
down_revision = '0073_outbox_job_id'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moveout_certificate") as batch:
        batch.add_column(sa.Column("move_signature", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moveout_certificate") as batch:
        batch.drop_column("move_signature")
