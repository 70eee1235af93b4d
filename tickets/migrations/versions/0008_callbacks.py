"""callback requests (回拨, virtual hold): booked from the IVR, kept until done, failed or cancelled

One row per request, keyed "cb-" + the booking call's Linkedid (booking the same call twice is
one request). The booking call itself is a call record with outcome `callback`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callback_requests",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("origin_call_id", sa.String(64), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("skills", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("arrived", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("agent_hangups", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=True),
        sa.Column("last_call_id", sa.String(80), nullable=True),
        sa.Column("recording", sa.String(512), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_callback_requests_due", "callback_requests", ["state", "next_attempt"])
    op.create_index("ix_callback_requests_created", "callback_requests", ["created"])


def downgrade() -> None:
    op.drop_index("ix_callback_requests_created", table_name="callback_requests")
    op.drop_index("ix_callback_requests_due", table_name="callback_requests")
    op.drop_table("callback_requests")
