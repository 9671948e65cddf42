"""retention: the operation log's append-only trigger lets the retention run delete rows older than 366 days

Revision ID: 0020_retention
Revises: 0010_bridge_monitoring
Create Date: 2026-12-06 04:30:00.000000

DELETE is let through only in a transaction that set ``juki.retention`` (core/retention.py does);
UPDATE and TRUNCATE stay refused.
"""

from alembic import op

from core.retention import AUDIT_LOG, AUDIT_LOG_DUE, refusing_function

revision = '0020_retention'
down_revision = '0010_bridge_monitoring'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(refusing_function(*AUDIT_LOG, AUDIT_LOG_DUE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(refusing_function(*AUDIT_LOG))
