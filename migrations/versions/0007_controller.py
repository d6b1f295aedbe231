"""Remember where each guild's now-playing controller message is.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-28

The controller (an embed with buttons) is edited while the music plays and deleted when it
ends; its message is stored so that a restarted bot edits and deletes the same message rather
than leaving it behind, and knows a press on it for one of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_messages",
        sa.Column(
            "guild_id",
            sa.BigInteger(),
            sa.ForeignKey("guild_players.guild_id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("controller_messages")
