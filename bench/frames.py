"""Frames end to end: bytes on the socket -> typed object in the listener, three clients.

One bench node (the fake Lavalink of ``peers/``, its own process: ``bench/node.py``) sends
the same 100,000 pre-encoded frames to each client in turn: ``playerUpdate`` (90 %),
``TrackEndEvent`` and ``TrackStartEvent`` (5 % each, full Track objects) over 100 guilds. The
clock starts when the harness asks the node to send (once the client has the frames a node
sends while it is set up) and stops when the client's listener has received its
100,000th typed object. Each client is set up the way a bot uses it, the run repeats, and the
best and median rates are printed with the ratio against the faster peer.

* musicbot: ``LavalinkClient`` with ``set_listener``; every guild joined (``connect``, voice
  forwarded) and playing (``play``) first, so the per-guild bookkeeping runs as in the bot.
* lavalink.py: its event hooks for ``PlayerUpdateEvent``/``TrackStartEvent``/
  ``TrackEndEvent``. It drops ``playerUpdate``/events for guilds without a player, so each
  guild gets a player playing a track first (``player.play``). Its ``DefaultPlayer`` would
  call Lavalink to start the next queued track on every ``finished``; that is playback logic,
  not dispatch, so the players here skip it (``handle_event`` is a no-op).
* hikari-ongaku: its events through a real (not started) ``hikari.GatewayBot`` event manager;
  the bot user is put in hikari's cache as READY would, and ``StartedEvent`` is dispatched to
  start ongaku's session. No ongaku players are created: ongaku dispatches without them, and
  each player subscribes to every ``PlayerUpdateEvent`` (100 players = 100 callbacks a frame),
  so this is ongaku's best case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from bench.musicbot import musicbot_client, until
from bench.node import NodeProcess
from bot.lavalink import (
    PlayerStateUpdate,
    TrackEndEvent,
    TrackStartEvent,
)

_TIMEOUT = 300.0
_KIND = {
    "PlayerStateUpdate": "playerUpdate",
    "PlayerUpdateEvent": "playerUpdate",
    "TrackStartEvent": "TrackStartEvent",
    "TrackEndEvent": "TrackEndEvent",
}
"""Each client's name for the three frame types, to check every type arrived."""


@dataclasses.dataclass(slots=True)
class Result:
    seconds: float | None
    received: int
    expected: int
    kinds: dict[str, int] = dataclasses.field(default_factory=dict)


class Finish:
    """Counts typed objects; notes the time of the last expected one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.end = 0.0
        self.done = asyncio.Event()

    def hit(self, kind: str = "frame") -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.count += 1
        if self.count == self.expected:
            self.end = time.perf_counter()
            self.done.set()

    def reset(self) -> None:
        self.count = 0
        self.kinds = {}
        self.end = 0.0
        self.done.clear()


_TYPED = ("playerUpdate", "TrackStartEvent", "TrackEndEvent")
"""The frames each client's listener counts."""


async def settle(
    control: aiohttp.ClientSession,
    server: NodeProcess,
    session_id: str,
    finish: Finish,
    kinds: tuple[str, ...] | None,
) -> None:
    """Wait until the client has what the node sent it unasked while it was set up (``ready``,
    ``stats``, each play's ``TrackStartEvent`` and ``playerUpdate``, as a node sends them),
    then zero the count: the clock measures the blast only. ``kinds``: which of those frames
    the client's listener counts (``None``: every frame but ``ready``)."""
    async with control.get(f"{server.control_url}/sent", params={"session": session_id}) as r:
        r.raise_for_status()
        sent: dict[str, int] = await r.json()
    if kinds is None:
        expected = sum(sent.values()) - sent.get("ready", 0)
    else:
        expected = sum(sent.get(kind, 0) for kind in kinds)
    try:
        await until(lambda: finish.count >= expected, f"{expected} set-up frames", 30)
    except RuntimeError:
        print(f"  ! set-up frames: {finish.count} of {expected} arrived ({sent})", flush=True)
    await asyncio.sleep(0.1)  # anything beyond them would show as a miscount below
    finish.reset()


async def _blast(
    server: NodeProcess,
    session_id: str,
    finish: Finish,
    kinds: tuple[str, ...] | None = _TYPED,
) -> Result:
    """Ask the node to send every frame to ``session_id``; wait for the last typed object."""
    async with aiohttp.ClientSession() as control:
        await settle(control, server, session_id, finish, kinds)
        start = time.perf_counter()
        async with control.post(
            f"{server.control_url}/blast", params={"session": session_id}
        ) as response:
            response.raise_for_status()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finish.done.wait(), _TIMEOUT)
    # Let stragglers arrive: more than expected would mean a double dispatch.
    await asyncio.sleep(0.2)
    seconds = finish.end - start if finish.done.is_set() else None
    return Result(seconds, finish.count, finish.expected, dict(finish.kinds))


# --- the socket alone ------------------------------------------------------------------------


