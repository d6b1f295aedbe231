"""Keep the tracks that played in each guild, for /history and /previous.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A row is written in the same transaction that moves the queue past a track, and the oldest
rows beyond the newest 25 are deleted there too; rows go with the guild's player row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "play_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "guild_id",
            sa.BigInteger(),
            sa.ForeignKey("guild_players.guild_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("encoded", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("length_ms", sa.BigInteger(), nullable=False),
        sa.Column("is_stream", sa.Boolean(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("played_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_play_history_guild_id", "play_history", ["guild_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_play_history_guild_id", table_name="play_history")
    op.drop_table("play_history")
