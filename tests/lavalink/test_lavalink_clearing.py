"""Taking some guilds' players out of a paused session the client does not hold (a stopped
process of an earlier shard layout), against the fake node: resumed on a socket of its own,
cleared, given back what was left of its timeout; busy while another socket holds it; gone."""

from __future__ import annotations

import aiohttp
import pytest

from bot import lavalink
from bot.lavalink import LavalinkClient, NodeConfig
from peers.fake_lavalink import FakeLavalink
from peers.tracks import encode_track
from tests.lavalink.harness import BOT_USER, CHANNEL, GUILD, LONG, resumable_session, started

OTHER = GUILD + 1


async def _paused_session(node: FakeLavalink) -> str:
    """A stopped client's session: paused, with players for GUILD and OTHER playing."""
    client, _, events = await started(node)
    try:
        session = await resumable_session(client, node, events)
        for guild in (GUILD, OTHER):
            await client.connect(guild, CHANNEL)
            await client.play(guild, encode_track(LONG))
    finally:
        await client.close()
    await node.wait_for(lambda: node.sessions[session].paused, what="paused")
    return session


def _newcomer(node: FakeLavalink) -> LavalinkClient:
    """A client of another process, not started (it clears before it connects)."""

    class NoGateway:
        async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
            raise AssertionError("clearing sends no op 4")

    return LavalinkClient([NodeConfig("main", node.url, node.password)], NoGateway())


async def test_only_the_picked_guilds_go_and_the_rest_keep_what_was_left(
    node: FakeLavalink,
) -> None:
    session = await _paused_session(node)
    kept = node.sessions[session].players[OTHER]
    client = _newcomer(node)

    done = await client.clear_session(
        "main", session, user_id=BOT_USER, drop=lambda g: g == GUILD, expires_in=7.2
    )
    assert done == lavalink.SessionCleared(lavalink.ClearStatus.CLEARED, frozenset({GUILD}), 1)
    held = node.sessions[session]
    assert held.paused  # paused again for the player left in it
    assert held.timeout == 8  # what the session had left, rounded up
    assert set(held.players) == {OTHER}
    assert held.players[OTHER] is kept
    assert kept.running  # never stopped
    deletes = [r for r in node.requests if r.method == "DELETE"]
    assert [(r.path, r.status) for r in deletes] == [
        (f"/v4/sessions/{session}/players/{GUILD}", 204)
    ]

    done = await client.clear_session(
        "main", session, user_id=BOT_USER, drop=lambda g: g == OTHER, expires_in=7.0
    )
    assert done == lavalink.SessionCleared(lavalink.ClearStatus.CLEARED, frozenset({OTHER}), 0)
    # Nothing left in it: it ended with the socket instead of waiting out its timeout.
    await node.wait_for(lambda: session not in node.sessions, what="session ended")
    assert not kept.running

    done = await client.clear_session(
        "main", session, user_id=BOT_USER, drop=lambda g: True, expires_in=7.0
    )
    assert done == lavalink.SessionCleared(lavalink.ClearStatus.GONE)
    assert all(not s.players for s in node.sessions.values())  # the probes left nothing


async def test_a_session_held_by_another_socket_is_busy_and_left_alone(
    node: FakeLavalink,
) -> None:
    session = await _paused_session(node)
    headers = {"Authorization": node.password, "User-Id": str(BOT_USER), "Session-Id": session}
    async with aiohttp.ClientSession() as http:
        holder = await http.ws_connect(f"{node.url}/v4/websocket", headers=headers)
        await node.wait_for(lambda: not node.sessions[session].paused, what="held elsewhere")
        client = _newcomer(node)
        done = await client.clear_session(
            "main", session, user_id=BOT_USER, drop=lambda g: True, expires_in=30
        )
        assert done == lavalink.SessionCleared(lavalink.ClearStatus.BUSY)
        assert set(node.sessions[session].players) == {GUILD, OTHER}
        await holder.close()
    await node.wait_for(lambda: node.sessions[session].paused, what="paused again")
    done = await client.clear_session(
        "main", session, user_id=BOT_USER, drop=lambda g: True, expires_in=30
    )
    assert done.status is lavalink.ClearStatus.CLEARED
    assert done.removed == {GUILD, OTHER}


async def test_a_node_that_cannot_be_reached_or_is_not_configured_raises(
    node: FakeLavalink,
) -> None:
    client = _newcomer(node)
    with pytest.raises(lavalink.NoNodeAvailableError):
        await client.clear_session("else", "s", user_id=BOT_USER, drop=bool, expires_in=5)
    await node.stop()
    with pytest.raises(lavalink.UnreachableError):
        await client.clear_session("main", "s", user_id=BOT_USER, drop=bool, expires_in=5)
