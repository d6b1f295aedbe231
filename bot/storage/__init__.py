"""Persistence: the only package that touches the database. Use :class:`Repository`."""

from __future__ import annotations

from .diagnose import describe_database
from .edits import move_keys
from .errors import DatabaseOpenError, StorageError
from .records import (
    ControllerMessage,
    GuildSettings,
    LoopMode,
    NewEntry,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    StoredGuild,
)
from .repository import Repository

__all__ = [
    "ControllerMessage",
    "DatabaseOpenError",
    "GuildSettings",
    "LoopMode",
    "NewEntry",
    "PlayerRecord",
    "PlayerStatus",
    "QueueEntry",
    "Repository",
    "StorageError",
    "StoredGuild",
    "describe_database",
    "move_keys",
]
