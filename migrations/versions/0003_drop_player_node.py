"""Drop guild_players.node: written as the first configured node and never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The node that holds a guild's player is the Lavalink client's to know (it moves on failover);
``/doctor`` asks the client. Batch mode, because SQLite cannot drop a column in place; on
PostgreSQL the batch is a plain ALTER TABLE statement. A downgrade brings the column back
empty, which is what the old code wrote for a player that never played.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.drop_column("node")


def downgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.add_column(sa.Column("node", sa.String(100), nullable=True))
