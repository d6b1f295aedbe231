"""Sessions, guild players and queue entries.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lavalink_sessions",
        sa.Column("node", sa.String(100), primary_key=True),
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "guild_players",
        sa.Column("guild_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("node", sa.String(100), nullable=True),
        sa.Column("voice_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("text_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("current_entry_id", sa.Integer(), nullable=True),
        sa.Column("position_ms", sa.BigInteger(), nullable=False),
        sa.Column("position_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
    )
    op.create_table(
        "queue_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "guild_id",
            sa.BigInteger(),
            sa.ForeignKey("guild_players.guild_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("encoded", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("length_ms", sa.BigInteger(), nullable=False),
        sa.Column("is_stream", sa.Boolean(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("added_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_queue_entries_guild_sort", "queue_entries", ["guild_id", "sort_key"])


def downgrade() -> None:
    op.drop_index("ix_queue_entries_guild_sort", table_name="queue_entries")
    op.drop_table("queue_entries")
    op.drop_table("guild_players")
    op.drop_table("lavalink_sessions")
