"""The bundled Lavalink client's REST half against the fake Lavalink node.

Every endpoint of the v4 API is called through :class:`bot.lavalink.rest.RestClient` (and the
ones a bot needs through :class:`~bot.lavalink.LavalinkClient`), and every way a call can fail
must come back as its own exception carrying Lavalink's message: what a user of the client
would otherwise see is a stack trace or a silent wrong answer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest

from bot import lavalink
from bot.lavalink import models
from bot.lavalink.rest import RestClient
from peers.fake_lavalink import ROUTE_PLANNER_CLASSES, Catalogue, FakeLavalink, RoutePlanner
from peers.tracks import TrackInfo, encode_track
from tests.lavalink.harness import DiscordStandIn, Recorder

GUILD = 817327181659111454
CHANNEL = 98765
BOT_USER = 42
VOICE = models.VoiceState("tok", "c-ams12-1a2b.discord.media:443", "voicesession", str(CHANNEL))
SONG = TrackInfo("song0000001", "A Song", "A Band", 30_000, uri="https://www.youtube.com/watch?v=s")
LONG = TrackInfo("long0000001", "Long", "A Band", 600_000, uri="https://www.youtube.com/watch?v=l")
# An identifier with every character that breaks an unencoded query string.
ODD_URI = "https://www.youtube.com/watch?v=odd&list=a+b#t=1 2"
ODD = TrackInfo("odd00000001", "Odd", "A Band", 10_000, uri=ODD_URI)
PLAYLIST = "https://www.youtube.com/playlist?list=PLx"
BLOCKED = "https://www.youtube.com/watch?v=blocked"


def plus_slash_track() -> TrackInfo:
    """A track whose Base64 holds both ``+`` and ``/`` (they break unencoded query strings)."""
    for n in range(10_000):
        info = TrackInfo(f"id{n:08d}", f"Title {n} ~~~ ???", "Artist >>>", 1000 + n)
        encoded = encode_track(info)
        if "+" in encoded and "/" in encoded:
            return info
    raise AssertionError("no such track")


def catalogue() -> Catalogue:
    cat = Catalogue()
    for info in (SONG, LONG, ODD):
        cat.add_track(info)
    cat.add_playlist(PLAYLIST, "Mix", [SONG, LONG], selected_track=1)
    cat.add_search("a song", [SONG, LONG])
    cat.add_error(BLOCKED, "This video is unavailable")
    return cat


@pytest.fixture
async def node() -> AsyncIterator[FakeLavalink]:
    fake = FakeLavalink(catalogue=catalogue(), time_scale=20.0, player_update_interval=0.1)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def rest(node: FakeLavalink, http: aiohttp.ClientSession) -> RestClient:
    return RestClient(http, node.url, node.password, timeout=2.0, voice_timeout=5.0)


@pytest.fixture
async def session(node: FakeLavalink, http: aiohttp.ClientSession) -> AsyncIterator[str]:
    """A Lavalink session id, from a websocket opened the way any client opens it."""
    headers = {"Authorization": node.password, "User-Id": str(BOT_USER)}
    async with http.ws_connect(f"{node.url}/v4/websocket", headers=headers) as ws:
        ready = json.loads((await ws.receive(timeout=5)).data)
        yield ready["sessionId"]


# --- node endpoints -------------------------------------------------------------------------


async def test_info_version_and_stats(rest: RestClient, session: str) -> None:
    info = await rest.info()
    assert info.version == models.VersionInfo("4.2.2", 4, 2, 2, None)
    assert info.git is not None
    assert info.git.commit == "e8503fd"
    assert info.build_time > 0
    assert "youtube" in info.source_managers
    assert "timescale" in info.filters
    assert info.plugins == (models.PluginMeta("youtube-plugin", "1.18.2"),)
    assert await rest.version() == "4.2.2"
    stats = await rest.stats()
    assert stats.frame_stats is None  # REST never carries frameStats
    assert stats.players == 0
    assert stats.memory.reservable > 0


# --- tracks ---------------------------------------------------------------------------------


async def test_loadtracks_all_five_types(rest: RestClient) -> None:
    track = await rest.load_tracks(SONG.uri or "")
    assert isinstance(track, lavalink.TrackResult)
    assert track.data.info.title == "A Song"
    assert track.data.info.is_seekable

    odd = await rest.load_tracks(ODD_URI)  # &, +, # and a space survive the query string
    assert isinstance(odd, lavalink.TrackResult)
    assert odd.data.info.identifier == ODD.identifier

    playlist = await rest.load_tracks(PLAYLIST)
    assert isinstance(playlist, lavalink.PlaylistResult)
    assert playlist.data.info == models.PlaylistInfo("Mix", 1)
    assert [t.info.title for t in playlist.data.tracks] == ["A Song", "Long"]

    search = await rest.load_tracks("ytsearch:A Song")
    assert isinstance(search, lavalink.SearchResult)
    assert [t.info.identifier for t in search.data] == [SONG.identifier, LONG.identifier]

    error = await rest.load_tracks(BLOCKED)
    assert isinstance(error, lavalink.ErrorResult)
    assert error.data.message == "This video is unavailable"
    assert error.data.severity == "common"

    assert await rest.load_tracks("ytsearch:nothing like it") == lavalink.EmptyResult()


async def test_decode_track_and_tracks(rest: RestClient, node: FakeLavalink) -> None:
    info = plus_slash_track()
    encoded = encode_track(info)
    track = await rest.decode_track(encoded)
    assert track.encoded == encoded
    assert (track.info.identifier, track.info.title, track.info.length) == (
        info.identifier,
        info.title,
        info.length,
    )
    assert track.user_data == {}

    tracks = await rest.decode_tracks([encode_track(LONG), encoded, encode_track(SONG)])
    assert [t.info.identifier for t in tracks] == [LONG.identifier, info.identifier, "song0000001"]
    assert node.requests[-1].json == [encode_track(LONG), encoded, encode_track(SONG)]

    sent = len(node.requests)
    assert await rest.decode_tracks([]) == ()  # Lavalink would answer 400: never asked
    assert len(node.requests) == sent

    for call in (rest.decode_track("QUJD"), rest.decode_tracks([encoded, "nope"])):
        with pytest.raises(lavalink.ServerError) as raised:
            await call
        assert raised.value.status == 500
        assert raised.value.message.startswith("Failed to decode track")


# --- players and sessions -------------------------------------------------------------------


async def test_player_get_update_destroy(
    rest: RestClient, node: FakeLavalink, session: str
) -> None:
    with pytest.raises(lavalink.NotFoundError) as raised:
        await rest.get_player(session, GUILD)
    assert raised.value.message == "Player not found"
    assert await rest.get_players(session) == ()

    player = await rest.update_player(
        session,
        GUILD,
        models.UpdatePlayer(
            track=models.TrackUpdate(encoded=encode_track(LONG), user_data={"entry": 7}),
            position=60_000,
            end_time=90_000,
            volume=1500,
            paused=True,
            filters=lavalink.Filters(timescale=lavalink.Timescale(speed=1.5)),
            voice=VOICE,
        ),
    )
    assert player.guild_id == GUILD
    assert player.track is not None
    assert player.track.info.identifier == LONG.identifier
    assert player.track.user_data == {"entry": 7}
    assert player.paused
    assert player.volume == 1000  # clamped by the node
    assert player.state.position == 60_000
    assert player.state.connected
    assert player.voice == VOICE
    assert player.filters["timescale"]["speed"] == 1.5
    fake_player = node.player(GUILD)
    assert fake_player is not None
    assert fake_player.end_time == 90_000

    # Seek and user data without a new track; the same player comes back from GET.
    await rest.update_player(
        session,
        GUILD,
        models.UpdatePlayer(position=5_000, track=models.TrackUpdate(user_data={"entry": 8})),
    )
    fetched = await rest.get_player(session, GUILD)
    assert fetched.state.position == 5_000
    assert fetched.track is not None
    assert fetched.track.user_data == {"entry": 8}
    assert [p.guild_id for p in await rest.get_players(session)] == [GUILD]

    await rest.destroy_player(session, GUILD)
    with pytest.raises(lavalink.NotFoundError):
        await rest.get_player(session, GUILD)
    await rest.destroy_player(session, GUILD)  # 204 again: no such player is fine


async def test_no_replace_keeps_the_playing_track_and_ignores_the_rest(
    rest: RestClient, node: FakeLavalink, session: str
) -> None:
    first = await rest.update_player(
        session,
        GUILD,
        models.UpdatePlayer(track=models.TrackUpdate(encoded=encode_track(LONG)), voice=VOICE),
        no_replace=True,  # nothing plays yet: the track starts
    )
    assert first.track is not None
    assert first.track.info.identifier == LONG.identifier
    kept = await rest.update_player(
        session,
        GUILD,
        models.UpdatePlayer(
            track=models.TrackUpdate(encoded=encode_track(SONG)), paused=True, end_time=1_000
        ),
        no_replace=True,
    )
    assert kept.track is not None
    assert kept.track.info.identifier == LONG.identifier
    assert not kept.paused  # the whole request returned early
    fake_player = node.player(GUILD)
    assert fake_player is not None
    assert fake_player.end_time is None
    assert node.requests[-1].query["noReplace"] == "true"
    replaced = await rest.update_player(
        session, GUILD, models.UpdatePlayer(track=models.TrackUpdate(encoded=encode_track(SONG)))
    )
    assert replaced.track is not None
    assert replaced.track.info.identifier == SONG.identifier
    assert node.requests[-1].query["noReplace"] == "false"


async def test_stop_and_update_session(rest: RestClient, node: FakeLavalink, session: str) -> None:
    await rest.update_player(
        session,
        GUILD,
        models.UpdatePlayer(track=models.TrackUpdate(encoded=encode_track(LONG)), voice=VOICE),
    )
    stopped = await rest.update_player(
        session, GUILD, models.UpdatePlayer(track=models.TrackUpdate(encoded=None))
    )
    assert stopped.track is None
    assert node.requests[-1].json == {"track": {"encoded": None}}
    assert await rest.update_session(session, resuming=True, timeout=30) == models.SessionInfo(
        True, 30
    )
    assert node.sessions[session].resuming
    assert node.sessions[session].timeout == 30


# --- route planner --------------------------------------------------------------------------


async def test_route_planner_disabled(rest: RestClient) -> None:
    assert await rest.route_planner_status() is None
    for call in (rest.free_all_addresses(), rest.free_address("10.0.0.1")):
        with pytest.raises(lavalink.ServerError) as raised:
            await call
        assert raised.value.message == "Can't access disabled route planner"


@pytest.mark.parametrize("kind", ROUTE_PLANNER_CLASSES)
async def test_route_planner_classes(rest: RestClient, node: FakeLavalink, kind: str) -> None:
    planner = node.route_planner = RoutePlanner(kind=kind, ip_block="10.0.0.0/24")
    planner.fail("10.0.0.7", when_ms=1_573_520_707_545)
    planner.fail("10.0.0.8")
    status = await rest.route_planner_status()
    assert status is not None
    assert status.class_name == kind
    assert type(status).__name__ == kind
    details = status.details
    assert details is not None
    assert details.ip_block == models.IpBlock("Inet4Address", "256")
    assert details.failing_addresses[0] == models.FailingAddress(
        "/10.0.0.7", 1_573_520_707_545, "Tue Nov 12 01:05:07 UTC 2019"
    )
    if isinstance(status, lavalink.RotatingIpRoutePlanner):
        assert status.details.current_address == "/10.0.0.0"
        assert status.details.ip_index == "0"
    elif isinstance(status, lavalink.NanoIpRoutePlanner | lavalink.RotatingNanoIpRoutePlanner):
        assert status.details.current_address_index == "0"

    await rest.free_address("10.0.0.7")
    assert list(planner.failing) == ["/10.0.0.8"]
    with pytest.raises(lavalink.BadRequestError) as raised:
        await rest.free_address("not an address")
    assert raised.value.message.startswith("Invalid address")
    await rest.free_all_addresses()
    assert planner.failing == {}


async def test_route_planner_null_class_and_unknown_class(
    rest: RestClient, node: FakeLavalink
) -> None:
    # What older builds and the docs send for "no planner".
    node.answer_next("/routeplanner/status", '{"class":null,"details":null}')
    assert await rest.route_planner_status() is None
    # A planner class from a newer server: the shared details still come through.
    node.answer_next(
        "/routeplanner/status",
        '{"class":"QuantumIpRoutePlanner","details":{"ipBlock":{"type":"Inet6Address",'
        '"size":"18446744073709551616"},"failingAddresses":[],"entanglement":"7"}}',
    )
    status = await rest.route_planner_status()
    assert isinstance(status, lavalink.GenericRoutePlanner)
    assert status.class_name == "QuantumIpRoutePlanner"
    assert status.details is not None
    assert status.details.ip_block.size == str(2**64)


# --- errors ---------------------------------------------------------------------------------


async def test_each_error_status_is_its_own_exception_with_lavalinks_message(
    node: FakeLavalink, http: aiohttp.ClientSession, rest: RestClient, session: str
) -> None:
    # 401: the node's auth filter answers an empty body for a missing password.
    node.answer_next("/v4/info", b"", status=401)
    with pytest.raises(lavalink.UnauthorizedError) as unauthorized:
        await rest.info()
    assert (unauthorized.value.status, unauthorized.value.message) == (401, "no password sent")

    wrong = RestClient(http, node.url, "not-the-password", timeout=2)
    with pytest.raises(lavalink.ForbiddenError) as forbidden:
        await wrong.version()
    assert forbidden.value.status == 403
    assert "not-the-password" not in str(forbidden.value)

    with pytest.raises(lavalink.NotFoundError) as missing:
        await rest.get_players("nosuchsession0000")
    assert missing.value.message == "Session not found"
    assert missing.value.path == "/v4/sessions/nosuchsession0000/players"

    with pytest.raises(lavalink.BadRequestError) as bad:
        await rest.update_player(session, GUILD, models.UpdatePlayer(end_time=0))
    assert bad.value.message == "End time must be greater than 0"
    bad_voice = models.VoiceState("tok", "host:443", "", "1")
    with pytest.raises(lavalink.BadRequestError) as bad:
        await rest.update_player(session, GUILD, models.UpdatePlayer(voice=bad_voice))
    assert "channelId must be provided" in bad.value.message

    node.fail_next("/v4/stats", status=503)
    with pytest.raises(lavalink.ServerError) as server:
        await rest.stats()
    assert server.value.status == 503
    assert server.value.message == "Injected failure (FakeLavalink.fail_next)"

    # A reverse proxy's HTML error page is still a ServerError, with readable text.
    node.answer_next("/v4/info", "<html>Bad Gateway</html>", status=502, content_type="text/html")
    with pytest.raises(lavalink.ServerError) as proxy:
        await rest.info()
    assert proxy.value.message == "<html>Bad Gateway</html>"


async def test_timeout_and_unreachable(node: FakeLavalink, http: aiohttp.ClientSession) -> None:
    quick = RestClient(http, node.url, node.password, timeout=0.2)
    node.delay_next("/v4/loadtracks", 1.0)
    started = time.monotonic()
    with pytest.raises(lavalink.RequestTimeoutError, match="GET /v4/loadtracks timed out"):
        await quick.load_tracks("ytsearch:a song")
    assert time.monotonic() - started < 0.9
    # The next call is unaffected.
    assert isinstance(await quick.load_tracks("ytsearch:a song"), lavalink.SearchResult)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = RestClient(http, f"http://127.0.0.1:{port}", node.password, timeout=2)
    with pytest.raises(lavalink.UnreachableError):
        await gone.info()


@pytest.mark.parametrize(
    "body",
    [
        b'{"version":{"semver":"4.2.2"',  # cut short
        b"[]",  # not an object
        b'{"version":"4.2.2"}',  # wrong shape
        b"",  # nothing at all
    ],
)
async def test_a_malformed_answer_is_a_protocol_error(
    node: FakeLavalink, rest: RestClient, body: bytes
) -> None:
    node.answer_next("/v4/info", body)
    with pytest.raises(lavalink.ProtocolError, match="GET /v4/info: malformed answer"):
        await rest.info()


async def test_unknown_fields_and_load_types(node: FakeLavalink, rest: RestClient) -> None:
    node.answer_next(
        "/v4/info",
        '{"version":{"semver":"4.3.0","major":4,"minor":3,"patch":0,"preRelease":null,'
        '"build":"abc","codename":"x"},"sourceManagers":["youtube"],"filters":[],'
        '"plugins":[{"name":"p","version":"1","homepage":"h"}],"quantum":{"a":1}}',
    )
    info = await rest.info()
    assert info.version.semver == "4.3.0"
    assert info.version.build == "abc"
    assert info.plugins == (models.PluginMeta("p", "1"),)
    # A load type this client does not know is a clear ProtocolError, not a crash.
    node.answer_next("/v4/loadtracks", '{"loadType":"hologram","data":{}}')
    with pytest.raises(lavalink.ProtocolError):
        await rest.load_tracks("x")


async def test_a_voice_update_gets_the_longer_timeout(
    node: FakeLavalink, http: aiohttp.ClientSession, session: str
) -> None:
    rest = RestClient(http, node.url, node.password, timeout=0.3, voice_timeout=3.0)
    node.voice_connect_delay = 0.6  # longer than the ordinary time-out
    started = time.monotonic()
    player = await rest.update_player(session, GUILD, models.UpdatePlayer(voice=VOICE))
    assert time.monotonic() - started >= 0.6
    assert player.state.connected
    node.delay_next("/players/", 0.6, method="PATCH")
    with pytest.raises(lavalink.RequestTimeoutError):
        await rest.update_player(session, GUILD, models.UpdatePlayer(volume=50))
    # The voice time-out is a bound too.
    short = RestClient(http, node.url, node.password, timeout=0.3, voice_timeout=0.4)
    moved = msgspec.structs.replace(VOICE, channel_id="11111")
    with pytest.raises(lavalink.RequestTimeoutError):
        await short.update_player(session, GUILD, models.UpdatePlayer(voice=moved))


# --- the same through LavalinkClient --------------------------------------------------------


async def started(
    node: FakeLavalink, **config: float
) -> tuple[lavalink.LavalinkClient, DiscordStandIn, Recorder]:
    discord = DiscordStandIn()
    client = lavalink.LavalinkClient(
        [lavalink.NodeConfig("main", node.url, node.password, **config)], discord
    )
    discord.client = client
    events = Recorder()
    client.set_listener(events)
    await client.start(BOT_USER)
    await events.wait(lavalink.SessionReady)
    return client, discord, events


async def test_client_playback_controls(node: FakeLavalink) -> None:
    client, _, events = await started(node)
    try:
        assert await client.get_player(GUILD) is None  # no player anywhere yet
        await client.connect(GUILD, CHANNEL)
        player = await client.play(GUILD, encode_track(LONG), position=1_000, end_time=3_000)
        assert player.track is not None
        fetched = await client.get_player(GUILD)
        assert fetched is not None
        assert fetched.voice.channel_id == str(CHANNEL)
        # The end marker stops the track with "finished" at the marker.
        await events.wait(lavalink.TrackEndEvent, timeout=5)
        end = events.of(lavalink.TrackEndEvent)[0]
        assert isinstance(end, lavalink.TrackEndEvent)
        assert end.reason is lavalink.TrackEndReason.FINISHED
        assert end.track.info.position == 3_000

        await client.play(GUILD, encode_track(LONG), user_data={"entry": 1})
        kept = await client.play(GUILD, encode_track(SONG), no_replace=True)
        assert kept.track is not None
        assert kept.track.info.identifier == LONG.identifier
        assert kept.track.user_data == {"entry": 1}
        with pytest.raises(ValueError, match="end_time"):
            await client.play(GUILD, encode_track(SONG), end_time=0)
        await asyncio.sleep(0.05)
        assert not [
            e
            for e in events.of(lavalink.TrackEndEvent)
            if isinstance(e, lavalink.TrackEndEvent)
            and e.reason is lavalink.TrackEndReason.REPLACED
        ]
    finally:
        await client.close()


async def test_client_node_calls(node: FakeLavalink) -> None:
    client, _, _ = await started(node)
    try:
        assert await client.version() == "4.2.2"
        assert (await client.info("main")).version.minor == 2
        assert (await client.fetch_stats()).players == 0
        tracks = await client.decode_tracks([encode_track(SONG), encode_track(LONG)])
        assert [t.info.title for t in tracks] == ["A Song", "Long"]
        assert (await client.decode_track(encode_track(SONG))).info.length == SONG.length
        assert await client.route_planner_status() is None
        node.route_planner = RoutePlanner(kind="BalancingIpRoutePlanner")
        node.route_planner.fail("10.0.0.3")
        status = await client.route_planner_status()
        assert isinstance(status, lavalink.BalancingIpRoutePlanner)
        assert [a.failing_address for a in status.details.failing_addresses] == ["/10.0.0.3"]
        await client.free_address("10.0.0.3")
        await client.free_all_addresses()
        assert node.route_planner.failing == {}
        with pytest.raises(lavalink.NoNodeAvailableError, match="no Lavalink node named"):
            await client.version("elsewhere")
    finally:
        await client.close()


async def test_client_connect_uses_the_nodes_voice_timeout(node: FakeLavalink) -> None:
    node.voice_connect_delay = 0.6
    client, _, _ = await started(node, request_timeout=0.3, voice_timeout=3.0)
    try:
        await client.connect(GUILD, CHANNEL)
        player = node.player(GUILD)
        assert player is not None
        assert player.connected
    finally:
        await client.close()


async def test_client_ignores_unknown_fields_in_events(node: FakeLavalink) -> None:
    client, _, events = await started(node)
    try:
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        await events.wait(lavalink.TrackStartEvent)
        player = await client.get_player(GUILD)
        assert player is not None
        track = json.loads(msgspec.json.encode(player.track))
        track["info"]["newInfoField"] = 1
        track["newTrackField"] = {"x": [1]}
        frame = {
            "op": "event",
            "type": "TrackStuckEvent",
            "guildId": str(GUILD),
            "track": track,
            "thresholdMs": 10_000,
            "newEventField": True,
        }
        await node.send_raw(json.dumps(frame))
        await events.wait(lavalink.TrackStuckEvent)
        stuck = events.of(lavalink.TrackStuckEvent)[0]
        assert isinstance(stuck, lavalink.TrackStuckEvent)
        assert stuck.threshold_ms == 10_000
        assert stuck.track.info.identifier == LONG.identifier
    finally:
        await client.close()


async def test_a_moved_player_keeps_its_filters_and_end_marker(node: FakeLavalink) -> None:
    """Filters belong to the player (they outlive a track); the end marker to the track."""
    async with FakeLavalink(catalogue=catalogue(), time_scale=20.0) as other:
        other.system_load = 0.9
        discord = DiscordStandIn()
        client = lavalink.LavalinkClient(
            [
                lavalink.NodeConfig("node0", node.url, node.password),
                lavalink.NodeConfig("node1", other.url, other.password),
            ],
            discord,
            failover_delay=0.2,
        )
        discord.client = client
        events = Recorder()
        client.set_listener(events)
        await client.start(BOT_USER)
        try:
            await events.wait(lavalink.SessionReady, count=2)
            other.send_stats()
            await events.wait(lavalink.StatsUpdate, count=3)
            await client.connect(GUILD, CHANNEL)
            assert client.node_of(GUILD) == "node0"
            slow = lavalink.Filters(timescale=lavalink.Timescale(speed=0.8))
            await client.set_filters(GUILD, slow)
            await client.play(GUILD, encode_track(SONG))
            await client.play(GUILD, encode_track(LONG), end_time=400_000)
            # Marking the same track again with no_replace changes nothing.
            await client.play(GUILD, encode_track(LONG), end_time=1_000, no_replace=True)

            await node.kill()
            await events.wait(lavalink.PlayerMoved, timeout=5)
            moved = other.player(GUILD)
            assert moved is not None
            assert moved.track is not None
            assert moved.track.identifier == LONG.identifier
            assert moved.filters["timescale"]["speed"] == 0.8
            assert moved.end_time == 400_000
        finally:
            await client.close()


async def test_client_pause_seek_and_volume(node: FakeLavalink) -> None:
    client, _, events = await started(node)
    try:
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        await events.wait(lavalink.TrackStartEvent)
        paused = await client.pause(GUILD)
        assert paused.paused
        frozen = paused.state.position
        await asyncio.sleep(0.1)
        assert (await client.seek(GUILD, 120_000)).state.position == 120_000
        fake = node.player(GUILD)
        assert fake is not None
        assert fake.position == 120_000  # still paused: the clock does not run
        assert frozen < 120_000
        assert not (await client.pause(GUILD, False)).paused
        assert (await client.set_volume(GUILD, 250)).volume == 250
        with pytest.raises(ValueError, match="volume"):
            await client.set_volume(GUILD, 1001)
        assert (await client.seek(GUILD, -5)).state.position >= 0
    finally:
        await client.close()
