"""outbox job id: the rq job that carries a row published in a batch

Revision ID: 0073_outbox_job_id
Revises: 0072_outbox_notify
Create Date: 2026-12-06 13:30:00.000000

The relay publishes rows waiting for their first publication on one of the system's own queues
several to a job (``deliver_batch``); that job's id is not the message id, so the row keeps it,
and a republication (after a timeout, a lost Redis or a failover) looks for a live copy under
both ids before it enqueues the message again. Null for a row published alone.
"""

from alembic import op

from bridge.outbox import outbox_job_id_downgrade, outbox_job_id_upgrade

revision = '0073_outbox_job_id'
down_revision = '0072_outbox_notify'
branch_labels = None
depends_on = None


def upgrade() -> None:
    outbox_job_id_upgrade(op)


def downgrade() -> None:
    outbox_job_id_downgrade(op)
