"""Protocol details and races of the Lavalink client, each against the fake Lavalink node.

Every test here names one rule from the Lavalink v4 protocol (or one race between voice
events, failover, resuming and destroy) and shows the client keeps it: voice credentials
gathered in either order and never forwarded half-changed, re-sent after a voice server move
or a transient close, resuming re-enabled on every new session, a replayed backlog handled
like live events, an unresumed session's players reported gone, stale twins and leftovers of
a resumed session neither adopted nor listened to, a server too old (or of another major
version) refused, per-guild event order kept while one slow guild does not hold up the
others, and a failover that moves many guilds at once.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import lavalink
from peers.fake_lavalink import FakeLavalink
from peers.tracks import encode_track
from tests.lavalink.harness import (
    BOT_USER,
    CHANNEL,
    GUILD,
    LONG,
    SONG,
    VOICE_RECHECK,
    DiscordStandIn,
    Recorder,
    catalogue,
    client_playing,
    pool,
    resumable_session,
    started,
)

OTHER = GUILD + 1


def voice_patches(fake: FakeLavalink, guild_id: int) -> list[dict[str, str]]:
    """The ``voice`` objects of every player PATCH the fake received for ``guild_id``."""
    return [
        r.json["voice"]
        for r in fake.requests
        if r.method == "PATCH"
        and r.path.endswith(f"/players/{guild_id}")
        and isinstance(r.json, dict)
        and "voice" in r.json
    ]


async def test_voice_server_update_before_the_voice_state_forwards_once_complete(
    node: FakeLavalink,
) -> None:
    client, _, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        # Discord may send the server update first: nothing can go out until the session id
        # and channel arrive, and then all four values go in one request.
        client.handle_voice_server(GUILD, "tok-1", "early.discord.media:443")
        await asyncio.sleep(0.2)
        assert voice_patches(node, GUILD) == []
        client.handle_voice_state(GUILD, "sess-1", CHANNEL)
        await node.wait_for(lambda: voice_patches(node, GUILD) != [], what="voice PATCH")
        assert voice_patches(node, GUILD) == [
            {
                "token": "tok-1",
                "endpoint": "early.discord.media:443",
                "sessionId": "sess-1",
                "channelId": str(CHANNEL),
            }
        ]
    finally:
        await client.close()


async def test_a_null_endpoint_then_a_new_one_forwards_the_new_pair_only(
    node: FakeLavalink,
) -> None:
    async with client_playing(node) as (client, _, _):
        before = len(voice_patches(node, GUILD))
        old = voice_patches(node, GUILD)[-1]

        # Discord reallocates the voice server: first a null endpoint with a new token ...
        client.handle_voice_server(GUILD, "moving-token", None)
        await asyncio.sleep(0.2)
        assert len(voice_patches(node, GUILD)) == before  # never the new token + old endpoint
        # ... then the new region's endpoint with its own token.
        client.handle_voice_server(GUILD, "region-token", "new-region.discord.media:443")
        await node.wait_for(
            lambda: len(voice_patches(node, GUILD)) == before + 1, what="new voice PATCH"
        )
        sent = voice_patches(node, GUILD)[-1]
        assert sent == {**old, "token": "region-token", "endpoint": "new-region.discord.media:443"}
        player = node.player(GUILD)
        assert player is not None
        assert player.connected
        assert player.track is not None


async def test_after_a_null_endpoint_the_next_update_is_forwarded_even_if_unchanged(
    node: FakeLavalink,
) -> None:
    """The old voice server is gone after a null endpoint; Lavalink's voice socket to it
    closed. Discord may hand back the same token and endpoint: they must still be sent, or the
    player stays disconnected and silent."""
    async with client_playing(node) as (client, _, _):
        old = voice_patches(node, GUILD)[-1]
        before = len(voice_patches(node, GUILD))

        client.handle_voice_server(GUILD, old["token"], None)
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4015, reason="crashed")
        client.handle_voice_server(GUILD, old["token"], old["endpoint"])
        await node.wait_for(
            lambda: len(voice_patches(node, GUILD)) == before + 1, what="voice re-sent"
        )
        await node.wait_for(
            lambda: (p := node.player(GUILD)) is not None and p.connected, what="reconnected"
        )


async def test_resuming_is_enabled_with_the_configured_timeout_on_every_new_session(
    node: FakeLavalink,
) -> None:
    discord = DiscordStandIn()
    client = lavalink.LavalinkClient(
        [lavalink.NodeConfig("main", node.url, node.password)],
        discord,
        resume_timeout=37,
        node_loss_grace=30.0,
        reconnect_cap=0.3,
    )
    discord.client = client
    events = Recorder()
    client.set_listener(events)
    await client.start(BOT_USER)
    try:
        first = await resumable_session(client, node, events)
        assert node.sessions[first].timeout == 37

        # A restarted node knows nothing: the new session starts with resuming off again.
        await node.kill()
        await node.start()
        await events.wait(lavalink.SessionReady, count=2)
        second = client.session_id("main")
        assert second is not None
        assert second != first
        await node.wait_for(lambda: node.sessions[second].resuming, what="resuming on again")
        assert node.sessions[second].timeout == 37
    finally:
        await client.close()


async def test_a_resumed_backlog_is_handled_like_live_events(
    node: FakeLavalink,
) -> None:
    client, _, events = await started(node, grace=30.0)
    try:
        await resumable_session(client, node, events)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG), user_data={"entry": 5})
        await events.wait(lavalink.TrackStartEvent)

        await node.drop_connections()
        # While the socket is down the track ends and Discord's voice drops: both are queued.
        await node.end_track(GUILD, "finished")
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4000, reason="x")
        await events.wait(lavalink.WebSocketClosedEvent, timeout=10)
        ends = events.of(lavalink.TrackEndEvent)
        assert len(ends) == 1
        end = ends[0]
        assert isinstance(end, lavalink.TrackEndEvent)
        assert end.reason is lavalink.TrackEndReason.FINISHED
        assert end.track.user_data == {"entry": 5}
        # In the order Lavalink produced them.
        kinds = [
            type(e)
            for e in events.events
            if isinstance(e, lavalink.TrackEndEvent | lavalink.WebSocketClosedEvent)
        ]
        assert kinds == [lavalink.TrackEndEvent, lavalink.WebSocketClosedEvent]
        # Handled like live: the client no longer thinks a track plays, so a failover or a
        # resume reconciliation would not bring the finished track back.
        await events.wait(lavalink.SessionReady, count=2)
        ready = events.of(lavalink.SessionReady)[-1]
        assert isinstance(ready, lavalink.SessionReady)
        assert ready.resumed
        player = await client.get_player(GUILD)
        assert player is not None
        assert player.track is None
        # The next track plays on the same (resumed) session.
        await client.play(GUILD, encode_track(SONG))
        await events.wait(lavalink.TrackStartEvent, count=2)
    finally:
        await client.close()


async def test_an_unresumed_session_reports_every_player_gone(
    node: FakeLavalink,
) -> None:
    client, _, events = await started(node, grace=30.0)
    try:
        old = await resumable_session(client, node, events)
        for guild in (GUILD, OTHER):
            await client.connect(guild, CHANNEL)
            await client.play(guild, encode_track(LONG))
        assert client.node_of(GUILD) == client.node_of(OTHER) == "main"

        # The session expires before the client is back (timeout 0: destroyed at once).
        node.sessions[old].timeout = 0
        await node.drop_connections()
        await events.wait(lavalink.SessionReady, count=2)
        ready = events.of(lavalink.SessionReady)[-1]
        assert isinstance(ready, lavalink.SessionReady)
        assert not ready.resumed
        assert ready.session_id != old
        # Every player that was on the node is reported as having none ...
        assert client.node_of(GUILD) is None
        assert client.node_of(OTHER) is None
        # ... and rebuilding one goes to the new session with its voice, never the old id.
        mark = len(node.requests)
        await client.play(GUILD, encode_track(LONG), position=1000)
        player = node.player(GUILD)
        assert player is not None
        assert player.session.id == ready.session_id
        assert player.connected
        assert not [r for r in node.requests[mark:] if old in r.path]
    finally:
        await client.close()


async def test_a_lavalink_of_another_major_version_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeLavalink(version="5.0.0") as newer:
        client, _, _ = await started(newer)
        try:
            await newer.wait_for(lambda: "5.0.0" in caplog.text and "refused" in caplog.text)
            assert not client.available
            assert not newer.sessions
        finally:
            await client.close()


async def test_a_lavalink_older_than_4_2_is_refused_and_never_connected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeLavalink(version="4.1.2") as old:
        client, _, _ = await started(old)
        try:
            await old.wait_for(lambda: "4.2.0 or newer is required" in caplog.text)
            assert "4.1.2" in caplog.text
            assert not [r for r in old.requests if r.path == "/v4/websocket"]
        finally:
            await client.close()


async def test_one_slow_guild_does_not_hold_up_the_others_and_order_is_kept(
    node: FakeLavalink,
) -> None:
    client, _, _ = await started(node)
    gate = asyncio.Event()
    seen: dict[int, list[str]] = {GUILD: [], OTHER: []}
    ready = asyncio.Event()

    async def listener(event: lavalink.Event) -> None:
        if isinstance(event, lavalink.SessionReady):
            ready.set()
        if not isinstance(event, lavalink.WebSocketClosedEvent):
            return
        if event.guild_id == GUILD:
            await gate.wait()  # a slow listener for this guild (e.g. a stalled DB write)
        seen[event.guild_id].append(event.reason)

    client.set_listener(listener)
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        for guild in (GUILD, OTHER):
            await client.connect(guild, CHANNEL)
        for i in range(5):
            for guild in (GUILD, OTHER):
                await node.send_event(
                    guild, "WebSocketClosedEvent", code=4000, reason=str(i), byRemote=True
                )
        await node.wait_for(lambda: len(seen[OTHER]) == 5, what="the other guild's events")
        assert seen[GUILD] == []
        gate.set()
        await node.wait_for(lambda: len(seen[GUILD]) == 5, what="the slow guild's events")
        assert seen[GUILD] == seen[OTHER] == ["0", "1", "2", "3", "4"]
    finally:
        await client.close()


async def test_a_resumed_twin_does_not_overwrite_the_moved_players_state(
    node: FakeLavalink,
) -> None:
    """After a failover the old node's session may resume with a stale twin of the player;
    its replayed ``playerUpdate`` must not reach the listener nor the position estimate."""
    async with FakeLavalink(catalogue=catalogue(), player_update_interval=0.1) as other:
        client, _, events = await pool(node, other, failover=0.2)
        try:
            await node.wait_for(lambda: all(s.resuming for s in node.sessions.values()))
            await other.wait_for(lambda: all(s.resuming for s in other.sessions.values()))
            await client.connect(GUILD, CHANNEL)
            home, away = (node, other) if client.node_of(GUILD) == "node0" else (other, node)
            await client.play(GUILD, encode_track(LONG))
            home_session = next(iter(home.sessions))
            # The twin's audio source hangs: its position stays where it is.
            home.stall(GUILD)
            home.refuse_websocket(count=1000)
            await home.drop_connections()
            await events.wait(lavalink.PlayerMoved, timeout=5)
            await away.wait_for(
                lambda: (p := away.player(GUILD)) is not None and p.position > 1500,
                what="the moved player to play on",
            )
            mark = len(home.sent)
            home.refuse_websocket(count=0)
            await events.wait(lavalink.SessionReady, count=3, timeout=10)
            await home.wait_for(lambda: home.player(GUILD) is None, what="twin destroyed")
            stale = [
                m["state"]
                for sid, m in home.sent[mark:]
                if sid == home_session and m.get("op") == "playerUpdate"
            ]
            assert stale, "the resumed session replays one playerUpdate per player"
            reported = [
                e.state
                for e in events.of(lavalink.PlayerStateUpdate)
                if isinstance(e, lavalink.PlayerStateUpdate)
            ]
            stale_states = {(s["time"], s["position"]) for s in stale}
            assert not [s for s in reported if (s.time, s.position) in stale_states]
            position = client.position(GUILD)
            assert position is not None
            assert position > 1500
        finally:
            await client.close()


async def test_closing_the_client_arms_no_failover_or_leave_afterwards(
    node: FakeLavalink,
) -> None:
    """``close()`` keeps resumable sessions resumable for the next run: the socket it closes
    itself must not start the node-loss clock, which would make the bot leave every channel."""
    client, discord, events = await started(node, grace=0.3)
    await events.wait(lavalink.SessionReady)
    await client.connect(GUILD, CHANNEL)
    await client.play(GUILD, encode_track(LONG))
    await client.close()
    await asyncio.sleep(0.8)
    assert discord.ops == [(GUILD, CHANNEL)]  # no op 4 leave after the close
    assert not events.of(lavalink.NodeLost)


@pytest.mark.parametrize("code", [1006, 4015])
async def test_a_transient_voice_close_is_healed_by_resending_the_voice_state(
    node: FakeLavalink,
    code: int,
) -> None:
    """1006 (network) and 4015 (voice server crashed) leave Lavalink's voice socket closed;
    if it stays closed, re-sending the same credentials makes Lavalink connect again. Without
    that the player keeps its track but is silent until lavaplayer's cleanup ends it."""
    async with client_playing(node) as (_, discord, _):
        before = len(voice_patches(node, GUILD))
        # Several closes in a row still make one re-send.
        for _ in range(3):
            await node.send_event(GUILD, "WebSocketClosedEvent", code=code, reason="")
        player = node.player(GUILD)
        assert player is not None
        assert not player.connected
        await node.wait_for(lambda: player.connected, what="voice back", timeout=8)
        assert len(voice_patches(node, GUILD)) == before + 1
        assert voice_patches(node, GUILD)[-1] == voice_patches(node, GUILD)[before - 1]
        assert discord.ops == [(GUILD, CHANNEL)]  # same credentials: no re-join needed
        assert player.track is not None


