"""outbox notify: a committed outbox row wakes the relays at once (PostgreSQL LISTEN/NOTIFY)

Revision ID: 0081_outbox_notify
Revises: 0080_status_reason_codes
Create Date: 2026-12-06 11:00:00.000000

A statement inserting outbox rows notifies the channel ``bridge_outbox`` (no payload: the relay reads
the rows); PostgreSQL delivers it at commit, and not at all on rollback. The relays listen on it and
otherwise poll every BRIDGE_RELAY_INTERVAL_SECONDS as before. Nothing on SQLite.
"""

from alembic import op

from bridge.notify import outbox_notify_downgrade, outbox_notify_upgrade

revision = '0081_outbox_notify'
down_revision = '0080_status_reason_codes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    outbox_notify_upgrade(op)


def downgrade() -> None:
    outbox_notify_downgrade(op)
