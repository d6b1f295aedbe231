"""Business rules. :class:`QueueService` owns every playback rule."""

from __future__ import annotations

from .errors import UserError
from .query import QueryResolver
from .queue import DiscordView, PlayOutcome, QueueService, QueueView, SkipOutcome

__all__ = [
    "DiscordView",
    "PlayOutcome",
    "QueryResolver",
    "QueueService",
    "QueueView",
    "SkipOutcome",
    "UserError",
]
