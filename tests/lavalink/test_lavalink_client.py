"""The bundled Lavalink client against the fake Lavalink node, without Discord.

A small stand-in for the Discord gateway answers op 4 the way Discord does (the bot's own
voice state, then a voice server update) so the client's voice forwarding, playback, event
dispatch, resuming and node-loss paths run against a protocol-faithful server.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import lavalink
from peers.fake_lavalink import FakeLavalink
from peers.tracks import encode_track
from tests.lavalink.harness import (
    CHANNEL,
    GUILD,
    LONG,
    PACING,
    SONG,
    catalogue,
    client_playing,
    pool,
    resumable_session,
    started,
)


@pytest.mark.parametrize("server_first", [False, True])
async def test_join_and_play_forwards_all_four_voice_values(
    node: FakeLavalink, server_first: bool
) -> None:
    client, discord, events = await started(node, server_first=server_first)
    try:
        await events.wait(lavalink.SessionReady)
        # Connect sends op 4 and returns once Lavalink holds the voice state.
        await client.connect(GUILD, CHANNEL)
        assert discord.ops == [(GUILD, CHANNEL)]
        player = node.player(GUILD)
        assert player is not None
        assert player.voice is not None
        assert player.voice["channelId"] == str(CHANNEL)
        assert player.voice["endpoint"] == "fake-voice.discord.media:443"

        result = await client.load_tracks(SONG.uri or "")
        assert isinstance(result, lavalink.TrackResult)
        await client.play(GUILD, result.data.encoded, user_data={"entry": 7})
        await events.wait(lavalink.TrackStartEvent)
        await events.wait(lavalink.TrackEndEvent, timeout=5)
        end = events.of(lavalink.TrackEndEvent)[0]
        assert isinstance(end, lavalink.TrackEndEvent)
        assert end.reason is lavalink.TrackEndReason.FINISHED
        assert end.track.user_data == {"entry": 7}
        assert events.of(lavalink.PlayerStateUpdate)
    finally:
        await client.close()


async def test_position_reports_go_to_their_callback_as_they_arrive(
    node: FakeLavalink, caplog: pytest.LogCaptureFixture
) -> None:
    # A report each few seconds per player: the callback takes them off the event stream, and
    # one that fails is logged without stopping the reports after it.
    client, _, events = await started(node)
    reports: list[lavalink.PlayerStateUpdate] = []

    def take(report: lavalink.PlayerStateUpdate) -> None:
        reports.append(report)
        if len(reports) == 1:
            raise RuntimeError("the first report breaks the callback")

    client.on_position(take)
    node.player_update_interval = 0.05
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        await node.wait_for(lambda: len(reports) >= 3, what="three position reports")
        assert {r.guild_id for r in reports} == {GUILD}
        assert not events.of(lavalink.PlayerStateUpdate)
        assert "Lavalink position callback failed" in caplog.text
    finally:
        await client.close()


async def test_resuming_replays_what_happened_while_the_socket_was_down(
    node: FakeLavalink,
) -> None:
    # A grace well past the reconnect: under load a 0.5 s one can run out first, and the bot
    # then leaves voice and rightly drops the resumed player (not what this test is about).
    client, _, events = await started(node, grace=10)
    try:
        session = await resumable_session(client, node, events)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(SONG))
        await events.wait(lavalink.TrackStartEvent)

        await node.drop_connections()
        # The track ends while the socket is down; Lavalink queues the event.
        await node.wait_for(lambda: (p := node.player(GUILD)) is not None and p.track is None)
        await events.wait(lavalink.SessionReady, count=2)
        ready = events.of(lavalink.SessionReady)[-1]
        assert isinstance(ready, lavalink.SessionReady)
        assert ready.resumed
        assert ready.session_id == session
        await events.wait(lavalink.TrackEndEvent)
        # The same player still exists: a request on the resumed session works.
        players = await client.get_players("main")
        assert client.node_of(GUILD) == "main"
        assert [p.guild_id for p in players] == [GUILD]
    finally:
        await client.close()


async def test_a_lost_node_makes_the_bot_leave_voice_and_a_restart_is_a_new_session(
    node: FakeLavalink,
) -> None:
    client, discord, events = await started(node, grace=0.3)
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        await node.kill()
        await events.wait(lavalink.NodeLost)
        lost = events.of(lavalink.NodeLost)[0]
        assert isinstance(lost, lavalink.NodeLost)
        assert lost.guild_ids == frozenset({GUILD})
        assert discord.ops[-1] == (GUILD, None)
        assert not client.available
        with pytest.raises(lavalink.NoNodeAvailableError):
            await client.load_tracks("ytsearch:anything")

        await node.start()
        await events.wait(lavalink.SessionReady, count=2)
        ready = events.of(lavalink.SessionReady)[-1]
        assert isinstance(ready, lavalink.SessionReady)
        assert not ready.resumed
        assert client.available
    finally:
        await client.close()


async def test_rest_errors_are_typed_and_carry_lavalinks_message(node: FakeLavalink) -> None:
    client, _, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        node.fail_next("/v4/loadtracks", status=500)
        with pytest.raises(lavalink.ServerError) as raised:
            await client.load_tracks("ytsearch:x")
        assert raised.value.status == 500
        error = await client.load_tracks("https://www.youtube.com/watch?v=gone")
        assert isinstance(error, lavalink.ErrorResult)
        assert error.data.message == "This video is unavailable"
        empty = await client.load_tracks("ytsearch:nothing at all")
        assert isinstance(empty, lavalink.EmptyResult)
    finally:
        await client.close()


async def test_malformed_and_unknown_frames_are_ignored(
    node: FakeLavalink, caplog: pytest.LogCaptureFixture
) -> None:
    client, _, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        for junk in (
            "not json",
            '{"op": "somethingNew", "x": 1}',
            '{"op": "event", "type": "SomeFutureEvent", "guildId": "1234"}',
            '{"op": "playerUpdate", "guildId": "1234"}',
            "[]",
        ):
            await node.send_raw(junk)
        await client.play(GUILD, encode_track(SONG))
        await events.wait(lavalink.TrackEndEvent, timeout=5)
        assert client.available
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # Broken frames are worth a warning; an op from a newer server is not.
        assert sum("malformed frame" in w for w in warnings) == 3
        assert not [w for w in warnings if "somethingNew" in w]
    finally:
        await client.close()


async def test_an_old_lavalink_is_refused_with_a_clear_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeLavalink(version="4.1.0") as old:
        client, _, _ = await started(old)
        try:
            await old.wait_for(lambda: "4.2.0 or newer is required" in caplog.text, what="refusal")
            assert not client.available
            assert not old.sessions
        finally:
            await client.close()


async def test_a_wrong_password_is_reported_and_never_logged(
    node: FakeLavalink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, _, _ = await started(node, password="hunter2-wrong")
    try:
        await node.wait_for(lambda: "password was rejected" in caplog.text, what="refusal")
        assert not client.available
        assert "hunter2-wrong" not in caplog.text
    finally:
        await client.close()


async def test_new_players_go_to_the_least_loaded_node(node: FakeLavalink) -> None:
    async with FakeLavalink(catalogue=catalogue()) as other:
        node.system_load = 0.95
        node.send_stats()
        other.send_stats()
        client, _, events = await pool(node, other)
        try:
            await events.wait(lavalink.StatsUpdate, count=2)
            for guild in range(1, 5):
                await client.connect(guild, CHANNEL)
            assert {client.node_of(g) for g in range(1, 5)} == {"node1"}
            # Load evens out: with the busy node calm again, new players spread over both.
            node.system_load = other.system_load
            node.send_stats()
            await events.wait(lavalink.StatsUpdate, count=3)
            for guild in range(5, 9):
                await client.connect(guild, CHANNEL)
            assert client.node_of(5) == "node0"
        finally:
            await client.close()


async def test_a_lost_node_moves_its_players_at_their_position(node: FakeLavalink) -> None:
    async with FakeLavalink(catalogue=catalogue(), player_update_interval=0.1) as other:
        other.system_load = 0.9
        other.send_stats()
        client, discord, events = await pool(node, other)
        try:
            await events.wait(lavalink.StatsUpdate, count=2)
            await client.connect(GUILD, CHANNEL)
            assert client.node_of(GUILD) == "node0"
            await client.play(GUILD, encode_track(LONG), volume=70, user_data={"entry": 3})
            await node.wait_for(lambda: (p := node.player(GUILD)) is not None and p.position > 400)

            await node.kill()
            await events.wait(lavalink.PlayerMoved, timeout=5)
            moved = other.player(GUILD)
            assert moved is not None
            assert moved.track is not None
            assert moved.track.title == LONG.title
            assert moved.position >= 400  # not from the start
            assert moved.volume == 70
            assert moved.user_data == {"entry": 3}
            assert moved.connected  # voice went along
            assert client.node_of(GUILD) == "node1"
            assert (GUILD, None) not in discord.ops  # never left voice

            # The old node returns with a fresh session: nothing plays twice.
            await node.start()
            await events.wait(lavalink.SessionReady, count=3)
            assert node.player(GUILD) is None
        finally:
            await client.close()


async def test_a_grace_shorter_than_the_failover_delay_still_moves_players(
    node: FakeLavalink,
) -> None:
    """Leaving voice is for when *no* node is up; with another one up, the players move."""
    async with FakeLavalink(catalogue=catalogue()) as other:
        client, discord, events = await pool(node, other, failover=5.0, grace=0.3)
        try:
            await client.connect(GUILD, CHANNEL)
            home, away = (node, other) if client.node_of(GUILD) == "node0" else (other, node)
            await client.play(GUILD, encode_track(LONG), user_data={"entry": 9})
            await home.kill()
            await events.wait(lavalink.PlayerMoved, timeout=3)  # at the grace, not at 5 s
            moved = away.player(GUILD)
            assert moved is not None
            assert moved.user_data == {"entry": 9}
            assert moved.connected
            assert (GUILD, None) not in discord.ops
            assert not events.of(lavalink.NodeLost)
        finally:
            await client.close()


async def test_a_resumed_node_drops_the_twin_of_a_moved_player(node: FakeLavalink) -> None:
    async with FakeLavalink(catalogue=catalogue()) as other:
        client, _, events = await pool(node, other, failover=0.2)
        try:
            await node.wait_for(lambda: all(s.resuming for s in node.sessions.values()))
            await client.connect(GUILD, CHANNEL)
            first = client.node_of(GUILD)
            home, away = (node, other) if first == "node0" else (other, node)
            await client.play(GUILD, encode_track(LONG))
            home.refuse_websocket(count=1000)
            await home.drop_connections()
            await events.wait(lavalink.PlayerMoved, timeout=5)
            assert away.player(GUILD) is not None
            # The old session was only paused; when it resumes, its stale player goes.
            home.refuse_websocket(count=0)
            await events.wait(lavalink.SessionReady, count=3, timeout=10)
            await home.wait_for(lambda: home.player(GUILD) is None, what="stale player destroyed")
            assert client.node_of(GUILD) != first
        finally:
            await client.close()


async def test_stale_voice_4006_rejoins_for_fresh_credentials_without_looping(
    node: FakeLavalink,
) -> None:
    async with client_playing(node) as (_, discord, events):
        player = node.player(GUILD)
        assert player is not None
        assert player.voice is not None
        old_token = player.voice["token"]

        await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="Session invalid")
        await node.wait_for(
            lambda: (
                (p := node.player(GUILD)) is not None
                and p.connected
                and p.voice is not None
                and p.voice["token"] != old_token
            ),
            what="fresh credentials after 4006",
        )
        assert discord.ops == [(GUILD, CHANNEL), (GUILD, CHANNEL)]

        # Discord keeps refusing: a few spaced re-joins, then the client stops trying and
        # says so, once; leaving is the listener's call, so no op 4 without a channel here.
        # Closes that arrive while a re-join waits out its back-off are answered by it.
        for ops in (3, 4):
            for _ in range(3):
                await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="again")
            await node.wait_for(lambda ops=ops: len(discord.ops) >= ops, what=f"op 4 #{ops}")
        await asyncio.sleep(PACING.rejoin_delays[-1] + 0.3)
        assert len(discord.ops) == 1 + 3  # the first join, then at most three re-joins
        assert not events.of(lavalink.VoiceFailed)  # closes met by a pending re-join
        # Fails again with three re-joins in the minute: no fourth; reported, once.
        for _ in range(2):
            await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="again")
        await events.wait(lavalink.VoiceFailed)
        await asyncio.sleep(0.3)
        assert len(discord.ops) == 1 + 3
        assert events.of(lavalink.VoiceFailed) == [
            lavalink.VoiceFailed(GUILD, CHANNEL, 4006, "again")
        ]
        assert all(channel == CHANNEL for _, channel in discord.ops)
        closes = [e for e in events.events if isinstance(e, lavalink.WebSocketClosedEvent)]
        # The report comes after the close that made the client give up, in guild order.
        failed_at = events.events.index(events.of(lavalink.VoiceFailed)[0])
        assert any(events.events.index(c) < failed_at for c in closes)


async def test_after_giving_up_a_new_connect_gets_fresh_rejoins(node: FakeLavalink) -> None:
    """``VoiceFailed`` ends one attempt, not the guild: /play tries again with full back-off."""
    async with client_playing(node) as (client, discord, events):
        # Discord's voice server refuses every session from now on.
        node.voice_check = lambda _guild, _voice: 4006
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="refused")
        await events.wait(lavalink.VoiceFailed, timeout=10)
        assert len(discord.ops) == 1 + 3
        assert events.of(lavalink.VoiceFailed) == [lavalink.VoiceFailed(GUILD, CHANNEL, 4006, "")]

        await client.disconnect(GUILD)
        assert discord.ops[-1] == (GUILD, None)
        await node.wait_for(lambda: node.player(GUILD) is None, what="the player destroyed")
        await asyncio.sleep(0.05)  # the leave's voice state reaches the client
        assert not events.of(lavalink.VoiceDisconnected)  # a leave we asked for: no kick

        # Voice works again; the user asks again: a join, and a later 4006 is re-joined.
        node.voice_check = None
        ops_before = len(discord.ops)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="once")
        await node.wait_for(
            lambda: (
                len(discord.ops) == ops_before + 2
                and bool((p := node.player(GUILD)) and p.connected)
            ),
            what="a re-join after the fresh connect",
        )
        assert discord.ops[ops_before:] == [(GUILD, CHANNEL), (GUILD, CHANNEL)]
        assert len(events.of(lavalink.VoiceFailed)) == 1


async def test_connect_after_giving_up_joins_anew_even_without_leaving(
    node: FakeLavalink,
) -> None:
    """The credentials held after a give-up are refused ones: connect must not reuse them."""
    async with client_playing(node) as (client, discord, events):
        node.voice_check = lambda _guild, _voice: 4009
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4009, reason="Session timeout")
        await events.wait(lavalink.VoiceFailed, timeout=10)
        assert events.of(lavalink.VoiceFailed) == [lavalink.VoiceFailed(GUILD, CHANNEL, 4009, "")]
        node.voice_check = None
        ops_before = len(discord.ops)
        await client.connect(GUILD, CHANNEL)
        assert discord.ops[ops_before:] == [(GUILD, CHANNEL)]
        await node.wait_for(
            lambda: (p := node.player(GUILD)) is not None and p.connected, what="voice again"
        )


async def test_4014_from_a_move_keeps_the_player(node: FakeLavalink) -> None:
    async with client_playing(node) as (client, discord, events):
        # A moderator moves the bot: the voice socket closes with 4014, then Discord reports
        # the new channel with a new server update.
        await node.send_event(GUILD, "WebSocketClosedEvent", code=4014, reason="Disconnected")
        client.handle_voice_state(GUILD, "same-session", CHANNEL + 1)
        client.handle_voice_server(GUILD, "new-token", "fake-voice-2.discord.media:443")
        await node.wait_for(
            lambda: (
                (p := node.player(GUILD)) is not None
                and p.voice is not None
                and p.voice["channelId"] == str(CHANNEL + 1)
            ),
            what="voice forwarded for the new channel",
        )
        player = node.player(GUILD)
        assert player is not None
        assert player.track is not None
        assert player.track.title == LONG.title
        assert not events.of(lavalink.VoiceDisconnected)
        assert discord.ops == [(GUILD, CHANNEL)]  # no re-join, no leave


async def test_a_player_that_stops_moving_is_reported_stuck(node: FakeLavalink) -> None:
    client, _, events = await started(node, stall_timeout=0.5)
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG), user_data={"entry": 9})
        await node.wait_for(lambda: (p := node.player(GUILD)) is not None and p.position > 200)
        assert not events.of(lavalink.TrackStuckEvent)  # moving: nothing to report

        node.stall(GUILD)
        await events.wait(lavalink.TrackStuckEvent, timeout=5)
        stuck = events.of(lavalink.TrackStuckEvent)[0]
        assert isinstance(stuck, lavalink.TrackStuckEvent)
        assert stuck.track.info.title == LONG.title  # decoded locally from the encoded string
        assert stuck.track.user_data == {"entry": 9}
    finally:
        await client.close()
