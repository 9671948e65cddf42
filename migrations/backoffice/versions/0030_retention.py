"""retention: the append-only triggers let the retention run delete what is past its legal floor, nothing else

Revision ID: 0030_retention
Revises: 0020_bridge_monitoring
Create Date: 2026-12-06 04:30:00.000000

DELETE is let through only in a transaction that set ``juki.retention`` (core/retention.py does),
and only for a 除票 removed more than 150 years ago (住民基本台帳法施行令第34条) with its history
rows, or an operation-log row older than 366 days. UPDATE and TRUNCATE stay refused.
"""

from alembic import op

from core.retention import AUDIT_LOG, AUDIT_LOG_DUE, JOSHU_DUE, refusing_function

revision = '0030_retention'
down_revision = '0020_bridge_monitoring'
branch_labels = None
depends_on = None

NEVER_DELETED = ("resident_never_deleted", "resident records are never deleted: removal keeps them as 除票 (%)")
HISTORY = ("resident_history_append_only", "resident_history is append-only: % refused")
ALLOW = {
    AUDIT_LOG: AUDIT_LOG_DUE,
    NEVER_DELETED: "OLD." + JOSHU_DUE.format(p="OLD."),
    HISTORY: "EXISTS (SELECT 1 FROM resident r WHERE r.id = OLD.resident_id AND r." + JOSHU_DUE.format(p="r.") + ")",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no triggers to relax
    for (name, message), allow in ALLOW.items():
        op.execute(refusing_function(name, message, allow))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, message in ALLOW:
        op.execute(refusing_function(name, message))
