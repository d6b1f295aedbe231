"""The benchmarks' Lavalink node: the fake Lavalink of ``peers/`` in a child process.

Run as its own process (``python bench/node.py``) so that serving and sending cost land on
the other core and the clients are measured, not the node. It is
:class:`peers.fake_lavalink.FakeLavalink` with the benchmarks' catalogue (the 1,000-track
playlist at :data:`peers.catalogue.BENCH_PLAYLIST_URL`), position reports and ``stats`` only
when a node sends them unasked (at a track's start, on voice, on resume: the periodic ones are
an hour apart, so they never land inside a measurement), and a control port for the harness:

* ``POST /blast?session=SID``: the load-generation hook
  (:meth:`~peers.fake_lavalink.FakeLavalink.write_frames`): every pre-encoded frame of the
  workload (:mod:`bench.workload`) to that session's socket, as fast as it takes them.
  Answers at once.
* ``GET /sent?session=SID``: how many frames of each kind (``ready``, ``stats``,
  ``playerUpdate``, each event type) the node has sent that session, so the harness can wait
  until a client has them all before it starts the clock (counted as they go out; the node
  keeps no copy of them).
* ``POST /pace?session=SID&interval=S``: real traffic (``bench/paced.py``). The node's
  ``playerUpdateInterval`` becomes ``S`` seconds and that session's playing players are
  re-timed as if their tracks had started evenly spread over one interval
  (:meth:`~peers.fake_lavalink.FakeLavalink.stagger_player_updates`): from then on each
  player reports once every ``S`` s on its own timer, one websocket message at a time, as a
  long-running node does. ``S`` = 3600 quiets them again. Answers ``{"players": N}``.

It prints ``PORT <node port> <control port>`` once listening on 127.0.0.1 and stops when its
standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from peers.catalogue import bench_catalogue
from peers.fake_lavalink import FakeLavalink, websocket_frames

_SCRIPT = str(Path(__file__).resolve())
_QUIET = 3600.0
"""Seconds between unasked ``playerUpdate``/``stats`` frames: never, during a bench."""


class Control:
    """The harness's side door into the node (its own port, no Lavalink auth)."""

    def __init__(self, node: FakeLavalink, work: workload.Workload) -> None:
        self.node = node
        self.frames = len(work.frames)
        self.wire = websocket_frames(work.frames)
        self.blasts: set[asyncio.Task[Any]] = set()
        self.counts: collections.defaultdict[str, collections.Counter[str]]
        self.counts = collections.defaultdict(collections.Counter)
        node.keep_sent = False  # a paced run at 10,000 guilds would hold 2,000 messages a second
        node.sent_hooks.append(self._count)

    def _count(self, session: str, message: dict[str, Any]) -> None:
        op = message["op"]
        self.counts[session][message.get("type", op) if op == "event" else op] += 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/blast", self.blast)
        app.router.add_get("/sent", self.sent)
        app.router.add_post("/pace", self.pace)
        return app

    async def blast(self, request: web.Request) -> web.Response:
        session = request.query.get("session", "")
        if session not in self.node.sessions:
            return web.Response(status=404, text="no such session")
        task = asyncio.create_task(self.node.write_frames(session, self.wire))
        self.blasts.add(task)
        task.add_done_callback(self.blasts.discard)
        return web.json_response({"frames": self.frames})

    async def sent(self, request: web.Request) -> web.Response:
        session = request.query.get("session", "")
        return web.json_response(dict(self.counts.get(session, {})))

    async def pace(self, request: web.Request) -> web.Response:
        session = request.query.get("session", "")
        if session not in self.node.sessions:
            return web.Response(status=404, text="no such session")
        self.node.player_update_interval = float(request.query["interval"])
        return web.json_response({"players": self.node.stagger_player_updates(session)})


class NodeProcess:
    """The bench node in a child process; ``async with NodeProcess() as node: node.url``."""

    def __init__(self, frames: int = 100_000, guilds: int = 100, playlist: int = 1_000) -> None:
        self._args = [f"--frames={frames}", f"--guilds={guilds}", f"--playlist={playlist}"]
        self._proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.control_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    async def __aenter__(self) -> NodeProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            _SCRIPT,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 120)
        if not line.startswith(b"PORT "):
            raise RuntimeError(f"bench node did not start: {line!r}")
        self.port, self.control_port = (int(p) for p in line.split()[1:3])
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _serve(frames: int, guilds: int, playlist_tracks: int) -> None:
    work = workload.build(frames, guilds)
    node = FakeLavalink(
        password=workload.PASSWORD,
        catalogue=bench_catalogue(playlist_tracks),
        player_update_interval=_QUIET,
        stats_interval=_QUIET,
        cleanup_after=_QUIET,
    )
    await node.start()
    control = web.AppRunner(Control(node, work).app(), access_log=None)
    await control.setup()
    site = web.TCPSite(control, "127.0.0.1", 0)
    await site.start()
    print(f"PORT {node.port} {control.addresses[0][1]}", flush=True)
    # The harness ends this process by closing our stdin (or killing it).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await control.cleanup()
    await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--playlist", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(_serve(args.frames, args.guilds, args.playlist))


if __name__ == "__main__":
    main()
