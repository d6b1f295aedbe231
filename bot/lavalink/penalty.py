"""How busy a node is, as one number: new players go to the node with the lowest.

The weights follow the ones Lavalink client libraries converged on: every playing player
counts one; CPU load grows exponentially (a node at 100 % load is worth ~1300 players, so it
is avoided long before that); frames that missed their deadline (deficit) or were silence
while they should have been audio (nulled) show a node that already cannot keep up.
"""

from __future__ import annotations

from .models import Stats

__all__ = ["FRAMES_PER_MINUTE", "penalty"]

FRAMES_PER_MINUTE = 3_000
"""Discord audio frames (20 ms) one player sends per minute; frame stats cover one minute."""


def penalty(stats: Stats | None, placed_since_stats: int = 0) -> float:
    """The node's penalty; ``placed_since_stats`` counts players sent there since ``stats``.

    Stats arrive once a minute, so without that count a burst of new players would all land
    on the node that looked idle a minute ago.
    """
    if stats is None:
        return float(placed_since_stats)
    score = float(stats.playing_players + placed_since_stats)
    score += round(float(1.05 ** (100 * stats.cpu.system_load)) * 10 - 10)
    frames = stats.frame_stats
    if frames is not None:
        # Lavalink reports these as per-player averages over the last minute.
        score += round(float(1.03 ** (500 * frames.deficit / FRAMES_PER_MINUTE)) * 600 - 600)
        score += round(float(1.03 ** (500 * frames.nulled / FRAMES_PER_MINUTE)) * 300 - 300) * 2
    return score
