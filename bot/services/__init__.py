"""Business rules: :class:`QueueService` owns every playback rule.

The service speaks in typed values (:mod:`.errors`, :mod:`.notices`, :mod:`.views`); the words
users read are rendered in :mod:`bot.extensions`.
"""

from __future__ import annotations

from . import errors, notices
from .errors import ServiceError
from .guild import FILTER_PRESETS
from .notices import Announcement
from .ports import DiscordView, Lavalink
from .query import QueryResolver
from .queue import MAX_VOLUME, QueueService
from .sessions import in_turn, own_sessions, session_keeper
from .suggest import Suggester, Suggestion
from .views import PlayerSettings, PlayerState, PlayOutcome, QueueView, ServiceStats, SkipOutcome

__all__ = [
    "FILTER_PRESETS",
    "MAX_VOLUME",
    "Announcement",
    "DiscordView",
    "Lavalink",
    "PlayOutcome",
    "PlayerSettings",
    "PlayerState",
    "QueryResolver",
    "QueueService",
    "QueueView",
    "ServiceError",
    "ServiceStats",
    "SkipOutcome",
    "Suggester",
    "Suggestion",
    "errors",
    "in_turn",
    "notices",
    "own_sessions",
    "session_keeper",
]
