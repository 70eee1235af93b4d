"""what a report needs: offered queue, path, priority, thresholds, served by, source

Rows from before this revision get the defaults (priority 0, service level 15 s, short
abandon 5 s, served by the engine, seen live), offered_queue = queue and path = [queue].

Short abandons stop being an outcome of their own: a hang-up before answer is "abandoned"
and the KPI module counts it as short when wait_seconds < short_abandon. So that no month
already reported changes, an old row whose outcome disagrees with the 5 s default gets a
threshold that keeps its old class: a short abandon that waited 6.3 s gets 7 s (the next
whole second), an abandon that waited 3 s gets 3 s. Downgrade restores the outcome from
that same rule, so upgrade then downgrade gives back every old outcome.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "call_records"
INDEX = "ix_call_records_offered_queue_arrived"
# Per dialect: a JSON text array holding the queue; the next whole second above the wait.
JSON_OF_QUEUE = {"postgresql": "json_build_array(queue)::text", "sqlite": "json_array(queue)"}
SECOND_ABOVE_WAIT = {"postgresql": "floor(wait_seconds) + 1", "sqlite": "CAST(wait_seconds AS INTEGER) + 1"}


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("offered_queue", sa.String(32), nullable=False, server_default=""))
    op.add_column(TABLE, sa.Column("path", sa.Text, nullable=False, server_default="[]"))
    op.add_column(TABLE, sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column(TABLE, sa.Column("service_level", sa.Float, nullable=False, server_default=sa.text("15")))
    op.add_column(TABLE, sa.Column("short_abandon", sa.Float, nullable=False, server_default=sa.text("5")))
    op.add_column(TABLE, sa.Column("served_by", sa.String(16), nullable=False, server_default="engine"))
    op.add_column(TABLE, sa.Column("source", sa.String(16), nullable=False, server_default="live"))

    dialect = op.get_bind().dialect.name
    json_of_queue = JSON_OF_QUEUE.get(dialect, "'[\"' || queue || '\"]'")  # queue names are [a-z0-9_]
    above = SECOND_ABOVE_WAIT.get(dialect, "wait_seconds + 1")
    op.execute(f"UPDATE {TABLE} SET offered_queue = queue, path = {json_of_queue}")
    op.execute(f"UPDATE {TABLE} SET short_abandon = {above} "
               "WHERE outcome = 'short_abandon' AND wait_seconds >= short_abandon")
    op.execute(f"UPDATE {TABLE} SET short_abandon = wait_seconds "
               "WHERE outcome = 'abandoned' AND wait_seconds < short_abandon")
    op.execute(f"UPDATE {TABLE} SET outcome = 'abandoned' WHERE outcome = 'short_abandon'")
    op.create_index(INDEX, TABLE, ["offered_queue", "arrived"])


def downgrade() -> None:
    op.execute(f"UPDATE {TABLE} SET outcome = 'short_abandon' "
               "WHERE outcome = 'abandoned' AND wait_seconds < short_abandon")
    op.drop_index(INDEX, table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:  # SQLite cannot drop columns in place everywhere
        for column in ("source", "served_by", "short_abandon", "service_level", "priority", "path", "offered_queue"):
            batch.drop_column(column)
