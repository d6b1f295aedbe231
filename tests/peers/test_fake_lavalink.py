"""Self-tests of the fake Lavalink node, driven by plain aiohttp (never the project's client).

A fake that drifts from the protocol makes every test built on it lie, so these pin the
behaviour the bot depends on: handshake rules, load results, the track codec against a string
produced by real lavaplayer, the player clock, event order, resuming, crashes and error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from peers.catalogue import RICK
from peers.fake_lavalink import Catalogue, FakeLavalink, RoutePlanner
from peers.tracks import (
    STREAM_LENGTH,
    TrackInfo,
    decode_track,
    encode_track,
    track_json,
    with_position,
)

PASSWORD = "youshallnotpass"
GUILD = 817327181659111454
USER_ID = "170939974227591168"
VOICE = {
    "token": "tok",
    "endpoint": "c-ams12-1a2b.discord.media:443",
    "sessionId": "voicesession",
    "channelId": "98765",
}

# Produced by real lavaplayer (the Lavalink docs' example; message version 2).
RICK_V2 = (
    "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAAD"
    "PCAAC2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lv"
    "dXR1YmUAAAAAAAAAAA=="
)
SHORT = TrackInfo(
    identifier="short00001",
    title="Short",
    author="Tester",
    length=10_000,
    uri="https://www.youtube.com/watch?v=short00001",
)
LONG = TrackInfo(
    identifier="long000001",
    title="Long",
    author="Tester",
    length=600_000,
    uri="https://www.youtube.com/watch?v=long000001",
)
STREAM = TrackInfo(
    identifier="live000001",
    title="Live",
    author="Radio",
    length=STREAM_LENGTH,
    is_stream=True,
    uri="https://www.twitch.tv/radio",
    source_name="twitch",
)
PLAYLIST_URL = "https://www.youtube.com/playlist?list=PLtest"
BLOCKED = "https://www.youtube.com/watch?v=blocked0000"
JSON = {"Content-Type": "application/json"}


def make_catalogue() -> Catalogue:
    cat = Catalogue()
    for info in (RICK, SHORT, LONG, STREAM):
        cat.add_track(info)
    cat.add_playlist(PLAYLIST_URL, "Mix", [SHORT, LONG], selected_track=1)
    cat.add_search("Never Gonna", [RICK, LONG])
    cat.add_error(BLOCKED, "This video is unavailable")
    return cat


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(autouse=True)
async def no_swallowed_errors() -> AsyncIterator[None]:
    """The e2e harness fails on ERROR logs and loop exceptions; the fake must cause none."""
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: errors.records.append(str(ctx)))
    yield
    await asyncio.sleep(0)
    logging.getLogger().removeHandler(errors)
    loop.set_exception_handler(None)
    assert errors.records == []


@pytest.fixture
async def node(no_swallowed_errors: None) -> AsyncIterator[FakeLavalink]:
    fake = FakeLavalink(
        catalogue=make_catalogue(),
        player_update_interval=0.05,
        stats_interval=0.5,
        time_scale=50.0,
    )
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": PASSWORD}) as session:
        yield session


class Socket:
    """A client websocket that keeps every message it read, to check order afterwards."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        self.seen.append(data)
        return data

    async def until(self, op: str, type: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = await self.next(max(0.01, deadline - time.monotonic()))
            if data["op"] == op and (type is None or data.get("type") == type):
                return data


async def connect(
    node: FakeLavalink, http: aiohttp.ClientSession, **extra: str
) -> tuple[Socket, dict[str, Any]]:
    headers = {"Authorization": PASSWORD, "User-Id": USER_ID, "Client-Name": "selftest/1.0"}
    headers.update(extra)
    ws = await http.ws_connect(f"{node.url}/v4/websocket", headers=headers)
    sock = Socket(ws)
    ready = await sock.next()
    assert ready["op"] == "ready"
    return sock, ready


async def next_non_text(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Skip already-buffered frames to the first control message (close/error)."""
    while (msg := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
        pass
    return msg


def players_url(node: FakeLavalink, sid: str, guild: int | str = GUILD) -> str:
    return f"{node.url}/v4/sessions/{sid}/players/{guild}"


async def patch(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **params: str
) -> tuple[int, Any]:
    async with http.patch(url, json=body, params=params) as resp:
        return resp.status, await resp.json()


# --- codec ----------------------------------------------------------------------------------


def test_decodes_a_real_lavaplayer_string_and_reencodes_it_as_version_3() -> None:
    info = decode_track(RICK_V2)
    assert info == RICK
    raw = base64.b64decode(encode_track(info))
    assert raw[:4] == (len(raw) - 4 | 1 << 30).to_bytes(4, "big")
    assert raw[4] == 3  # version byte
    # Version 2 lacks artworkUrl/isrc: its body is those two "absent" flag bytes shorter.
    assert len(raw) == len(base64.b64decode(RICK_V2)) + 2
    assert decode_track(encode_track(info)) == info


def test_modified_utf8_edge_cases_round_trip() -> None:
    info = TrackInfo(
        identifier="nul\x00id",
        title="note \U0001f3b5 e\u0301 \u00e9 \u4e2d",
        author="\x00",
        length=1234,
        artwork_url="https://img/\U0001f600.png",
        isrc="USRC17607839",
        position=42,
    )
    encoded = encode_track(info)
    raw = base64.b64decode(encoded)
    assert b"\xc0\x80" in raw  # NUL is C0 80, never a 00 byte inside a string
    assert b"\xed\xa0\xbc\xed\xbe\xb5" in raw  # U+1F3B5 as two 3-byte surrogates (CESU-8)
    assert b"\xf0" not in raw  # no 4-byte UTF-8 sequences
    assert decode_track(encoded) == info
    assert decode_track(with_position(encoded, 9000)).position == 9000


def test_version_1_and_trailing_bytes_decode() -> None:
    body = bytearray()
    for text in ("T", "A"):
        body += len(text).to_bytes(2, "big") + text.encode()
    body += (5000).to_bytes(8, "big")
    body += (2).to_bytes(2, "big") + b"id" + b"\x00"
    body += (7).to_bytes(2, "big") + b"youtube" + (0).to_bytes(8, "big")
    raw = len(body).to_bytes(4, "big") + bytes(body) + b"junk"  # flags 0 -> version 1
    info = decode_track(base64.b64encode(raw).decode())
    assert (info.title, info.author, info.length, info.identifier) == ("T", "A", 5000, "id")
    assert info.uri is None


# --- handshake and REST basics --------------------------------------------------------------


async def test_websocket_handshake_rules(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    url = f"{node.url}/v4/websocket"
    cases = [
        ({"Authorization": "wrong", "User-Id": USER_ID}, 401),
        ({"User-Id": USER_ID}, 401),
        ({"Authorization": PASSWORD}, 400),
        ({"Authorization": PASSWORD, "User-Id": "0"}, 400),
        ({"Authorization": PASSWORD, "User-Id": "abc"}, 400),
    ]
    async with aiohttp.ClientSession() as bare:
        for headers, status in cases:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await bare.ws_connect(url, headers=headers)
            assert info.value.status == status, headers
            assert info.value.headers is not None
            assert info.value.headers["Lavalink-Api-Version"] == "4"
    assert [r.status for r in node.requests] == [s for _, s in cases]
    assert node.sessions == {}

    # Client-Name is optional in code (docs say required).
    sock, ready = await connect(node, http, **{"Client-Name": ""})
    assert ready == {"op": "ready", "resumed": False, "sessionId": ready["sessionId"]}
    assert len(ready["sessionId"]) == 16
    assert ready["sessionId"].isalnum()
    assert ready["sessionId"].lower() == ready["sessionId"]
    assert sock.ws._response.headers["Session-Resumed"] == "false"
    assert sock.ws._response.headers["Lavalink-Api-Version"] == "4"
    stats = await sock.next()  # stats right after ready
    assert stats["op"] == "stats"
    assert stats["frameStats"] is None
    assert set(stats) >= {"players", "playingPlayers", "uptime", "memory", "cpu"}
    assert node.requests[-1].status == 101
    assert node.requests[-1].path == "/v4/websocket"
    await sock.ws.close()


async def test_rest_auth_and_plain_routes(node: FakeLavalink) -> None:
    async with aiohttp.ClientSession() as bare:
        async with bare.get(f"{node.url}/version") as resp:
            assert resp.status == 401
            assert await resp.read() == b""
            assert resp.headers["Lavalink-Api-Version"] == "4"
        async with bare.get(f"{node.url}/v4/info", headers={"Authorization": "x"}) as resp:
            assert resp.status == 403
            assert await resp.read() == b""
        auth = {"Authorization": PASSWORD}
        async with bare.get(f"{node.url}/version", headers=auth) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            assert await resp.text() == "4.2.2"
        async with bare.get(f"{node.url}/v4/info", headers=auth) as resp:
            info = await resp.json()
        assert info["version"] == {
            "semver": "4.2.2",
            "major": 4,
            "minor": 2,
            "patch": 2,
            "preRelease": None,
        }
        assert "youtube" in info["sourceManagers"]
        assert "timescale" in info["filters"]
        assert set(info) >= {"buildTime", "git", "jvm", "lavaplayer", "plugins"}
        async with bare.get(f"{node.url}/v4/stats", headers=auth) as resp:
            stats = await resp.json()
        assert "frameStats" not in stats
        assert stats["players"] == 0
        async with bare.get(f"{node.url}/v4/nope", headers=auth) as resp:
            assert resp.status == 404
            body = await resp.json()
        assert body["path"] == "/v4/nope"
        assert body["error"] == "Not Found"


async def test_loadtracks_all_five_types(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    async def load(identifier: str) -> dict[str, Any]:
        async with http.get(f"{node.url}/v4/loadtracks", params={"identifier": identifier}) as resp:
            assert resp.status == 200
            result: dict[str, Any] = await resp.json()
            return result

    track = await load(RICK.uri or "")
    assert track["loadType"] == "track"
    assert track["data"] == track_json(RICK)
    assert decode_track(track["data"]["encoded"]) == RICK
    assert track["data"]["info"]["isSeekable"] is True
    assert track["data"]["pluginInfo"] == {}
    assert track["data"]["userData"] == {}

    playlist = await load(PLAYLIST_URL)
    assert playlist["loadType"] == "playlist"
    assert playlist["data"]["info"] == {"name": "Mix", "selectedTrack": 1}
    assert playlist["data"]["pluginInfo"] == {}
    assert [t["info"]["title"] for t in playlist["data"]["tracks"]] == ["Short", "Long"]

    for prefix in ("ytsearch:", "ytmsearch:", "scsearch:"):
        search = await load(f"{prefix}never GONNA")
        assert search["loadType"] == "search"
        assert [t["info"]["identifier"] for t in search["data"]] == [
            RICK.identifier,
            LONG.identifier,
        ]

    error = await load(BLOCKED)
    assert error["loadType"] == "error"
    assert error["data"]["message"] == "This video is unavailable"
    assert error["data"]["severity"] == "common"
    assert set(error["data"]) == {"message", "severity", "cause", "causeStackTrace"}

    assert await load("ytsearch:nothing like this") == {"loadType": "empty", "data": None}
    assert await load("https://example.com/unknown") == {"loadType": "empty", "data": None}

    async with http.get(f"{node.url}/v4/loadtracks") as resp:
        assert resp.status == 400


async def test_decode_routes(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    weird = TrackInfo(identifier="x\x00y", title="\U0001f3b5\x00", author="a", length=1)
    weird_encoded = encode_track(weird)
    async with http.get(f"{node.url}/v4/decodetrack", params={"encodedTrack": RICK_V2}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["encoded"] == RICK_V2
    assert body["info"]["title"] == RICK.title
    assert body["info"]["artworkUrl"] is None
    async with http.get(f"{node.url}/v4/decodetrack", params={"track": weird_encoded}) as resp:
        assert (await resp.json())["info"]["title"] == "\U0001f3b5\x00"
    async with http.post(f"{node.url}/v4/decodetracks", json=[RICK_V2, weird_encoded]) as resp:
        bodies = await resp.json()
    assert [b["info"]["identifier"] for b in bodies] == [RICK.identifier, "x\x00y"]

    async with http.get(f"{node.url}/v4/decodetrack", params={"encodedTrack": "QUJD"}) as resp:
        assert resp.status == 500
    async with http.post(f"{node.url}/v4/decodetracks", json=[RICK_V2, "nope"]) as resp:
        assert resp.status == 500
    async with http.post(f"{node.url}/v4/decodetracks", json=[]) as resp:
        assert resp.status == 400
    async with http.get(f"{node.url}/v4/decodetrack") as resp:
        assert resp.status == 400


async def test_fail_next_error_body(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    node.fail_next("/loadtracks", status=500, count=2)
    url = f"{node.url}/v4/loadtracks"
    async with http.get(url, params={"identifier": "a"}) as resp:
        body = await resp.json()
        assert resp.status == 500
        assert resp.headers["Lavalink-Api-Version"] == "4"
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert body["status"] == 500
    assert body["error"] == "Internal Server Error"
    assert body["path"] == "/v4/loadtracks"
    assert abs(body["timestamp"] - time.time() * 1000) < 60_000
    async with http.get(url, params={"identifier": "a", "trace": "true"}) as resp:
        body = await resp.json()
    assert "trace" in body
    assert body["status"] == 500
    async with http.get(url, params={"identifier": "a"}) as resp:
        assert resp.status == 200
    assert [r.status for r in node.requests] == [500, 500, 200]
    assert node.requests[1].query == {"identifier": "a", "trace": "true"}


# --- players --------------------------------------------------------------------------------


async def test_short_track_plays_to_the_end(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    status, body = await patch(http, url, {"voice": VOICE})
    assert status == 200
    assert body["voice"] == VOICE
    assert body["track"] is None
    status, body = await patch(
        http, url, {"track": {"encoded": encode_track(SHORT), "userData": {"requester": "42"}}}
    )
    assert status == 200
    assert body["track"]["info"]["title"] == "Short"
    assert body["state"]["connected"] is True
    player = node.player(GUILD)
    assert player is not None
    assert player.connected
    assert player.track == SHORT

    start = await sock.until("event", "TrackStartEvent")
    assert start["guildId"] == str(GUILD)
    assert start["track"]["userData"] == {"requester": "42"}
    positions: list[int] = []
    while True:
        msg = await sock.next()
        if msg["op"] == "playerUpdate":
            assert msg["guildId"] == str(GUILD)
            assert set(msg["state"]) == {"time", "position", "connected", "ping"}
            positions.append(msg["state"]["position"])
        if msg["op"] == "event":
            break
    assert msg["type"] == "TrackEndEvent"
    assert msg["reason"] == "finished"
    assert msg["track"]["userData"] == {"requester": "42"}
    assert msg["track"]["info"]["position"] == SHORT.length
    assert decode_track(msg["track"]["encoded"]).position == SHORT.length
    assert positions == sorted(positions)
    assert positions[-1] > positions[0]
    assert player.track is None
    assert player.position == 0
    assert await node.wait_for_event(GUILD, "TrackEndEvent") == msg
    # An idle player gets no periodic updates.
    with pytest.raises(TimeoutError):
        await sock.until("playerUpdate", timeout=0.3)
    await sock.ws.close()


async def test_replace_ends_old_before_new_starts(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(LONG)}})
    await sock.until("event", "TrackStartEvent")
    mark = len(node.sent)
    status, _ = await patch(http, url, {"track": {"identifier": RICK.uri}})
    assert status == 200
    end = await sock.until("event")
    start = await sock.until("event")
    assert (end["type"], end["reason"], end["track"]["info"]["title"]) == (
        "TrackEndEvent",
        "replaced",
        "Long",
    )
    assert (start["type"], start["track"]["info"]["title"]) == ("TrackStartEvent", RICK.title)
    types = [m.get("type") for _, m in node.sent[mark:] if m["op"] == "event"]
    assert types[:2] == ["TrackEndEvent", "TrackStartEvent"]

    # noReplace with a track playing: nothing happens, other fields ignored too.
    status, body = await patch(
        http, url, {"track": {"encoded": encode_track(SHORT)}, "paused": True}, noReplace="true"
    )
    assert status == 200
    assert body["track"]["info"]["title"] == RICK.title
    assert not body["paused"]

    # Stop.
    status, body = await patch(http, url, {"track": {"encoded": None}})
    assert body["track"] is None
    stopped = await sock.until("event")
    assert (stopped["type"], stopped["reason"]) == ("TrackEndEvent", "stopped")
    await sock.ws.close()


async def test_no_voice_means_no_progress(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"track": {"encoded": encode_track(SHORT)}})
    start = await sock.until("event", "TrackStartEvent")  # starts even without voice
    assert start["track"]["info"]["position"] == 0
    update = await sock.until("playerUpdate")
    assert update["state"]["connected"] is False
    assert update["state"]["ping"] == -1
    await asyncio.sleep(0.3)  # 15 s of track time at time_scale 50, if it were advancing
    player = node.player(GUILD)
    assert player is not None
    assert player.position == 0
    assert player.track == SHORT
    assert not node.events(GUILD, "TrackEndEvent")

    # Voice arrives: a playerUpdate says connected, the clock runs, the track finishes.
    await patch(http, url, {"voice": VOICE})
    end = await sock.until("event", "TrackEndEvent")
    assert end["reason"] == "finished"
    assert any(m["op"] == "playerUpdate" and m["state"]["connected"] for m in sock.seen)
    await sock.ws.close()


async def test_pause_seek_volume_filters_and_end_time(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(LONG)}})
    _, body = await patch(http, url, {"paused": True, "position": 100_000, "volume": 5000})
    assert body["paused"] is True
    assert body["volume"] == 1000
    player = node.player(GUILD)
    assert player is not None
    frozen = player.position
    assert frozen == 100_000
    await asyncio.sleep(0.1)
    assert player.position == frozen
    _, body = await patch(http, url, {"volume": -5, "paused": False, "endTime": 105_000})
    assert body["volume"] == 0
    end = await sock.until("event", "TrackEndEvent")  # 5 s of track at x50 = 0.1 s
    assert end["reason"] == "finished"
    assert end["track"]["info"]["position"] == 105_000

    _, body = await patch(
        http,
        url,
        {"filters": {"timescale": {"speed": 2.0}, "equalizer": [{"band": 3}]}},
    )
    assert body["filters"]["timescale"] == {"speed": 2.0, "pitch": 1.0, "rate": 1.0}
    assert body["filters"]["equalizer"] == [{"band": 3, "gain": 1.0}]
    _, body = await patch(http, url, {"filters": {}})
    assert body["filters"] == {}
    status, _ = await patch(http, url, {"filters": {"equalizer": [{"band": 15, "gain": 0}]}})
    assert status == 500
    await sock.ws.close()


async def test_patch_validation(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    url = players_url(node, sid)
    enc = encode_track(SHORT)
    bad: list[dict[str, Any]] = [
        {"track": {"encoded": enc, "identifier": RICK.uri}},
        {"track": {"encoded": enc}, "encodedTrack": enc},
        {"encodedTrack": enc, "identifier": RICK.uri},
        {"voice": {k: v for k, v in VOICE.items() if k != "channelId"}},
        {"voice": {**VOICE, "token": " "}},
        {"endTime": 0},
        {"volume": "loud"},
        {"track": {"identifier": PLAYLIST_URL}},
        {"track": {"identifier": "https://example.com/nothing"}},
        {"track": {"identifier": BLOCKED}},
    ]
    for body in bad:
        status, error = await patch(http, url, body)
        assert status == 400, body
        assert error["status"] == 400
        assert error["path"] == f"/v4/sessions/{sid}/players/{GUILD}"
    assert not node.events(GUILD)
    status, _ = await patch(http, url, {"track": {"encoded": "QUJD"}})
    assert status == 500
    status, _ = await patch(http, url, {"voice": {**VOICE, "channelId": "abc"}})
    assert status == 500
    status, error = await patch(http, players_url(node, "nosuchsession0000"), {"volume": 1})
    assert (status, error["message"]) == (404, "Session not found")
    status, _ = await patch(http, players_url(node, sid, "notanumber"), {"volume": 1})
    assert status == 400
    async with http.get(players_url(node, sid, 1)) as resp:
        assert resp.status == 404
        assert (await resp.json())["message"] == "Player not found"

    # Deprecated top-level encodedTrack still plays; DELETE stops it and answers 204.
    status, body = await patch(http, url, {"encodedTrack": enc, "voice": VOICE})
    assert status == 200
    assert body["track"]["info"]["identifier"] == SHORT.identifier
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert [p["guildId"] for p in await resp.json()] == [str(GUILD)]
    async with http.delete(url) as resp:
        assert resp.status == 204
    end = await sock.until("event", "TrackEndEvent")
    assert end["reason"] == "stopped"
    closed = await sock.until("event", "WebSocketClosedEvent")
    assert (closed["code"], closed["byRemote"]) == (1000, False)
    assert node.player(GUILD) is None
    async with http.delete(url) as resp:
        assert resp.status == 204
    await sock.ws.close()


async def test_test_controls(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(STREAM)}})
    await sock.until("event", "TrackStartEvent")
    await node.send_event(GUILD, "TrackExceptionEvent", message="boom", severity="fault")
    exc = await sock.until("event")
    assert exc["type"] == "TrackExceptionEvent"
    assert exc["exception"]["message"] == "boom"
    assert exc["exception"]["severity"] == "fault"
    assert exc["track"]["info"]["isStream"] is True
    await node.send_event(GUILD, "TrackStuckEvent")
    assert (await sock.until("event"))["thresholdMs"] == 10_000
    await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="Session invalid")
    closed = await sock.until("event")
    assert (closed["code"], closed["reason"], closed["byRemote"]) == (4006, "Session invalid", True)
    update = await sock.until("playerUpdate")
    assert update["state"]["connected"] is False
    player = node.player(GUILD)
    assert player is not None
    assert not player.connected
    await node.end_track(GUILD, "loadFailed")
    end = await sock.until("event")
    assert (end["type"], end["reason"]) == ("TrackEndEvent", "loadFailed")

    await node.send_raw("{not json")
    raw = await sock.ws.receive(timeout=5)
    while raw.data != "{not json":
        raw = await sock.ws.receive(timeout=5)

    node.voice_check = lambda _guild, voice: 4006 if voice["token"] == "stale" else None
    await patch(http, url, {"voice": {**VOICE, "token": "stale"}})
    closed = await sock.until("event", "WebSocketClosedEvent")
    assert closed["code"] == 4006
    assert not player.connected
    await sock.ws.close()

    node.refuse_websocket(1, status=503)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(node, http)
    assert info.value.status == 503
    sock, _ = await connect(node, http)
    await sock.ws.close()


# --- sessions: resume, expiry, crash --------------------------------------------------------


async def test_resume_replays_the_backlog_in_order(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    async with http.patch(
        f"{node.url}/v4/sessions/{sid}", json={"resuming": True, "timeout": 30}
    ) as resp:
        assert await resp.json() == {"resuming": True, "timeout": 30}
    url = players_url(node, sid)
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(SHORT)}})
    await sock.until("event", "TrackStartEvent")

    await node.drop_connections()
    session = node.sessions[sid]
    assert session.paused
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert resp.status == 404  # paused sessions are not addressable
    # The player keeps playing: the short track finishes while nobody listens.
    await node.wait_for(lambda: node.player(GUILD).track is None, what="track end")  # type: ignore[union-attr]
    await asyncio.sleep(0.6)  # a stats tick is queued too; playerUpdates are dropped
    kinds = [(m["op"], m.get("type")) for m in session.queued]
    assert kinds[0] == ("event", "TrackEndEvent")
    assert ("stats", None) in kinds
    assert all(op != "playerUpdate" for op, _ in kinds)
    backlog = list(session.queued)

    sock2, ready2 = await connect(node, http, **{"Session-Id": sid})
    assert ready2 == {"op": "ready", "resumed": True, "sessionId": sid}
    assert sock2.ws._response.headers["Session-Resumed"] == "true"
    replayed = [await sock2.next() for _ in backlog]
    assert replayed == backlog
    update = await sock2.next()
    assert update["op"] == "playerUpdate"
    assert update["guildId"] == str(GUILD)
    assert not session.paused
    assert session.queued == []
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert resp.status == 200
    # Resuming stays enabled across a resume.
    assert session.resuming
    await sock2.ws.close()
    await node.wait_for(lambda: node.sessions[sid].paused, what="paused again")


async def test_resume_timeout_destroys_the_session(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    async with http.patch(f"{node.url}/v4/sessions/{sid}", json={"resuming": True, "timeout": 1}):
        pass
    await patch(http, players_url(node, sid), {"voice": VOICE})
    await sock.ws.close()
    await node.wait_for(lambda: sid in node.sessions and node.sessions[sid].paused, what="pause")
    await node.wait_for(lambda: sid not in node.sessions, timeout=5, what="expiry")
    assert node.player(GUILD) is None
    sock, ready = await connect(node, http, **{"Session-Id": sid})
    assert ready["resumed"] is False
    assert ready["sessionId"] != sid
    assert sock.ws._response.headers["Session-Resumed"] == "false"
    await sock.ws.close()


async def test_closing_without_resuming_destroys_at_once(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    await patch(http, players_url(node, sid), {"voice": VOICE})
    await sock.ws.close()
    await node.wait_for(lambda: sid not in node.sessions, what="session destroyed")
    assert node.player(GUILD) is None


async def test_a_paused_session_is_addressable_only_once_some_socket_resumes_it(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    # Lavalink's SocketServer: REST finds only sessions held by a socket, so a paused one
    # answers 404 to DELETE and PATCH too; any socket that resumes it may address it, a
    # second socket asking for it meanwhile gets a new session, and the timeout set while
    # it is held is the one its next pause runs.
    other = 817327181659111455
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    await patch(http, f"{node.url}/v4/sessions/{sid}", {"resuming": True, "timeout": 30})
    for guild in (GUILD, other):
        await patch(http, players_url(node, sid, guild), {"voice": VOICE})
    await sock.ws.close()
    await node.wait_for(lambda: node.sessions[sid].paused, what="paused")
    for method, url in (
        ("DELETE", players_url(node, sid)),
        ("PATCH", f"{node.url}/v4/sessions/{sid}"),
        ("GET", players_url(node, sid)),
    ):
        async with http.request(method, url, json={"timeout": 1}) as resp:
            assert resp.status == 404
            assert (await resp.json())["message"] == "Session not found"
    assert set(node.sessions[sid].players) == {GUILD, other}

    holder, ready = await connect(node, http, **{"Session-Id": sid})
    assert ready["resumed"] is True
    second, fresh = await connect(node, http, **{"Session-Id": sid})
    assert fresh["resumed"] is False  # held elsewhere: a brand-new session instead
    assert fresh["sessionId"] != sid
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert resp.status == 200  # the held one answers; a gone one would not
    await second.ws.close()
    await node.wait_for(lambda: fresh["sessionId"] not in node.sessions, what="fresh one ended")
    async with http.delete(players_url(node, sid)) as resp:
        assert resp.status == 204
    async with http.delete(players_url(node, sid)) as resp:
        assert resp.status == 204  # no such player any more: still 204
    status, body = await patch(http, f"{node.url}/v4/sessions/{sid}", {"timeout": 1})
    assert (status, body) == (200, {"resuming": True, "timeout": 1})
    await holder.ws.close()
    await node.wait_for(lambda: node.sessions[sid].paused, what="paused again")
    assert set(node.sessions[sid].players) == {other}
    await node.wait_for(lambda: sid not in node.sessions, timeout=3, what="the new timeout")


async def test_kill_and_restart_on_the_same_port(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    async with http.patch(f"{node.url}/v4/sessions/{sid}", json={"resuming": True}):
        pass
    await patch(http, players_url(node, sid), {"voice": VOICE})
    url = node.url
    await node.kill()
    msg = await next_non_text(sock.ws)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert sock.ws.close_code != 1001  # no close frame from a crashed process
    assert node.sessions == {}
    with pytest.raises(aiohttp.ClientConnectionError):
        await connect(node, http)

    await node.start()
    assert node.url == url
    sock, ready = await connect(node, http, **{"Session-Id": sid})
    assert ready["resumed"] is False
    assert ready["sessionId"] != sid
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert resp.status == 404

    # A graceful stop closes with 1001 and forgets everything too.
    await node.stop()
    msg = await next_non_text(sock.ws)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1001
    assert node.sessions == {}
    await node.start()
    assert node.url == url


async def test_end_time_null_keeps_the_marker_and_wait_for_times_out(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(
        http,
        url,
        {"voice": VOICE, "track": {"encoded": encode_track(LONG)}, "paused": True, "endTime": 5000},
    )
    player = node.player(GUILD)
    assert player is not None
    assert player.paused  # an explicit ``paused`` with a new track preloads paused
    assert player.end_time == 5000
    await patch(http, url, {"endTime": None})  # code: null does not clear the marker
    assert player.end_time == 5000
    status, error = await patch(http, url, {"volume": 1}, noReplace="maybe")
    assert status == 400
    assert error["status"] == 400
    with pytest.raises(AssertionError, match="timed out waiting for the impossible"):
        await node.wait_for(lambda: False, timeout=0.05, what="the impossible")
    await patch(http, url, {"paused": False})
    end = await sock.until("event", "TrackEndEvent")
    assert end["reason"] == "finished"
    assert end["track"]["info"]["position"] == 5000
    await sock.ws.close()


# --- route planner and injected answers -----------------------------------------------------


async def test_route_planner_disabled_and_each_class(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    base = f"{node.url}/v4/routeplanner"
    async with http.get(f"{base}/status") as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    async with http.post(f"{base}/free/all") as resp:
        assert resp.status == 500
        assert (await resp.json())["message"] == "Can't access disabled route planner"
    async with http.post(f"{base}/free/address", json={"address": "10.0.0.1"}) as resp:
        assert resp.status == 500
    async with http.post(f"{base}/free/address", data=b"{", headers=JSON) as resp:
        assert resp.status == 400  # the body is read before the planner is looked at

    extra = {
        "RotatingIpRoutePlanner": {"rotateIndex", "ipIndex", "currentAddress"},
        "NanoIpRoutePlanner": {"currentAddressIndex"},
        "RotatingNanoIpRoutePlanner": {"blockIndex", "currentAddressIndex"},
        "BalancingIpRoutePlanner": set(),
    }
    for kind, fields in extra.items():
        node.route_planner = RoutePlanner(kind=kind, ip_block="2001:db8::/48")
        async with http.get(f"{base}/status") as resp:
            assert resp.status == 200
            status = await resp.json()
        assert status["class"] == kind
        details = status["details"]
        assert set(details) == {"ipBlock", "failingAddresses"} | fields
        assert details["ipBlock"] == {"type": "Inet6Address", "size": str(2**80)}
        assert all(isinstance(details[f], str) for f in fields)
    with pytest.raises(ValueError, match="unknown route planner"):
        RoutePlanner(kind="FancyPlanner")


async def test_route_planner_frees_addresses(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    base = f"{node.url}/v4/routeplanner"
    planner = node.route_planner = RoutePlanner(ip_block="10.0.0.0/24")
    planner.fail("10.0.0.7", when_ms=1_573_520_707_545)
    planner.fail("10.0.0.8")
    async with http.get(f"{base}/status") as resp:
        details = (await resp.json())["details"]
    assert details["ipBlock"] == {"type": "Inet4Address", "size": "256"}
    assert details["currentAddress"] == "/10.0.0.0"
    first = details["failingAddresses"][0]
    assert first == {
        "failingAddress": "/10.0.0.7",
        "failingTimestamp": 1_573_520_707_545,
        "failingTime": "Tue Nov 12 01:05:07 UTC 2019",
    }
    async with http.post(f"{base}/free/address", json={"address": "10.0.0.7"}) as resp:
        assert resp.status == 204
    assert list(planner.failing) == ["/10.0.0.8"]
    async with http.post(f"{base}/free/address", json={"address": "10.0.0.99"}) as resp:
        assert resp.status == 204  # not failing: still fine
    async with http.post(f"{base}/free/address", json={"address": "no such host"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"].startswith("Invalid address: no such host")
    async with http.post(f"{base}/free/address", json={"ip": "10.0.0.8"}) as resp:
        assert resp.status == 400
    async with http.post(f"{base}/free/all") as resp:
        assert resp.status == 204
    assert planner.failing == {}


async def test_answer_next_and_delay_next(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    node.answer_next("/v4/info", b'{"version": trunc', count=2)
    for _ in range(2):
        async with http.get(f"{node.url}/v4/info") as resp:
            assert resp.status == 200
            assert resp.headers["Lavalink-Api-Version"] == "4"
            assert await resp.read() == b'{"version": trunc'
    async with http.get(f"{node.url}/v4/info") as resp:
        assert (await resp.json())["version"]["semver"] == "4.2.2"
    # Only the given method matches; auth still comes first.
    node.answer_next("/v4/stats", "teapot", status=418, method="POST", content_type="text/plain")
    async with http.get(f"{node.url}/v4/stats") as resp:
        assert resp.status == 200
    async with aiohttp.ClientSession() as bare, bare.post(f"{node.url}/v4/stats") as resp:
        assert resp.status == 401
    async with http.post(f"{node.url}/v4/stats") as resp:
        assert (resp.status, await resp.text()) == (418, "teapot")

    node.delay_next("/version", 0.3)
    started = time.monotonic()
    async with http.get(f"{node.url}/version") as resp:
        assert await resp.text() == "4.2.2"
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    async with http.get(f"{node.url}/version") as resp:
        assert resp.status == 200
    assert time.monotonic() - started < 0.3


async def test_voice_patch_blocks_for_the_connect_attempt(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    node.voice_connect_delay = 0.3
    started = time.monotonic()
    status, body = await patch(http, url, {"voice": VOICE})
    assert status == 200
    assert body["state"]["connected"] is True
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()  # the same values again: a no-op, answered at once
    await patch(http, url, {"voice": VOICE})
    await patch(http, url, {"volume": 50})
    assert time.monotonic() - started < 0.3
    status, _ = await patch(http, url, {"voice": {**VOICE, "channelId": "x"}})
    assert status == 500  # a non-numeric channel fails without a connect attempt
    await sock.ws.close()


async def test_identical_voice_reconnects_only_a_closed_voice_socket(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    """Lavalink reconnects when there is no connection, the voice socket is closed, or a value
    differs; identical values on a live connection are a no-op (no close event)."""
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(LONG)}})
    player = node.player(GUILD)
    assert player is not None
    assert player.connected
    mark = len(node.sent)
    await patch(http, url, {"voice": VOICE})
    closes = [m for _, m in node.sent[mark:] if m.get("type") == "WebSocketClosedEvent"]
    assert not closes  # the live voice socket was left alone

    await node.send_event(GUILD, "WebSocketClosedEvent", code=4015, reason="crashed")
    closed = await sock.until("event", "WebSocketClosedEvent")
    assert (closed["code"], closed["byRemote"]) == (4015, True)
    update = await sock.until("playerUpdate")
    assert update["state"]["connected"] is False
    assert not player.connected
    status, body = await patch(http, url, {"voice": VOICE})  # the very same values
    assert status == 200
    assert body["state"]["connected"] is True
    while not (await sock.until("playerUpdate"))["state"]["connected"]:
        pass  # updates sent before the PATCH may still be buffered
    await sock.ws.close()


# --- NodeLink-like mode and divergence injections ---------------------------------------------


@pytest.mark.parametrize("echo", [True, False])
async def test_echo_user_data_on_and_off(
    no_swallowed_errors: None, http: aiohttp.ClientSession, echo: bool
) -> None:
    """Lavalink echoes ``userData`` on every Track object; NodeLink-like servers drop the key."""
    fake = FakeLavalink(
        catalogue=make_catalogue(),
        player_update_interval=0.05,
        time_scale=50.0,
        echo_user_data=echo,
    )
    assert fake.echo_user_data is echo
    async with fake as node:
        sock, ready = await connect(node, http)
        sid = ready["sessionId"]
        url = players_url(node, sid)
        data = {"requester": "42"}
        tracks: list[dict[str, Any]] = []
        _, body = await patch(
            http, url, {"voice": VOICE, "track": {"encoded": encode_track(LONG), "userData": data}}
        )
        tracks.append(body["track"])
        tracks.append((await sock.until("event", "TrackStartEvent"))["track"])
        _, body = await patch(http, url, {"track": {"userData": {"requester": "43"}}})
        tracks.append(body["track"])
        data = {"requester": "43"}
        async with http.get(url) as resp:
            tracks.append((await resp.json())["track"])
        async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
            tracks.append((await resp.json())[0]["track"])
        await node.send_event(GUILD, "TrackExceptionEvent", message="boom")
        tracks.append((await sock.until("event", "TrackExceptionEvent"))["track"])
        await node.send_event(GUILD, "TrackStuckEvent")
        tracks.append((await sock.until("event", "TrackStuckEvent"))["track"])
        player = node.player(GUILD)
        assert player is not None
        assert player.user_data == data  # stored either way
        await node.end_track(GUILD, "loadFailed")
        tracks.append((await sock.until("event", "TrackEndEvent"))["track"])

        assert len(tracks) == 8
        for track in tracks:
            assert track["info"]["title"] == LONG.title
            assert "pluginInfo" in track
            if echo:
                assert track["userData"] in ({"requester": "42"}, {"requester": "43"})
            else:
                assert "userData" not in track
        if echo:
            assert [t["userData"]["requester"] for t in tracks] == ["42"] * 2 + ["43"] * 6
        # Load results are not Track objects of a player: unchanged in both modes.
        async with http.get(
            f"{node.url}/v4/loadtracks", params={"identifier": RICK.identifier}
        ) as resp:
            assert (await resp.json())["data"]["userData"] == {}
        await sock.ws.close()


async def test_echo_user_data_is_a_live_attribute(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    track = {"encoded": encode_track(LONG), "userData": {"entry": 1}}
    _, body = await patch(http, url, {"track": track})
    assert body["track"]["userData"] == {"entry": 1}
    node.echo_user_data = False
    async with http.get(url) as resp:
        assert "userData" not in (await resp.json())["track"]
    await sock.ws.close()


def events_since(node: FakeLavalink, mark: int) -> list[dict[str, Any]]:
    return [m for _, m in node.sent[mark:] if m["op"] == "event"]


async def playing(
    node: FakeLavalink, http: aiohttp.ClientSession, info: TrackInfo = LONG
) -> tuple[Socket, str]:
    """A connected player playing ``info`` with userData, its TrackStartEvent consumed."""
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    track = {"encoded": encode_track(info), "userData": {"entry": 1}}
    status, _ = await patch(http, url, {"voice": VOICE, "track": track})
    assert status == 200
    await sock.until("event", "TrackStartEvent")
    return sock, url


async def test_drop_player_is_silent_and_looks_unknown(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, url = await playing(node, http)
    sid = url.split("/")[-3]
    mark = len(node.sent)
    node.drop_player(GUILD)
    assert node.player(GUILD) is None
    async with http.get(url) as resp:
        assert resp.status == 404
        assert (await resp.json())["message"] == "Player not found"
    async with http.get(f"{node.url}/v4/sessions/{sid}/players") as resp:
        assert await resp.json() == []
    await asyncio.sleep(0.3)  # several update intervals, and the whole track at x50
    assert all(m["op"] == "stats" for _, m in node.sent[mark:])
    with pytest.raises(AssertionError):
        node.drop_player(GUILD)

    # The client's repair: a PATCH creates a fresh player, idle and without voice.
    _, body = await patch(http, url, {"volume": 50})
    assert body["track"] is None
    assert body["state"]["connected"] is False
    assert body["voice"]["sessionId"] == ""
    await sock.ws.close()


async def test_swap_track_is_silent(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    sock, url = await playing(node, http)
    player = node.player(GUILD)
    assert player is not None
    node.stall(GUILD)
    mark = len(node.sent)
    node.swap_track(GUILD, RICK, position=30_000)
    assert player.track == RICK
    assert player.user_data == {}
    assert not player.stalled
    async with http.get(url) as resp:
        body = await resp.json()
    assert body["track"]["info"]["identifier"] == RICK.identifier
    assert body["track"]["userData"] == {}
    assert 30_000 <= body["track"]["info"]["position"] < 60_000
    assert decode_track(body["track"]["encoded"]).title == RICK.title
    # The periodic playerUpdate goes on, from the new position and moving (older ones may
    # still be buffered in the socket).
    while (first := (await sock.until("playerUpdate"))["state"]["position"]) < 30_000:
        pass
    while (later := (await sock.until("playerUpdate"))["state"]["position"]) <= first:
        pass
    assert 30_000 <= first < later
    assert events_since(node, mark) == []

    # Paused stays paused; a swapped-in track ends by itself like any other, with its info.
    node.set_paused(GUILD, True)
    node.swap_track(GUILD, SHORT, position=9_000)
    assert player.paused
    await asyncio.sleep(0.1)
    assert player.position == 9_000
    assert events_since(node, mark) == []
    node.set_paused(GUILD, False)
    end = await sock.until("event", "TrackEndEvent")
    assert (end["reason"], end["track"]["info"]["title"]) == ("finished", SHORT.title)
    assert end["track"]["userData"] == {}
    assert [e["type"] for e in events_since(node, mark)] == ["TrackEndEvent"]

    # An idle player starts playing (and reporting) without a TrackStartEvent.
    mark = len(node.sent)
    node.swap_track(GUILD, LONG)
    update = await sock.until("playerUpdate")
    assert update["state"]["connected"] is True
    assert player.track == LONG
    assert events_since(node, mark) == []
    await sock.ws.close()


async def test_set_paused_is_silent(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    sock, url = await playing(node, http)
    player = node.player(GUILD)
    assert player is not None
    requests, mark = len(node.requests), len(node.sent)
    node.set_paused(GUILD, True)
    frozen = player.position
    await asyncio.sleep(0.1)
    assert player.position == frozen
    async with http.get(url) as resp:
        body = await resp.json()
    assert body["paused"] is True
    assert body["state"]["position"] == frozen
    node.set_paused(GUILD, True)  # already paused: nothing changes
    node.set_paused(GUILD, False)
    assert frozen <= player.position < frozen + 1_000  # from where it froze (x50: 20 ms)
    await node.wait_for(lambda: player.position > frozen, what="the clock to run again")
    assert not player.paused
    assert [r.method for r in node.requests[requests:]] == ["GET"]
    assert events_since(node, mark) == []
    updates = [m for _, m in node.sent[mark:] if m["op"] == "playerUpdate"]
    assert all(m["state"]["connected"] for m in updates)  # only the periodic ones
    await sock.ws.close()


async def test_stall_is_cleared_by_a_new_track_not_by_a_seek(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, url = await playing(node, http)
    player = node.player(GUILD)
    assert player is not None
    node.stall(GUILD)
    frozen = player.position
    await asyncio.sleep(0.1)
    assert player.position == frozen
    assert player.connected

    _, body = await patch(http, url, {"position": 50_000})  # a seek: still stuck
    assert body["state"]["position"] == 50_000
    await asyncio.sleep(0.1)
    assert player.stalled
    assert player.position == 50_000
    _, body = await patch(http, url, {"paused": True})
    _, body = await patch(http, url, {"paused": False, "voice": {**VOICE, "token": "new"}})
    await asyncio.sleep(0.1)
    assert player.stalled
    assert player.position == 50_000

    mark = len(node.sent)
    _, body = await patch(http, url, {"track": {"encoded": encode_track(LONG)}, "position": 1})
    assert not player.stalled
    await node.wait_for(lambda: player.position > 1_000, what="the reloaded track to run")
    types = [(e["type"], e.get("reason")) for e in events_since(node, mark)]
    assert types == [("TrackEndEvent", "replaced"), ("TrackStartEvent", None)]
    await sock.ws.close()


async def test_close_voice_then_a_new_or_identical_voice_state_reconnects(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    sock, url = await playing(node, http)
    player = node.player(GUILD)
    assert player is not None
    await node.wait_for(lambda: player.position > 1_000, what="the track to run")
    mark = len(node.sent)
    node.close_voice(GUILD)
    closed = await sock.until("event", "WebSocketClosedEvent")
    assert (closed["code"], closed["reason"], closed["byRemote"]) == (4014, "Disconnected.", True)
    assert closed["guildId"] == str(GUILD)
    update = await sock.until("playerUpdate")
    assert update["state"]["connected"] is False
    frozen = player.position
    assert update["state"]["position"] == frozen
    await asyncio.sleep(0.3)  # 15 s of track time at x50, were the clock running
    assert player.position == frozen
    # The same two messages, back to back, as send_event("WebSocketClosedEvent") sends.
    assert [m["op"] for _, m in node.sent[mark : mark + 2]] == ["event", "playerUpdate"]

    # A new complete voice state (the bot re-joined): connected, running from where it froze.
    mark = len(node.sent)
    moved = {**VOICE, "sessionId": "othervoicesession", "token": "othertoken"}
    status, body = await patch(http, url, {"voice": moved})
    assert status == 200
    assert body["state"]["connected"] is True
    assert body["voice"] == moved
    assert frozen <= body["state"]["position"] < frozen + 10_000
    await node.wait_for(lambda: player.position > frozen, what="the clock to run again")
    assert events_since(node, mark) == []  # no 1000 close: the old socket was already closed
    while not (await sock.until("playerUpdate"))["state"]["connected"]:
        pass

    # Closed again, the identical values reconnect too.
    node.close_voice(GUILD, code=4006, reason="Session is no longer valid.")
    closed = await sock.until("event", "WebSocketClosedEvent")
    assert (closed["code"], closed["reason"]) == (4006, "Session is no longer valid.")
    assert not player.connected
    frozen = player.position
    await asyncio.sleep(0.3)
    assert player.position == frozen
    status, body = await patch(http, url, {"voice": moved})
    assert body["state"]["connected"] is True
    assert frozen <= body["state"]["position"] < frozen + 10_000
    await node.wait_for(lambda: player.position > frozen, what="the clock to run again")
    await sock.ws.close()


# --- recording for long load runs -----------------------------------------------------------


async def test_sent_hooks_see_every_message_in_sent_order(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    """A hook is told each message as it goes out, exactly what ``sent`` records."""
    heard: list[tuple[str, dict[str, Any]]] = []
    node.sent_hooks.append(lambda sid, message: heard.append((sid, message)))
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(SHORT)}})
    await sock.until("event", "TrackEndEvent")  # 10 s at 50x: start, updates, end
    assert heard == node.sent
    assert [m["op"] for _, m in heard[:2]] == ["ready", "stats"]
    assert {sid for sid, _ in heard} == {ready["sessionId"]}
    kinds = [m.get("type") for _, m in heard if m["op"] == "event"]
    assert kinds == ["TrackStartEvent", "TrackEndEvent"]
    assert sum(m["op"] == "playerUpdate" for _, m in heard) >= 2


async def test_keep_sent_off_records_nothing_but_the_client_gets_everything(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    node.keep_sent = False
    heard: list[dict[str, Any]] = []
    node.sent_hooks.append(lambda _sid, message: heard.append(message))
    sock, ready = await connect(node, http)
    url = players_url(node, ready["sessionId"])
    await patch(http, url, {"voice": VOICE, "track": {"encoded": encode_track(SHORT)}})
    await sock.until("event", "TrackEndEvent")
    assert node.sent == []
    assert sock.seen == heard[: len(sock.seen)]
    assert [m.get("type") for m in sock.seen if m["op"] == "event"] == [
        "TrackStartEvent",
        "TrackEndEvent",
    ]


# --- paced reports (a long-running node's traffic) ------------------------------------------


def _one_text_frame(data: bytes) -> dict[str, Any]:
    """The message of ``data`` if it is exactly one unmasked text frame, else fail."""
    assert data[0] == 0x81, data[:2]  # FIN + text: not fragmented, not compressed
    size, header = data[1], 2
    if size == 126:
        size, header = int.from_bytes(data[2:4], "big"), 4
    assert len(data) == header + size, "one write = one whole frame, nothing more"
    message: dict[str, Any] = json.loads(data[header:])
    return message


async def test_staggered_reports_come_one_player_at_a_time(
    node: FakeLavalink, http: aiohttp.ClientSession
) -> None:
    """After ``stagger_player_updates`` each playing player reports once an interval on its
    own timer, the players evenly spread over it, each report written to the socket on its
    own (as Lavalink's per-player ``scheduleAtFixedRate``); an idle player stays silent."""
    sock, ready = await connect(node, http)
    sid = ready["sessionId"]
    guilds = [GUILD + i for i in range(3)]
    for gid in guilds:
        track = {"encoded": encode_track(STREAM)}
        status, _ = await patch(http, players_url(node, sid, gid), {"voice": VOICE, "track": track})
        assert status == 200
    status, _ = await patch(http, players_url(node, sid, GUILD + 9), {"voice": VOICE})
    assert status == 200
    loop = asyncio.get_running_loop()
    heard: list[tuple[float, dict[str, Any]]] = []
    nine = asyncio.Event()

    def hear(_sid: str, message: dict[str, Any]) -> None:
        if message["op"] == "playerUpdate":
            heard.append((loop.time(), message))
            if len(heard) == 9:
                nine.set()

    node.sent_hooks.append(hear)
    transport = node.sessions[sid]._transport
    assert transport is not None
    writes: list[bytes] = []
    real_write = transport.write

    def spy(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = spy  # type: ignore[method-assign]
    node.player_update_interval = interval = 0.6
    start = loop.time()
    assert node.stagger_player_updates(sid) == 3
    assert heard == []  # the call re-times; it sends nothing
    await asyncio.wait_for(nine.wait(), 10)
    reports = heard[:9]
    assert [int(m["guildId"]) for _, m in reports] == guilds * 3
    slot = interval / len(guilds)
    for j, (at, _) in enumerate(reports):
        due = start + (j + 1) * slot
        assert due <= at < due + slot / 2, f"report {j} at +{at - start:.3f} s, due +{j + 1} slots"
    written = [_one_text_frame(data) for data in writes]
    updates = [m for m in written if m["op"] == "playerUpdate"]
    assert updates[:9] == [m for _, m in reports]
    transport.write = real_write  # type: ignore[method-assign]
    await sock.ws.close()
