"""When each bot process was last alive.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

Positions are no longer stored with every Lavalink report: a playing track's position is
derived from its anchor (position, moment, speed). After a restart whose Lavalink session was
gone, the old players had played on from the anchor until the bot stopped plus the node's
resume timeout; this row says when the bot stopped. One row per process, rewritten every
second in one statement.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "liveness",
        sa.Column("process_key", sa.String(100), primary_key=True),
        sa.Column("alive_at_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("liveness")
