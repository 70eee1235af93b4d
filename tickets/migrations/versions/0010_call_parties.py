"""who was on the call (三方通话, transfers): the call record's conference history

A JSON array of [at, kind, party, detail]: at is the wall clock (epoch seconds), kind
dialing | joined | failed | left, party "caller", "agent:<id>" or "number:<digits>". Records
from before it had nobody else on the call: "[]".

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("parties", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("parties")
