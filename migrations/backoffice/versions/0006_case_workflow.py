"""case workflow: claim, two-person approval (R7), history and notes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:20:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

STATUSES = ('received', 'in_review', 'returned', 'confirmed', 'approved', 'rejected', 'withdrawn', 'completed')


def upgrade() -> None:
    with op.batch_alter_table('application_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirmed_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('approved_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_index(batch_op.f('ix_application_case_claimed_by'), ['claimed_by'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_application_case_claimed_by_staff'), 'staff', ['claimed_by'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_application_case_confirmed_by_staff'), 'staff',
                                    ['confirmed_by'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_application_case_approved_by_staff'), 'staff',
                                    ['approved_by'], ['id'])
        # R7: whoever confirmed a case can never approve it, whatever code path writes the row.
        batch_op.create_check_constraint(
            'approver_is_not_confirmer',
            'approved_by IS NULL OR (confirmed_by IS NOT NULL AND approved_by <> confirmed_by)')

    op.create_table('case_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('from_status', sa.Enum(*STATUSES, name='casestatus', native_enum=False, length=20), nullable=True),
    sa.Column('to_status', sa.Enum(*STATUSES, name='casestatus', native_enum=False, length=20), nullable=True),
    sa.Column('actor', sa.String(length=50), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['staff.id'], name=op.f('fk_case_event_actor_id_staff')),
    sa.ForeignKeyConstraint(['case_id'], ['application_case.id'], name=op.f('fk_case_event_case_id_application_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_event'))
    )
    with op.batch_alter_table('case_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_event_case_id'), ['case_id'], unique=False)

    op.create_table('case_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['staff.id'], name=op.f('fk_case_note_author_id_staff')),
    sa.ForeignKeyConstraint(['case_id'], ['application_case.id'], name=op.f('fk_case_note_case_id_application_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_note'))
    )
    with op.batch_alter_table('case_note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_note_case_id'), ['case_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # The history of a case is evidence: nobody rewrites or deletes it.
        op.execute("""
            CREATE FUNCTION case_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'case_event is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("CREATE TRIGGER case_event_no_update_delete BEFORE UPDATE OR DELETE ON case_event "
                   "FOR EACH ROW EXECUTE FUNCTION case_event_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_event_no_update_delete ON case_event")
        op.execute("DROP FUNCTION IF EXISTS case_event_append_only()")
    with op.batch_alter_table('case_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_note_case_id'))
    op.drop_table('case_note')
    with op.batch_alter_table('case_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_event_case_id'))
    op.drop_table('case_event')
    with op.batch_alter_table('application_case', schema=None) as batch_op:
        batch_op.drop_constraint('approver_is_not_confirmer', type_='check')
        batch_op.drop_constraint(batch_op.f('fk_application_case_approved_by_staff'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_application_case_confirmed_by_staff'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_application_case_claimed_by_staff'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_application_case_claimed_by'))
        batch_op.drop_column('version')
        batch_op.drop_column('approved_at')
        batch_op.drop_column('approved_by')
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('confirmed_by')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
