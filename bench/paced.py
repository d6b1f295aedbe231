"""Frames at the pace of real traffic: what receiving them costs the client, in CPU.

``bench/frames.py`` measures back-to-back bursts; a real node sends each playing guild one
``playerUpdate`` every 5 s, each player on its own timer, so frames come one at a time. Here
the bench node (the fake Lavalink of ``peers/``, its own process: ``bench/node.py``) does
exactly that for ``--guilds`` players: once a client has every guild joined and playing, the
node's ``playerUpdateInterval`` becomes 5 s and the players are re-timed as if their tracks
had started evenly spread over 5 s (``POST /pace``), so reports arrive one guild at a time,
each its own websocket message and its own socket write. After one interval to settle, a
window of ``--seconds`` measures the CPU of this process (``time.process_time()``: user and
system, every thread; the node is another process) as % of one core and per frame received,
and the frames received against the frames the node sent in the window (a client that falls
behind shows as fewer received).

* socket: a plain aiohttp websocket that only counts text frames (players made over plain
  REST): the floor that aiohttp and the event loop cost.
* musicbot: ``LavalinkClient`` set up as ``frames.py`` sets it up (``bench/musicbot.py``):
  ``set_listener``, every guild joined and playing; position reports reach the listener
  through the per-guild dispatcher.
* positions: the same, plus ``on_position``, as the bot takes position reports (from the
  read loop, no dispatch): what a playing bot pays per report.

Each guild plays a one-hour track, so no track ends during set-up or window. Runs are
interleaved (socket, musicbot, positions, repeat) and the medians printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from bench.frames import Finish, settle
from bench.musicbot import musicbot_client
from bench.node import NodeProcess
from bot.lavalink import PlayerStateUpdate, TrackEndEvent, TrackStartEvent
from peers.catalogue import youtube_track
from peers.tracks import encode_track

INTERVAL = 5.0
"""Lavalink's default ``playerUpdateInterval``."""
_QUIET = 3600.0
_TRACK_MS = 3_600_000
_TYPED = ("playerUpdate", "TrackStartEvent", "TrackEndEvent")


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    players: int
    cpu: float
    """Seconds of CPU (user + system) this process used in the window."""
    wall: float
    sent: int
    """``playerUpdate`` frames the node sent the session in the window."""
    received: int

    @property
    def percent(self) -> float:
        return 100.0 * self.cpu / self.wall

    @property
    def per_frame_us(self) -> float:
        return 1e6 * self.cpu / self.received if self.received else float("inf")


def long_tracks(guild_ids: Sequence[int]) -> dict[int, str]:
    """Per guild an ``encoded`` one-hour track: it outlasts set-up and window, so every player
    keeps reporting (the workload's 90 s tracks would end mid-run at 10,000 guilds)."""
    return {
        guild_id: encode_track(dataclasses.replace(youtube_track(i, 0), length=_TRACK_MS))
        for i, guild_id in enumerate(guild_ids)
    }


async def _sent(control: aiohttp.ClientSession, server: NodeProcess, session_id: str) -> int:
    async with control.get(f"{server.control_url}/sent", params={"session": session_id}) as r:
        r.raise_for_status()
        sent: dict[str, int] = await r.json()
    return sent.get("playerUpdate", 0)


async def _pace(
    control: aiohttp.ClientSession, server: NodeProcess, session_id: str, interval: float
) -> int:
    params = {"session": session_id, "interval": str(interval)}
    async with control.post(f"{server.control_url}/pace", params=params) as r:
        r.raise_for_status()
        players: int = (await r.json())["players"]
    return players


async def measure(
    server: NodeProcess,
    session_id: str,
    finish: Finish,
    seconds: float,
    kinds: tuple[str, ...] | None,
) -> Window:
    """Once the client has its set-up frames: pace the node, let one interval pass, then
    count CPU and frames over ``seconds``; quiet the node again."""
    async with aiohttp.ClientSession() as control:
        await settle(control, server, session_id, finish, kinds)
        players = await _pace(control, server, session_id, INTERVAL)
        await asyncio.sleep(INTERVAL)
        got0, cpu0, wall0 = finish.count, time.process_time(), time.perf_counter()
        sent0 = await _sent(control, server, session_id)
        await asyncio.sleep(seconds)
        got1, cpu1, wall1 = finish.count, time.process_time(), time.perf_counter()
        sent1 = await _sent(control, server, session_id)
        await _pace(control, server, session_id, _QUIET)
    return Window(players, cpu1 - cpu0, wall1 - wall0, sent1 - sent0, got1 - got0)


# --- the clients ------------------------------------------------------------------------------


