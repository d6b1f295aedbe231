"""Python's garbage collector set up for a process that holds thousands of guilds for days.

A full collection walks every object the process holds, with the event loop stopped. What
start-up loads (every stored queue: 10^5-10^6 entries on a busy bot) lives as long as the
process, so :func:`settle` freezes it, out of the collector's sight. And the youngest
generation is collected less often than Python's default, so that what is in flight at each
collection (a request, a frame, a track change) has died by then instead of being promoted:
promoted objects pile up in the oldest generation until they set off a full collection.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "release", "settle"]

YOUNG_THRESHOLD: Final = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700).
At 2,500 guilds the default collects ~7 times a second, and full collections followed about
4 times a minute, each 55-160 ms with the loop stopped. With this threshold the fleet bench
saw no full collection in steady state, and the collector's time fell from ~0.8 % to ~0.3 %
of a core (``bench/README.md``, "Many guilds playing", stop 22)."""


def settle() -> None:
    """After start-up: freeze what it loaded and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def release() -> None:
    """At shutdown: the frozen objects become collectable again."""
    gc.unfreeze()
