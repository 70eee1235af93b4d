"""call records

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.String(128), nullable=False),
        sa.Column("caller_restricted", sa.Boolean, nullable=False),
        sa.Column("arrived", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("wait_seconds", sa.Float, nullable=False),
        sa.Column("talk_seconds", sa.Float, nullable=False),
        sa.Column("recording", sa.String(512), nullable=True),
    )
    op.create_index("ix_call_records_arrived", "call_records", ["arrived"])


def downgrade() -> None:
    op.drop_index("ix_call_records_arrived", table_name="call_records")
    op.drop_table("call_records")
