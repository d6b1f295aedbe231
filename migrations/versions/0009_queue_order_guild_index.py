"""Index the queue order by guild only, not by guild and key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

``/shuffle`` gives each of up to 10,000 entries a new sort key. With the index on
(guild, key), SQLite also deleted and re-inserted one index entry per row, nearly half of the
statement's time (10,000 entries: ~24 ms against ~15 ms); an index on the guild alone is not
touched by a key change. What it costs: the largest key of a guild (appending, a loop-queue
wrap) reads that guild's order rows, ~1 ms at 10,000 entries; and loading every queue at start
sorts by key (~30 ms more for 210,000 entries). Nothing reads the order by key otherwise: the
bot keeps each queue in memory.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_queue_order_guild_sort", table_name="queue_order")
    op.create_index("ix_queue_order_guild_id", "queue_order", ["guild_id"])


def downgrade() -> None:
    op.drop_index("ix_queue_order_guild_id", table_name="queue_order")
    op.create_index("ix_queue_order_guild_sort", "queue_order", ["guild_id", "sort_key"])
