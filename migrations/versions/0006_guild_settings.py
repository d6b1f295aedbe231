"""Keep each server's /settings.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28

One row per guild whose managers changed anything; a guild without a row has the defaults
(the bot's behaviour before this revision). The row does not depend on ``guild_players``: a
server can choose its settings before anything is played there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("dj_role_id", sa.BigInteger(), nullable=True),
        sa.Column("default_volume", sa.Integer(), nullable=False, server_default="100"),
        sa.Column("announce", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("announce_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("always_on", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("idle_timeout_s", sa.Integer(), nullable=True),
        sa.Column("max_queue_length", sa.Integer(), nullable=False, server_default="10000"),
        sa.Column("max_track_ms", sa.BigInteger(), nullable=True),
        sa.Column("user_share_percent", sa.Integer(), nullable=True),
        sa.Column("vote_skip_percent", sa.Integer(), nullable=False, server_default="50"),
        sa.Column("fair_queue", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("guild_settings")
