"""Persistence: the only package that touches the database. Use :class:`Repository`."""

from __future__ import annotations

from .diagnose import describe_database
from .edits import SORT_STEP, move_keys
from .errors import DatabaseOpenError, StorageError
from .history import HISTORY_LIMIT
from .inserts import insert_keys
from .records import (
    ControllerMessage,
    GuildSettings,
    LoopMode,
    NewEntry,
    PlayedTrack,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    StoredGuild,
    StoredSession,
)
from .repository import Repository

__all__ = [
    "HISTORY_LIMIT",
    "SORT_STEP",
    "ControllerMessage",
    "DatabaseOpenError",
    "GuildSettings",
    "LoopMode",
    "NewEntry",
    "PlayedTrack",
    "PlayerRecord",
    "PlayerStatus",
    "QueueEntry",
    "Repository",
    "StorageError",
    "StoredGuild",
    "StoredSession",
    "describe_database",
    "insert_keys",
    "move_keys",
]
