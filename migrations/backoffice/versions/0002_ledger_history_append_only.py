"""ledger history append-only, resident records never deleted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:40:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no roles to protect from; the services never update or delete these rows
    op.execute("""
        CREATE FUNCTION resident_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'resident_history is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("CREATE TRIGGER resident_history_no_update_delete BEFORE UPDATE OR DELETE ON resident_history "
               "FOR EACH ROW EXECUTE FUNCTION resident_history_append_only()")
    op.execute("""
        CREATE FUNCTION resident_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'resident records are never deleted: removal keeps them as 除票'
                USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("CREATE TRIGGER resident_no_delete BEFORE DELETE ON resident "
               "FOR EACH ROW EXECUTE FUNCTION resident_never_deleted()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS resident_no_delete ON resident")
    op.execute("DROP FUNCTION IF EXISTS resident_never_deleted()")
    op.execute("DROP TRIGGER IF EXISTS resident_history_no_update_delete ON resident_history")
    op.execute("DROP FUNCTION IF EXISTS resident_history_append_only()")