async def test_a_transient_close_that_heals_by_itself_is_left_alone(
    node: FakeLavalink,
) -> None:
    async with client_playing(node) as (client, _, _):
        before = len(voice_patches(node, GUILD))
        await node.send_event(GUILD, "WebSocketClosedEvent", code=1006, reason="")
        # Discord's voice comes back on Lavalink's side before the client would act.
        client.handle_voice_server(GUILD, "fresh-token", "fresh.discord.media:443")
        await node.wait_for(lambda: len(voice_patches(node, GUILD)) == before + 1)
        await asyncio.sleep(VOICE_RECHECK + 1)
        assert len(voice_patches(node, GUILD)) == before + 1


async def test_a_voice_update_racing_a_disconnect_does_not_bring_the_player_back(
    node: FakeLavalink,
) -> None:
    """Voice and destroy are serialised per guild; a voice forward queued behind the destroy
    must not re-create the player on Lavalink after the bot chose to leave."""
    async with client_playing(node) as (client, discord, _):
        node.delay_next("/players/", 0.3, method="DELETE")
        leaving = asyncio.create_task(client.disconnect(GUILD))
        await asyncio.sleep(0.05)
        # Discord's server update for the old connection lands while the destroy is under way.
        client.handle_voice_server(GUILD, "late-token", "late.discord.media:443")
        await leaving
        await asyncio.sleep(0.5)
        assert discord.ops[-1] == (GUILD, None)
        assert node.player(GUILD) is None
        assert client.node_of(GUILD) is None


