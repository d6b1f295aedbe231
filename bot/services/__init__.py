"""Business rules. :class:`QueueService` owns every playback rule."""

from __future__ import annotations

from .errors import UserError
from .query import QueryResolver
from .queue import (
    FILTER_PRESETS,
    MAX_VOLUME,
    DiscordView,
    PlayerSettings,
    PlayerState,
    PlayOutcome,
    QueueService,
    QueueView,
    ServiceStats,
    SkipOutcome,
)

__all__ = [
    "FILTER_PRESETS",
    "MAX_VOLUME",
    "DiscordView",
    "PlayOutcome",
    "PlayerSettings",
    "PlayerState",
    "QueryResolver",
    "QueueService",
    "QueueView",
    "ServiceStats",
    "SkipOutcome",
    "UserError",
]
