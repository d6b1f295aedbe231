"""Rows to records and back: the one place that knows both the tables and the records."""

from __future__ import annotations

import logging
from typing import Any, Final, cast

import sqlalchemy as sa

from .records import LoopMode, NewEntry, PlayedTrack, PlayerRecord, PlayerStatus, QueueEntry
from .tables import GuildPlayerRow, PlayHistoryRow, QueueEntryRow, QueueOrderRow

__all__ = [
    "ENTRY_COLUMNS",
    "UPDATE_PLAYER",
    "entry_from_columns",
    "new_entry_fields",
    "played_from_row",
    "player_columns",
    "player_from_row",
    "player_row",
    "player_update",
]

_log = logging.getLogger("bot.storage.repository")

_TRACK_FIELDS = NewEntry.__struct_fields__


def new_entry_fields(entry: NewEntry | QueueEntryRow | PlayHistoryRow) -> dict[str, Any]:
    """The track and requester fields every queued or played track has, by name (the rows
    name their columns as the records name their fields)."""
    return {name: getattr(entry, name) for name in _TRACK_FIELDS}


ENTRY_COLUMNS: Final = (
    QueueEntryRow.guild_id,
    QueueEntryRow.encoded,
    QueueEntryRow.title,
    QueueEntryRow.author,
    QueueEntryRow.length_ms,
    QueueEntryRow.is_stream,
    QueueEntryRow.uri,
    QueueEntryRow.requester_id,
    QueueEntryRow.id,
    QueueOrderRow.sort_key,
    QueueEntryRow.added_at_ms,
)
"""What loading an entry reads: its row's columns and its key (kept in ``queue_order``)."""


def entry_from_columns(row: sa.Row[*tuple[Any, ...]]) -> QueueEntry:
    """The record of one row of :data:`ENTRY_COLUMNS`. Spelled out rather than through
    :func:`new_entry_fields`: start-up builds one per stored entry, and keywords are a fifth
    faster than the dictionary."""
    return QueueEntry(
        encoded=row.encoded,
        title=row.title,
        author=row.author,
        length_ms=row.length_ms,
        is_stream=row.is_stream,
        uri=row.uri,
        requester_id=row.requester_id,
        id=row.id,
        sort_key=row.sort_key,
        added_at_ms=row.added_at_ms,
    )


def played_from_row(row: PlayHistoryRow) -> PlayedTrack:
    return PlayedTrack(**new_entry_fields(row), id=row.id, played_at_ms=row.played_at_ms)


def player_from_row(row: GuildPlayerRow) -> PlayerRecord:
    try:
        status = PlayerStatus(row.state)
    except ValueError:
        status = PlayerStatus.INTERRUPTED
    try:
        loop_mode = LoopMode(row.loop_mode)
    except ValueError:
        _log.warning(
            "guild %s: unknown stored loop mode %r; loop is off", row.guild_id, row.loop_mode
        )
        loop_mode = LoopMode.OFF
    return PlayerRecord(
        guild_id=row.guild_id,
        voice_channel_id=row.voice_channel_id,
        text_channel_id=row.text_channel_id,
        current_entry_id=row.current_entry_id,
        position_ms=row.position_ms,
        position_at_ms=row.position_at_ms,
        paused=row.paused,
        volume=row.volume,
        status=status,
        loop_mode=loop_mode,
        filters=row.filters,
        alone_since_ms=row.alone_since_ms,
        alone_paused=bool(row.alone_paused),
    )


def player_columns(player: PlayerRecord) -> dict[str, Any]:
    """``player`` as its row's column values, by column name."""
    return {
        "guild_id": player.guild_id,
        "voice_channel_id": player.voice_channel_id,
        "text_channel_id": player.text_channel_id,
        "current_entry_id": player.current_entry_id,
        "position_ms": player.position_ms,
        "position_at_ms": player.position_at_ms,
        "paused": player.paused,
        "volume": player.volume,
        "state": player.status.value,
        "loop_mode": player.loop_mode.value,
        "filters": player.filters,
        "alone_since_ms": player.alone_since_ms,
        "alone_paused": player.alone_paused,
    }


def player_row(player: PlayerRecord) -> GuildPlayerRow:
    return GuildPlayerRow(**player_columns(player))


_PLAYERS = cast(sa.Table, GuildPlayerRow.__table__)
UPDATE_PLAYER: Final = (
    sa.update(_PLAYERS)
    .where(_PLAYERS.c.guild_id == sa.bindparam("b_guild_id"))
    .values({c.name: sa.bindparam(c.name) for c in _PLAYERS.columns if c.name != "guild_id"})
)
"""Every column of one existing player row, by :func:`player_update`'s parameters. Built
once: a track change runs it, and the ORM's merge (a read, then a flush through the unit of
work) costs several times the statement itself."""


def player_update(player: PlayerRecord) -> dict[str, Any]:
    """:data:`UPDATE_PLAYER`'s parameters for ``player``."""
    columns = player_columns(player)
    columns["b_guild_id"] = columns.pop("guild_id")
    return columns
