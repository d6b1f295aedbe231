"""Keep the queue's order in a narrow table of its own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

``/shuffle`` rewrites every entry's sort key. In ``queue_entries`` each key sat in a wide row
(encoded track, title, author, uri), so SQLite rewrote ~5 MB for 10,000 entries; in
``queue_order`` (entry id, guild id, key) the same statement and its commit take a fraction of
that. The entry rows keep an index on their guild for the deletes of a whole queue.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_order",
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("queue_entries.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO queue_order (entry_id, guild_id, sort_key)"
        " SELECT id, guild_id, sort_key FROM queue_entries"
    )
    op.create_index("ix_queue_order_guild_sort", "queue_order", ["guild_id", "sort_key"])
    with op.batch_alter_table("queue_entries") as batch:
        batch.drop_index("ix_queue_entries_guild_sort")
        batch.drop_column("sort_key")
        batch.create_index("ix_queue_entries_guild_id", ["guild_id"])


def downgrade() -> None:
    with op.batch_alter_table("queue_entries") as batch:
        batch.add_column(sa.Column("sort_key", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE queue_entries SET sort_key ="
        " (SELECT sort_key FROM queue_order WHERE queue_order.entry_id = queue_entries.id)"
    )
    # An entry without an order row (none should exist) goes to the back rather than failing.
    op.execute(
        "UPDATE queue_entries SET sort_key = 1024 * id + 1099511627776 WHERE sort_key IS NULL"
    )
    op.drop_index("ix_queue_order_guild_sort", table_name="queue_order")
    op.drop_table("queue_order")
    with op.batch_alter_table("queue_entries") as batch:
        batch.drop_index("ix_queue_entries_guild_id")
        batch.alter_column("sort_key", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_queue_entries_guild_sort", ["guild_id", "sort_key"])
