"""Reading a busy node's WebSocket in batches: one wake-up for a few milliseconds of frames.

A Lavalink node sends each playing player's position report on that player's own timer, each
its own frame and socket write: 2,500 playing guilds are 500 frames a second, arriving one at a
time. Read one by one, every frame wakes the event loop, reads the socket, runs the frame
parser and wakes the read task: ~80 us of CPU on a small machine, most of it asyncio and
aiohttp, not the frame (``bench/paced.py``). While frames come faster than one per
:data:`READ_HOLD`, the socket is left unread for that long after each read, so the kernel
gathers what arrives meanwhile and one read takes it all: at 2,500 guilds ~4x less CPU per
frame. A frame then waits at most :data:`READ_HOLD`, and only while the node is busy; a quiet
node's frames are read at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import aiohttp

__all__ = ["READ_HOLD", "ReadHold"]

READ_HOLD: Final = 0.05
"""Seconds a busy socket is left unread after a read. Longer saves little more (~20 wake-ups a
second left at 50 ms) and delays a track's end, hence the next track, a little more."""


class ReadHold:
    """Holds ``ws``'s socket unread for ``hold`` seconds after a frame that followed another
    within ``hold``. Call :meth:`frame_read` for every frame and :meth:`close` at the end.

    It pauses the transport itself, never aiohttp's protocol: aiohttp resumes a protocol it
    did not pause whenever its queue has room, and keeps its own pause for a full queue (which
    a hold never ends). With an aiohttp that does not expose the transport, frames are simply
    read one by one, as without a hold.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hold: float = READ_HOLD) -> None:
        connection = getattr(ws, "_conn", None)
        transport = getattr(connection, "transport", None)
        self._transport = transport if isinstance(transport, asyncio.Transport) else None
        self._protocol = getattr(connection, "protocol", None)
        self._hold = hold
        self._last = -hold
        self._timer: asyncio.TimerHandle | None = None

    @property
    def engaged(self) -> bool:
        """Whether this hold can pause the socket at all (it found the transport)."""
        return self._transport is not None and self._hold > 0

    @property
    def holding(self) -> bool:
        """The socket is being left unread right now."""
        return self._timer is not None

    def frame_read(self) -> None:
        """A frame was just read: hold the socket if frames are coming fast."""
        now = time.monotonic()
        busy, self._last = now - self._last < self._hold, now
        transport = self._transport
        if not busy or self._timer is not None or transport is None or transport.is_closing():
            return
        transport.pause_reading()
        self._timer = asyncio.get_running_loop().call_later(self._hold, self._release)

    def close(self) -> None:
        """End a hold in progress: the socket is read again (a closing handshake needs it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._release()

    def _release(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # aiohttp paused it meanwhile for a full queue: that pause is aiohttp's to end.
        if not getattr(self._protocol, "_reading_paused", False):
            transport.resume_reading()
