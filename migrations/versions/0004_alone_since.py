"""Remember when everyone left the bot's voice channel, and whether the bot paused for it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

The bot pauses when its listeners leave and leaves voice after the idle timeout; the moment they
left is stored so that a restart neither forgets the timer nor starts it again from zero.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.add_column(sa.Column("alone_since_ms", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("alone_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.drop_column("alone_paused")
        batch.drop_column("alone_since_ms")
