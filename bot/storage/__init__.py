"""Persistence: the only package that touches the database. Use :class:`Repository`."""

from __future__ import annotations

from .records import LoopMode, NewEntry, PlayerRecord, PlayerStatus, QueueEntry, StoredGuild
from .repository import Repository, StorageError

__all__ = [
    "LoopMode",
    "NewEntry",
    "PlayerRecord",
    "PlayerStatus",
    "QueueEntry",
    "Repository",
    "StorageError",
    "StoredGuild",
]
