"""userData: the JSON object Lavalink keeps with a track and echoes in every event about it.

A client tags its tracks there to tell apart the events of two equal tracks (the bot tags
each with the queue entry it plays). Lavalink-compatible servers may drop the object or hand
back other types, so reading a tag never raises: a value of another type is no tag at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["read_tag", "tagged"]


def tagged(key: str, value: int) -> dict[str, Any]:
    """The userData that tags a track with ``key = value``."""
    return {key: value}


def read_tag(user_data: Mapping[str, Any], key: str) -> int | None:
    """The integer tag ``key`` of ``user_data``; ``None`` when absent or not an integer."""
    value = user_data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
