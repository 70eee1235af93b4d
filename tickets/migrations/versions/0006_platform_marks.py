"""marks the ticket platform keeps once: when it first opened drafts from calls

The sweep that opens drafts for answered calls the live hand-off missed looks back from this
mark, never before it: calls from before the platform existed are history, not work, and the
mark survives restarts (a process start time would not).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticket_marks")