async def run_ceiling(server: NodeProcess, work: workload.Workload) -> Result:
    """aiohttp receiving the frames and discarding them: no client can beat this."""
    finish = Finish(len(work.frames))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"ws://127.0.0.1:{server.port}/v4/websocket",
            headers={"Authorization": workload.PASSWORD, "User-Id": str(workload.BOT_USER_ID)},
        )
        ready = await ws.receive_json()

        async def read() -> None:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    finish.hit()

        reader = asyncio.create_task(read())
        result = await _blast(server, ready["sessionId"], finish, kinds=None)
        await ws.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return result


# --- musicbot ---------------------------------------------------------------------------------


async def run_musicbot(server: NodeProcess, work: workload.Workload) -> Result:
    finish = Finish(len(work.frames))
    typed = (PlayerStateUpdate, TrackStartEvent, TrackEndEvent)

    async def listener(event: object) -> None:
        if isinstance(event, typed):
            finish.hit(_KIND[type(event).__name__])

    tracks = {guild_id: work.first_tracks[guild_id]["encoded"] for guild_id in work.guild_ids}
    async with musicbot_client(server, tracks, listener) as session_id:
        return await _blast(server, session_id, finish)


# --- lavalink.py ------------------------------------------------------------------------------


async def run_lavalink_py(server: NodeProcess, work: workload.Workload) -> Result:
    import lavalink  # noqa: PLC0415 - a bench-only dependency

    class DispatchOnlyPlayer(lavalink.DefaultPlayer):  # type: ignore[misc]
        async def handle_event(self, event: Any) -> None:
            return None  # no auto-play: the measured work is decode + dispatch

    finish = Finish(len(work.frames))

    async def hook(event: Any) -> None:
        finish.hit(_KIND[type(event).__name__])

    client = lavalink.Client(workload.BOT_USER_ID, player=DispatchOnlyPlayer)
    for kind in (lavalink.PlayerUpdateEvent, lavalink.TrackStartEvent, lavalink.TrackEndEvent):
        client.add_event_hook(hook, event=kind)
    node = client.add_node("127.0.0.1", server.port, workload.PASSWORD, "eu", name="bench")
    try:
        await until(lambda: node.available and node.session_id is not None, "lavalink.py")
        for guild_id in work.guild_ids:
            player = client.player_manager.create(guild_id)
            await player.play(lavalink.AudioTrack(work.first_tracks[guild_id], requester=0))
        return await _blast(server, node.session_id, finish)
    finally:
        await client.close()


# --- hikari-ongaku ----------------------------------------------------------------------------


async def run_ongaku(server: NodeProcess, work: workload.Workload) -> Result:
    import hikari  # noqa: PLC0415
    import ongaku  # noqa: PLC0415 - a bench-only dependency

    # A well-formed token (base64 of the user id first) that is never sent anywhere.
    user = base64.b64encode(str(workload.BOT_USER_ID).encode()).decode().rstrip("=")
    bot = hikari.GatewayBot(
        f"{user}.unused.token", banner=None, logs=None, suppress_optimization_warning=True
    )
    # What hikari itself does on the gateway's READY; ongaku reads the bot user from here.
    me = bot.entity_factory.deserialize_my_user(
        {
            "id": str(workload.BOT_USER_ID),
            "username": "bench",
            "global_name": "bench",
            "discriminator": "0",
            "avatar": None,
            "bot": True,
            "mfa_enabled": False,
            "flags": 0,
        }
    )
    bot.cache.set_me(me)  # type: ignore[attr-defined]
    client = ongaku.Client(bot, logs="WARNING")
    session = client.create_session(
        "bench", host="127.0.0.1", port=server.port, password=workload.PASSWORD
    )
    finish = Finish(len(work.frames))

    async def hook(event: Any) -> None:
        finish.hit(_KIND[type(event).__name__])

    for kind in (ongaku.PlayerUpdateEvent, ongaku.TrackStartEvent, ongaku.TrackEndEvent):
        bot.subscribe(kind, hook)
    await bot.dispatch(hikari.StartedEvent(app=bot), return_tasks=True)
    try:
        await until(lambda: session.session_id is not None, "hikari-ongaku")
        session_id = session.session_id
        assert session_id is not None
        return await _blast(server, session_id, finish)
    finally:
        await bot.dispatch(hikari.StoppingEvent(app=bot), return_tasks=True)


# --- the decoder alone ---------------------------------------------------------------------


