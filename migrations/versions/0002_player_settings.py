"""Player settings: loop mode and audio filters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Batch mode, because SQLite can only add a NOT NULL column with a server default and cannot
drop columns in place; on PostgreSQL the batch is plain ALTER TABLE statements.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.add_column(
            sa.Column("loop_mode", sa.String(10), nullable=False, server_default="off")
        )
        batch.add_column(sa.Column("filters", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.drop_column("filters")
        batch.drop_column("loop_mode")
