"""The benchmark's data, built the same way in the node's process and in the harness.

Every figure in ``bench/`` runs on this data: tracks as a real Lavalink 4.2 node sends them
(:func:`peers.catalogue.youtube_track`, ``encoded`` strings from lavaplayer's format via
``peers/tracks.py``, full Track
objects per protocol reference §3.1) and a WebSocket stream of ``playerUpdate`` and
``event`` frames as §1.4 and §1.6 describe them. It is deterministic, so two processes that
build it agree byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Final

from peers.catalogue import youtube_track
from peers.tracks import TrackInfo, encode_track, track_json, with_position

__all__ = [
    "BOT_USER_ID",
    "CHANNEL_BASE",
    "GUILD_BASE",
    "PASSWORD",
    "Workload",
    "build",
]

PASSWORD: Final = "bench-password"
BOT_USER_ID: Final = 987_654_321_012_345_678
GUILD_BASE: Final = 817_327_181_659_111_000
CHANNEL_BASE: Final = 917_327_181_659_222_000
_UPDATES_PER_TRACK: Final = 18
"""A 90-second track at Lavalink's default 5 s ``playerUpdateInterval``."""
_START_TIME: Final = 1_764_000_000_000


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _live_track(info: TrackInfo, position: int) -> dict[str, Any]:
    """A Track object as a node sends it mid-play: ``encoded`` and ``info`` carry the position."""
    encoded = with_position(encode_track(info), position)
    payload = track_json(dataclasses.replace(info, position=position), encoded=encoded)
    payload["userData"] = {"requester": "123456789012345678"}
    return payload


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """The frames to send, and what each guild is playing when they start."""

    frames: tuple[bytes, ...]
    guild_ids: tuple[int, ...]
    first_tracks: dict[int, dict[str, Any]]
    """Per guild, the Track object of the track playing when the stream starts."""
    player_updates: int
    track_starts: int
    track_ends: int


def build(frames: int = 100_000, guilds: int = 100) -> Workload:
    """``frames`` frames over ``guilds`` guilds, round-robin, each guild playing tracks in turn.

    Per guild the stream is what a node sends: a track's ``playerUpdate`` every 5 s, then
    ``TrackEndEvent`` (``finished``) and the next track's ``TrackStartEvent`` and an immediate
    ``playerUpdate``. The first track is already playing when the stream begins (the harness
    plays it over REST first), so the stream opens with updates.
    """
    guild_ids = tuple(GUILD_BASE + i for i in range(guilds))
    # Per-guild cursor: (track number, updates sent for it).
    cursor = [[0, 0] for _ in range(guilds)]
    out: list[bytes] = []
    counts = {"playerUpdate": 0, "TrackStartEvent": 0, "TrackEndEvent": 0}
    first_tracks = {gid: _live_track(youtube_track(i, 0), 0) for i, gid in enumerate(guild_ids)}
    i = 0
    while len(out) < frames:
        index = i % guilds
        i += 1
        gid = guild_ids[index]
        number, sent = cursor[index]
        info = youtube_track(index, number)
        now = _START_TIME + (i // guilds) * 5_000
        if sent < _UPDATES_PER_TRACK:
            position = sent * 5_000
            cursor[index][1] += 1
            out.append(
                _dumps(
                    {
                        "op": "playerUpdate",
                        "guildId": str(gid),
                        "state": {
                            "time": now,
                            "position": position,
                            "connected": True,
                            "ping": 23 + index % 40,
                        },
                    }
                )
            )
            counts["playerUpdate"] += 1
        elif sent == _UPDATES_PER_TRACK:
            cursor[index][1] += 1
            out.append(
                _dumps(
                    {
                        "op": "event",
                        "type": "TrackEndEvent",
                        "guildId": str(gid),
                        "track": _live_track(info, info.length),
                        "reason": "finished",
                    }
                )
            )
            counts["TrackEndEvent"] += 1
        else:
            cursor[index] = [number + 1, 0]
            out.append(
                _dumps(
                    {
                        "op": "event",
                        "type": "TrackStartEvent",
                        "guildId": str(gid),
                        "track": _live_track(youtube_track(index, number + 1), 0),
                    }
                )
            )
            counts["TrackStartEvent"] += 1
    return Workload(
        frames=tuple(out),
        guild_ids=guild_ids,
        first_tracks=first_tracks,
        player_updates=counts["playerUpdate"],
        track_starts=counts["TrackStartEvent"],
        track_ends=counts["TrackEndEvent"],
    )