async def test_a_player_left_while_its_node_was_away_is_destroyed_when_the_session_resumes(
    node: FakeLavalink,
) -> None:
    """Leaving voice while the node's socket is down cannot DELETE the player (the paused
    session answers 404); when the session resumes, that player must go, not be adopted."""
    client, discord, events = await started(node, grace=30.0)
    try:
        await resumable_session(client, node, events)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        node.refuse_websocket(count=1000)
        await node.drop_connections()
        await node.wait_for(lambda: not client.available, what="socket down")
        await client.disconnect(GUILD)  # the user stops the music meanwhile
        assert discord.ops[-1] == (GUILD, None)
        node.refuse_websocket(count=0)
        await events.wait(lavalink.SessionReady, count=2, timeout=10)
        ready = events.of(lavalink.SessionReady)[-1]
        assert isinstance(ready, lavalink.SessionReady)
        assert ready.resumed
        await node.wait_for(lambda: node.player(GUILD) is None, what="the left player destroyed")
        assert client.node_of(GUILD) is None
    finally:
        await client.close()


async def test_an_update_answered_204_without_a_body_still_returns_the_player(
    node: FakeLavalink,
) -> None:
    """The server's handler is annotated 204; 4.2.2 sends 200 and a body, but any 2xx is a
    success (a proxy or another build may drop the body). It must not crash the caller."""
    async with client_playing(node) as (client, _, _):
        node.answer_next("/players/", b"", status=204, method="PATCH")
        player = await client.set_volume(GUILD, 70)  # answered 204: not carried out
        assert player.guild_id == GUILD
        assert player.track is not None
        assert player.track.info.title == LONG.title


