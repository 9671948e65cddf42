"""status reason codes: a reason of the city's own is kept as its code and shown in the reader's language

Revision ID: 0080_status_reason_codes
Revises: 0040_disclosure_answer
Create Date: 2026-12-06 07:30:00.000000

The back office's status message carries a code (bridge.reasons) for the reasons it gives itself;
the page words it from the catalogue. A clerk's typed reason stays in the text columns.
"""

import sqlalchemy as sa
from alembic import op

revision = '0080_status_reason_codes'
down_revision = '0040_disclosure_answer'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("application", sa.Column("status_reason_code", sa.String(length=40), nullable=True))
    op.add_column("application_event", sa.Column("reason_code", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("application_event", "reason_code")
    op.drop_column("application", "status_reason_code")
