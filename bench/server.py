"""A local Lavalink v4 node for the benchmarks: enough protocol for each client, frames on cue.

Run as its own process (``python bench/server.py``), so that the cost of *sending* frames is
paid on the other core and the clients are measured, not the server. It prints
``PORT <n>`` once listening on 127.0.0.1 and serves:

* ``GET /v4/info``, ``GET /version``: Lavalink 4.2.2.
* ``GET /v4/websocket``: auth, ``User-Id``, ``Session-Id`` resuming, then ``ready``.
* ``PATCH /v4/sessions/{sid}`` (resuming), ``PATCH|GET|DELETE .../players[/{gid}]``: a Player
  object as a node answers (voice, track, volume, paused, state).
* ``GET /v4/loadtracks``: the 1,000-track playlist answer from :mod:`bench.workload`.
* ``POST /bench/blast?session=SID``: send every pre-encoded frame of the workload to that
  session's socket as fast as the socket takes them. Answers at once.
* ``POST /bench/player-updates?session=SID``: one ``playerUpdate`` per player of the session.

No compression is negotiated (``compress=False``): every client reads the same plain frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from peers.tracks import TrackDecodeError, decode_track, track_json

_SCRIPT = str(Path(__file__).resolve())

_INFO = {
    "version": {"semver": "4.2.2", "major": 4, "minor": 2, "patch": 2, "preRelease": None},
    "buildTime": 1772839275000,
    "git": {"branch": "master", "commit": "e8503fd", "commitTime": 1772839275000},
    "jvm": "17.0.12",
    "lavaplayer": "2.2.6",
    "sourceManagers": ["youtube", "soundcloud", "http"],
    "filters": ["volume", "equalizer", "timescale"],
    "plugins": [],
}


class BenchNode:
    def __init__(self, frames: int, guilds: int, playlist_tracks: int) -> None:
        self.work = workload.build(frames, guilds)
        self.playlist = workload.playlist_answer(playlist_tracks)
        self.wire = _frame_chunks(self.work.frames)
        self.sockets: dict[str, tuple[web.WebSocketResponse, web.Request]] = {}
        self.players: dict[str, dict[int, dict[str, Any]]] = {}
        self.resuming: dict[str, dict[str, Any]] = {}
        self.blasts: set[asyncio.Task[None]] = set()
        self.update_round = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/v4/info", self.info)
        app.router.add_get("/version", self.version)
        app.router.add_get("/v4/websocket", self.websocket)
        app.router.add_get("/v4/loadtracks", self.loadtracks)
        app.router.add_patch("/v4/sessions/{sid}", self.update_session)
        app.router.add_get("/v4/sessions/{sid}/players", self.get_players)
        app.router.add_get("/v4/sessions/{sid}/players/{gid}", self.get_player)
        app.router.add_patch("/v4/sessions/{sid}/players/{gid}", self.update_player)
        app.router.add_delete("/v4/sessions/{sid}/players/{gid}", self.destroy_player)
        app.router.add_post("/bench/blast", self.blast)
        app.router.add_post("/bench/player-updates", self.player_updates)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/bench/"):
            return await handler(request)  # type: ignore[no-any-return]
        if request.headers.get("Authorization") != workload.PASSWORD:
            return web.Response(status=401)
        return await handler(request)  # type: ignore[no-any-return]

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(_INFO)

    async def version(self, request: web.Request) -> web.Response:
        return web.Response(text="4.2.2")

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        user = request.headers.get("User-Id", "")
        if not user.isdigit() or user == "0":
            return web.Response(status=400, text="User-Id missing")
        wanted = request.headers.get("Session-Id")
        resumed = wanted is not None and wanted in self.resuming
        sid = wanted if resumed and wanted else secrets.token_hex(8)
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        ws.headers["Session-Resumed"] = "true" if resumed else "false"
        await ws.prepare(request)
        self.sockets[sid] = (ws, request)
        self.players.setdefault(sid, {})
        await ws.send_str(json.dumps({"op": "ready", "resumed": resumed, "sessionId": sid}))
        try:
            async for message in ws:
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            if self.sockets.get(sid, (None,))[0] is ws:
                del self.sockets[sid]
            if sid not in self.resuming:
                self.players.pop(sid, None)
        return ws

    async def loadtracks(self, request: web.Request) -> web.Response:
        return web.Response(body=self.playlist, content_type="application/json")

    async def update_session(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if sid not in self.players:
            return _error(404, "Session not found", request.path)
        body = await request.json()
        session = self.resuming.get(sid, {"resuming": False, "timeout": 60})
        session.update({k: body[k] for k in ("resuming", "timeout") if k in body})
        if session["resuming"]:
            self.resuming[sid] = session
        return web.json_response(session)

    async def get_players(self, request: web.Request) -> web.Response:
        players = self.players.get(request.match_info["sid"])
        if players is None:
            return _error(404, "Session not found", request.path)
        return web.json_response(list(players.values()))

    async def get_player(self, request: web.Request) -> web.Response:
        players = self.players.get(request.match_info["sid"], {})
        player = players.get(int(request.match_info["gid"]))
        if player is None:
            return _error(404, "Player not found", request.path)
        return web.json_response(player)

    async def update_player(self, request: web.Request) -> web.Response:
        players = self.players.get(request.match_info["sid"])
        if players is None:
            return _error(404, "Session not found", request.path)
        gid = int(request.match_info["gid"])
        body = await request.json()
        player = players.get(gid) or {
            "guildId": str(gid),
            "track": None,
            "volume": 100,
            "paused": False,
            "state": {"time": 0, "position": 0, "connected": False, "ping": -1},
            "voice": {"token": "", "endpoint": "", "sessionId": "", "channelId": None},
            "filters": {},
        }
        if "voice" in body:
            player["voice"] = body["voice"]
            player["state"] = {**player["state"], "connected": True, "ping": 20}
        track = body.get("track", {})
        encoded = track.get("encoded", body.get("encodedTrack", ...))
        if encoded is None:
            player["track"] = None
        elif encoded is not ...:
            try:
                info = decode_track(encoded)
            except TrackDecodeError as exc:
                return _error(400, f"Invalid track: {exc}", request.path)
            player["track"] = track_json(info, track.get("userData"), encoded=encoded)
        for key in ("volume", "paused", "filters"):
            if key in body:
                player[key] = body[key]
        players[gid] = player
        return web.json_response(player)

    async def destroy_player(self, request: web.Request) -> web.Response:
        self.players.get(request.match_info["sid"], {}).pop(int(request.match_info["gid"]), None)
        return web.Response(status=204)

    async def blast(self, request: web.Request) -> web.Response:
        found = self.sockets.get(request.query.get("session", ""))
        if found is None:
            return web.Response(status=404, text="no such session")
        task = asyncio.create_task(self._send_all(*found))
        self.blasts.add(task)
        task.add_done_callback(self.blasts.discard)
        return web.json_response({"frames": len(self.work.frames)})

    async def player_updates(self, request: web.Request) -> web.Response:
        """One ``playerUpdate`` for every player of the session, as a node sends them."""
        sid = request.query.get("session", "")
        found = self.sockets.get(sid)
        if found is None:
            return web.Response(status=404, text="no such session")
        ws = found[0]
        players = list(self.players.get(sid, {}).values())
        # Each round 5 s further on, so no player looks stuck to a client's watchdog.
        self.update_round += 1
        for player in players:
            position = 5_000 * self.update_round
            state = {**player["state"], "time": 1_764_000_000_000 + position, "position": position}
            frame = {"op": "playerUpdate", "guildId": player["guildId"], "state": state}
            await ws.send_str(json.dumps(frame, separators=(",", ":")))
        return web.json_response({"frames": len(players)})

    async def _send_all(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        """Write the pre-framed stream in large chunks, so the clients set the pace.

        The bytes on the wire are exactly what ``ws.send_frame`` would write frame by frame
        (unmasked, uncompressed text frames); only the number of ``write`` calls differs, which
        keeps the sending side far faster than any client and out of the measurement.
        """
        transport = request.transport
        protocol = request.protocol
        assert transport is not None
        for chunk in self.wire:
            if ws.closed or transport.is_closing():
                return
            transport.write(chunk)
            if transport.get_write_buffer_size() > _HIGH_WATER:
                await protocol._drain_helper()


class ServerProcess:
    """The bench node in a child process; ``async with ServerProcess() as server: server.url``."""

    def __init__(self, frames: int = 100_000, guilds: int = 100, playlist: int = 1_000) -> None:
        self._args = [f"--frames={frames}", f"--guilds={guilds}", f"--playlist={playlist}"]
        self._proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ServerProcess:
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
            raise RuntimeError(f"bench server did not start: {line!r}")
        self.port = int(line.split()[1])
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


_HIGH_WATER = 1 << 20
_CHUNK = 1 << 16


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def _frame_chunks(frames: tuple[bytes, ...]) -> tuple[bytes, ...]:
    chunks: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for frame in frames:
        wire = _text_frame(frame)
        pending.append(wire)
        size += len(wire)
        if size >= _CHUNK:
            chunks.append(b"".join(pending))
            pending, size = [], 0
    if pending:
        chunks.append(b"".join(pending))
    return tuple(chunks)


def _error(status: int, message: str, path: str) -> web.Response:
    return web.json_response(
        {"timestamp": 0, "status": status, "error": message, "message": message, "path": path},
        status=status,
    )


async def _serve(frames: int, guilds: int, playlist_tracks: int) -> None:
    node = BenchNode(frames, guilds, playlist_tracks)
    runner = web.AppRunner(node.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    # The harness ends this process by closing our stdin (or killing it).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--playlist", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(_serve(args.frames, args.guilds, args.playlist))


if __name__ == "__main__":
    main()