async def test_the_position_estimate_runs_at_the_timescale_speed() -> None:
    """Between two ``playerUpdate`` (5 s apart) the position is extrapolated; with a
    timescale filter the track runs ``speed * rate`` times as fast as the wall clock."""
    async with FakeLavalink(catalogue=catalogue(), player_update_interval=5.0) as slow:
        client, _, events = await started(slow)
        try:
            await events.wait(lavalink.SessionReady)
            await client.connect(GUILD, CHANNEL)
            fast = lavalink.Filters(timescale=lavalink.Timescale(speed=1.5, rate=1.2))
            await client.play(GUILD, encode_track(LONG), filters=fast)
            await asyncio.sleep(1.5)
            player = slow.player(GUILD)
            assert player is not None
            estimate = client.position(GUILD)
            assert estimate is not None
            assert abs(estimate - player.position) < 300, (estimate, player.position)
        finally:
            await client.close()


async def test_the_position_is_of_the_track_that_plays_never_of_the_one_before() -> None:
    """A report is of the track playing when it was sent. Once that track ended, nothing
    plays and there is no position; a new track stands where the node's answer says, not
    where the old track's clock would be (the controller would show it ending at once)."""
    async with FakeLavalink(catalogue=catalogue(), player_update_interval=5.0) as slow:
        client, _, events = await started(slow)
        try:
            await events.wait(lavalink.SessionReady)
            await client.connect(GUILD, CHANNEL)
            await client.play(GUILD, encode_track(LONG))
            await asyncio.sleep(1.5)
            await slow.end_track(GUILD)
            await events.wait(lavalink.TrackEndEvent)
            assert client.position(GUILD) is None
            await client.play(GUILD, encode_track(LONG))
            started_at = client.position(GUILD)
            assert started_at is not None
            assert started_at < 300, started_at
            await asyncio.sleep(1.0)
            await client.play(GUILD, encode_track(LONG))  # replaces the running track
            replaced_at = client.position(GUILD)
            assert replaced_at is not None
            assert replaced_at < 300, replaced_at
        finally:
            await client.close()


async def test_a_failover_moves_the_guilds_side_by_side(node: FakeLavalink) -> None:
    """Each move blocks on the new node's voice connect; one after another, the last of many
    guilds would stay silent for the sum of them."""
    guilds = range(1, 7)
    async with FakeLavalink(catalogue=catalogue()) as other:
        other.system_load = 0.9
        other.send_stats()
        client, _, events = await pool(node, other, failover=0.2)
        try:
            await events.wait(lavalink.StatsUpdate, count=2)
            for guild in guilds:
                await client.connect(guild, CHANNEL)
                await client.play(guild, encode_track(LONG))
            assert {client.node_of(g) for g in guilds} == {"node0"}
            other.voice_connect_delay = 0.6
            loop = asyncio.get_running_loop()
            started_at = loop.time()
            await node.kill()
            await events.wait(lavalink.PlayerMoved, count=len(guilds), timeout=10)
            took = loop.time() - started_at
            assert took < 2.0, f"moving {len(guilds)} guilds took {took:.1f} s"
            assert {client.node_of(g) for g in guilds} == {"node1"}
        finally:
            await client.close()