async def run_socket(server: NodeProcess, tracks: dict[int, str], seconds: float) -> Window:
    """aiohttp receiving the frames and only counting them; players made over plain REST."""
    finish = Finish(sys.maxsize)
    auth = {"Authorization": workload.PASSWORD}
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"ws://127.0.0.1:{server.port}/v4/websocket",
            headers={**auth, "User-Id": str(workload.BOT_USER_ID)},
        )
        session_id = (await ws.receive_json())["sessionId"]

        async def read() -> None:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    finish.hit()

        reader = asyncio.create_task(read())
        try:
            for index, (guild_id, encoded) in enumerate(tracks.items()):
                voice = {
                    "token": f"token-{guild_id}",
                    "endpoint": "c-ams.discord.media",
                    "sessionId": f"voice-{guild_id}",
                    "channelId": str(workload.CHANNEL_BASE + index),
                }
                url = f"{server.url}/v4/sessions/{session_id}/players/{guild_id}"
                body = {"voice": voice, "track": {"encoded": encoded}}
                async with http.patch(url, json=body, headers=auth) as response:
                    response.raise_for_status()
            return await measure(server, session_id, finish, seconds, kinds=None)
        finally:
            await ws.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _musicbot(
    server: NodeProcess, tracks: dict[int, str], seconds: float, positions: bool
) -> Window:
    finish = Finish(sys.maxsize)
    typed = (PlayerStateUpdate, TrackStartEvent, TrackEndEvent)

    async def listener(event: object) -> None:
        if isinstance(event, typed):
            finish.hit()

    def on_position(_report: PlayerStateUpdate) -> None:
        finish.hit()

    with_positions = on_position if positions else None
    async with musicbot_client(server, tracks, listener, with_positions) as session_id:
        return await measure(server, session_id, finish, seconds, _TYPED)


async def run_musicbot(server: NodeProcess, tracks: dict[int, str], seconds: float) -> Window:
    return await _musicbot(server, tracks, seconds, positions=False)


async def run_positions(server: NodeProcess, tracks: dict[int, str], seconds: float) -> Window:
    return await _musicbot(server, tracks, seconds, positions=True)


# --- report -----------------------------------------------------------------------------------

Bench = Callable[[NodeProcess, dict[int, str], float], Awaitable[Window]]
CLIENTS: list[tuple[str, str, Bench]] = [
    ("socket", "aiohttp receive only (floor)", run_socket),
    ("musicbot", "musicbot, set_listener", run_musicbot),
    ("positions", "musicbot, + on_position (the bot)", run_positions),
]


def _line(window: Window) -> str:
    # The two counts are read a moment apart: a few frames in flight are not falling behind.
    behind = window.sent - window.received
    in_flight = max(5.0, 0.1 * window.sent / window.wall)
    note = f"  ! {behind:,} behind" if behind > in_flight else ""
    return (
        f"{window.percent:6.2f} % of a core {window.per_frame_us:7.1f} us/frame  "
        f"received {window.received:,} / sent {window.sent:,}{note}"
    )


def report(guilds: int, results: dict[str, list[Window]]) -> None:
    print(f"\n{'client':<36}{'CPU % core':>11}{'us/frame':>10}{'received / sent':>22}")
    floor: float | None = None
    for key, label, _ in CLIENTS:
        windows = results.get(key)
        if not windows:
            continue
        percent = statistics.median(w.percent for w in windows)
        per_frame = statistics.median(w.per_frame_us for w in windows)
        received = sum(w.received for w in windows)
        sent = sum(w.sent for w in windows)
        print(f"{label:<36}{percent:>11.2f}{per_frame:>10.1f}{f'{received:,} / {sent:,}':>22}")
        if key == "socket":
            floor = per_frame
        elif floor is not None:
            print(f"{'':<36}{'':>11}{per_frame - floor:>+10.1f}  above the floor")
    expected = guilds / INTERVAL
    print(f"(medians; {expected:,.0f} frames/s expected: one per guild every {INTERVAL:g} s)")


async def main(guilds: int, seconds: float, runs: int, only: set[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING)
    clients = [c for c in CLIENTS if only is None or c[0] in only]
    guild_ids = tuple(workload.GUILD_BASE + i for i in range(guilds))
    tracks = long_tracks(guild_ids)
    print(
        f"paced frames: {guilds:,} guilds, one playerUpdate each every {INTERVAL:g} s, "
        f"spread evenly; {seconds:g} s windows, {runs} runs interleaved; pid {os.getpid()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: dict[str, list[Window]] = {key: [] for key, _, _ in clients}
    async with NodeProcess(frames=1, guilds=1) as server:
        for run in range(runs):
            for key, label, bench in clients:
                started = time.perf_counter()
                window = await bench(server, tracks, seconds)
                results[key].append(window)
                took = time.perf_counter() - started
                players = "" if window.players == guilds else f"  ! {window.players:,} players"
                print(
                    f"  run {run + 1}: {label:<34} {_line(window)}  ({took:.0f} s){players}",
                    flush=True,
                )
    report(guilds, results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, default=2_500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated: socket,musicbot,positions")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name} or None
    sys.exit(asyncio.run(main(args.guilds, args.seconds, args.runs, only)))
