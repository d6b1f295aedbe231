"""SQLAlchemy tables. Only :mod:`.repository` uses them; the schema is owned by Alembic.

``queue_entries`` holds every track of a guild's queue, the playing one included; the guild's
``current_entry_id`` says which one plays. Order is ``sort_key``, kept apart in the narrow
``queue_order`` (one row per entry): appending takes the largest key plus a step, so inserting
or moving one entry later can pick a key in a gap without renumbering the rest, and a shuffle
rewrites only small rows (10,000 wide entry rows took SQLite ~3x as long to rewrite).
``play_history`` holds the last tracks that played in a guild, newest by ``id``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ControllerRow",
    "GuildPlayerRow",
    "GuildSettingsRow",
    "LavalinkSessionRow",
    "PlayHistoryRow",
    "QueueEntryRow",
    "QueueOrderRow",
]


class Base(DeclarativeBase):
    pass


class LavalinkSessionRow(Base):
    __tablename__ = "lavalink_sessions"

    node: Mapped[str] = mapped_column(String(100), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(100))
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class GuildPlayerRow(Base):
    __tablename__ = "guild_players"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    voice_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    text_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    # No foreign key: the entry and this pointer change in one transaction, and a cycle of
    # foreign keys would make SQLite migrations painful.
    current_entry_id: Mapped[int | None] = mapped_column(Integer)
    position_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    position_at_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    volume: Mapped[int] = mapped_column(Integer, default=100)
    state: Mapped[str] = mapped_column(String(20), default="idle")
    loop_mode: Mapped[str] = mapped_column(String(10), default="off", server_default="off")
    # JSON of the Lavalink filter set; NULL means no filters.
    filters: Mapped[str | None] = mapped_column(Text)
    alone_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    alone_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa.false())


class QueueEntryRow(Base):
    __tablename__ = "queue_entries"
    __table_args__ = (Index("ix_queue_entries_guild_id", "guild_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("guild_players.guild_id", ondelete="CASCADE")
    )
    encoded: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    length_ms: Mapped[int] = mapped_column(BigInteger)
    is_stream: Mapped[bool] = mapped_column(Boolean, default=False)
    uri: Mapped[str | None] = mapped_column(Text)
    requester_id: Mapped[int] = mapped_column(BigInteger)
    added_at_ms: Mapped[int] = mapped_column(BigInteger)


class QueueOrderRow(Base):
    """Each entry's sort key, apart from its wide row so that reordering rewrites little.
    Indexed by guild only: a new key then rewrites the row and no index (revision 0009)."""

    __tablename__ = "queue_order"
    __table_args__ = (Index("ix_queue_order_guild_id", "guild_id"),)

    entry_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey("queue_entries.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    guild_id: Mapped[int] = mapped_column(BigInteger)
    sort_key: Mapped[int] = mapped_column(BigInteger)


class PlayHistoryRow(Base):
    __tablename__ = "play_history"
    __table_args__ = (Index("ix_play_history_guild_id", "guild_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("guild_players.guild_id", ondelete="CASCADE")
    )
    encoded: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    length_ms: Mapped[int] = mapped_column(BigInteger)
    is_stream: Mapped[bool] = mapped_column(Boolean, default=False)
    uri: Mapped[str | None] = mapped_column(Text)
    requester_id: Mapped[int] = mapped_column(BigInteger)
    played_at_ms: Mapped[int] = mapped_column(BigInteger)


class GuildSettingsRow(Base):
    """A server's ``/settings``; one row per guild that changed anything, none = the defaults.

    Not tied to ``guild_players``: a server may choose settings before anything is played.
    Column names are :class:`~.records.GuildSettings`' field names.
    """

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    dj_role_id: Mapped[int | None] = mapped_column(BigInteger)
    default_volume: Mapped[int] = mapped_column(Integer, default=100)
    announce: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    always_on: Mapped[bool] = mapped_column(Boolean, default=False)
    idle_timeout_s: Mapped[int | None] = mapped_column(Integer)
    max_queue_length: Mapped[int] = mapped_column(Integer, default=10_000)
    max_track_ms: Mapped[int | None] = mapped_column(BigInteger)
    user_share_percent: Mapped[int | None] = mapped_column(Integer)
    vote_skip_percent: Mapped[int] = mapped_column(Integer, default=50)
    fair_queue: Mapped[bool] = mapped_column(Boolean, default=False)


class ControllerRow(Base):
    """The message holding a guild's now-playing controller (one per guild at most); deleted
    with the guild's player row."""

    __tablename__ = "controller_messages"

    guild_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("guild_players.guild_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    channel_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)


class LivenessRow(Base):
    """When each bot process was last alive, rewritten every second while it runs: a
    restarted process learns from it when the previous run stopped."""

    __tablename__ = "liveness"

    process_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    alive_at_ms: Mapped[int] = mapped_column(BigInteger)
