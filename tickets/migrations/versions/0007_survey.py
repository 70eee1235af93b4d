"""the satisfaction survey: on the call record (whether the caller reached it, and the rating)
and on the ticket's calls (copied from the record by the platform's sweep)

Records from before it were never surveyed: `surveyed` false, `rating` null.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("surveyed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
    with op.batch_alter_table("ticket_calls") as batch:
        batch.add_column(sa.Column("surveyed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ticket_calls") as batch:
        batch.drop_column("rating")
        batch.drop_column("surveyed")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("rating")
        batch.drop_column("surveyed")