def decode_only(work: workload.Workload, repeat: int = 5) -> None:
    """Does msgspec earn its place? The same frames through each client's JSON decoder.

    Text as aiohttp hands it to every client (``str``); best of ``repeat`` passes. msgspec
    yields the typed structs directly; json/orjson yield dicts that the peers then walk in
    Python to build their objects.
    """
    import json  # noqa: PLC0415

    import msgspec  # noqa: PLC0415

    from bot.lavalink.models import WireOp  # noqa: PLC0415

    # The decoder the node reads its socket with: the public WireOp union, strict=False.
    decoder = msgspec.json.Decoder(WireOp, strict=False)

    texts = [frame.decode() for frame in work.frames]
    decoders: list[tuple[str, Callable[[str], object]]] = [
        ("msgspec -> typed structs (musicbot)", decoder.decode),
        ("json.loads -> dicts (lavalink.py)", json.loads),
    ]
    try:
        import orjson  # noqa: PLC0415

        decoders.append(("orjson.loads -> dicts (hikari-ongaku)", orjson.loads))
    except ImportError:
        print("  orjson not installed: hikari-ongaku would fall back to json.loads")
    print(f"\ndecode only, {len(texts):,} frames, no I/O, best of {repeat} interleaved passes:")
    best = dict.fromkeys((label for label, _ in decoders), float("inf"))
    for _ in range(repeat):
        for label, decode in decoders:
            start = time.perf_counter()
            for text in texts:
                decode(text)
            best[label] = min(best[label], time.perf_counter() - start)
    for label, seconds in best.items():
        print(f"  {label:<40}{len(texts) / seconds:>12,.0f} frames/s")


# --- report -----------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _rates(results: list[Result]) -> tuple[float | None, float | None]:
    rates = [r.expected / r.seconds for r in results if r.seconds]
    if len(rates) < len(results):
        return None, None
    return max(rates), statistics.median(rates)


def _fmt(rate: float | None) -> str:
    return f"{rate:>12,.0f}" if rate is not None else f"{'incomplete':>12}"


async def main(frames: int, guilds: int, runs: int, only: set[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING)
    work = workload.build(frames, guilds)
    clients: list[tuple[str, str, Callable[..., Awaitable[Result]]]] = [
        ("socket", "aiohttp receive only (ceiling)", run_ceiling),
        ("musicbot", "musicbot bot.lavalink", run_musicbot),
        ("lavalink", f"lavalink.py {_version('lavalink')}", run_lavalink_py),
        ("ongaku", f"hikari-ongaku {_version('hikari-ongaku')}", run_ongaku),
    ]
    if only:
        clients = [c for c in clients if c[0] in only]
    print(
        f"frames: {len(work.frames):,} over {guilds} guilds "
        f"({work.player_updates:,} playerUpdate, {work.track_starts:,} TrackStartEvent, "
        f"{work.track_ends:,} TrackEndEvent); {runs} runs, interleaved",
        flush=True,
    )
    results: dict[str, list[Result]] = {key: [] for key, _, _ in clients}
    async with NodeProcess(frames=frames, guilds=guilds) as server:
        for run in range(runs):
            for key, label, bench in clients:
                result = await bench(server, work)
                results[key].append(result)
                took = f"{result.seconds:.3f} s" if result.seconds else "did not finish"
                print(
                    f"  run {run + 1}: {label:<34} {took:>14}  "
                    f"received {result.received:,}/{result.expected:,}",
                    flush=True,
                )
    print()
    print(f"{'client':<36}{'best frames/s':>14}{'median frames/s':>17}")
    rates = {}
    wanted = {
        "playerUpdate": work.player_updates,
        "TrackStartEvent": work.track_starts,
        "TrackEndEvent": work.track_ends,
    }
    for key, label, _ in clients:
        best, median = rates[key] = _rates(results[key])
        print(f"{label:<36}{_fmt(best):>14}{_fmt(median):>17}")
        wrong = [r for r in results[key] if r.received != r.expected]
        if wrong:
            print(f"  ! {label}: received {[r.received for r in wrong]} of {frames:,} in some runs")
        if key != "socket":
            for result in results[key]:
                if result.kinds != wanted:
                    print(f"  ! {label}: dispatched {result.kinds}, expected {wanted}")
    peers = [(key, label) for key, label, _ in clients if key in ("lavalink", "ongaku")]
    ours = rates.get("musicbot")
    if ours and peers and ours[1] is not None:
        complete = [(k, lab) for k, lab in peers if rates[k][1] is not None]
        if not complete:
            print("no peer finished; no ratio")
            return 1
        fastest_key, fastest_label = max(complete, key=lambda p: rates[p[0]][1] or 0.0)
        peer_best, peer_median = rates[fastest_key]
        assert ours[0] is not None
        assert peer_best is not None
        assert peer_median is not None
        ratio_best, ratio_median = ours[0] / peer_best, ours[1] / peer_median
        verdict = "meets" if min(ratio_best, ratio_median) >= 2.0 else "MISSES"
        print(
            f"\nmusicbot vs the faster peer ({fastest_label}): "
            f"{ratio_best:.2f}x (best vs best), {ratio_median:.2f}x (median vs median); "
            f"{verdict} the 2x target"
        )
    decode_only(work)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only", default="", help="comma-separated: socket,musicbot,lavalink,ongaku"
    )
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name} or None
    sys.exit(asyncio.run(main(args.frames, args.guilds, args.runs, only)))
