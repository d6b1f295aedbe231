"""Discord voice trouble, end to end: stale credentials, moves and kicks by a moderator,
voice that keeps failing, and a Lavalink that refuses the voice connection.

Lavalink owns the voice connection but cannot renew it: only the bot can (gateway op 4). These
tests make the fake Lavalink report what Discord's voice server did (``WebSocketClosedEvent``)
or fail the voice PATCH, and the fake Discord move or kick the bot, then check what reaches
Discord and Lavalink and what the users in the channel are told.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import MusicBot
from bot.config import Settings
from bot.lavalink import Pacing
from peers.fake_discord import FakeDiscord, VoiceOp
from peers.fake_lavalink import FakeLavalink
from peers.voice import discord_voice_check, voice_of
from tests.e2e.conftest import (
    GUILD,
    OTHER_VOICE_CHANNEL,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    ErrorLog,
    holds,
    playing,
    running_bot,
)


def _joins(discord: FakeDiscord, after: int) -> list[VoiceOp]:
    return [op for op in discord.voice_ops[after:] if op.guild_id == GUILD]


async def _playing_rick(discord: FakeDiscord, lavalink: FakeLavalink) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(
        lambda: playing(p := lavalink.player(GUILD), RICK.title) and p.position > 300,
        what="Rick playing",
    )


async def _position_moves(lavalink: FakeLavalink) -> None:
    """A listener hears music: the position advances while voice is connected."""
    player = lavalink.player(GUILD)
    assert player is not None
    start = player.position
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None and p.running and p.position > start + 200
        ),
        what="the music to go on",
    )


async def _rejoin_after_4006(discord: FakeDiscord, lavalink: FakeLavalink) -> float:
    """Close the voice socket with 4006; return how long the bot took to ask Discord again."""
    ops_before, creds_before = len(discord.voice_ops), len(discord.voice_credentials)
    closed_at = asyncio.get_running_loop().time()
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="")
    # The bot asks Discord again for the same channel ...
    op = await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before, timeout=6)
    await discord.wait_for(
        lambda: len(discord.voice_credentials) > creds_before, what="new voice credentials"
    )
    fresh = voice_of(discord.voice_credentials[-1])
    # ... and Lavalink gets the new session id and token, and plays on.
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.voice == fresh and p.connected,
        what="the fresh credentials at Lavalink",
    )
    await _position_moves(lavalink)
    assert len(_joins(discord, ops_before)) == 1
    return op.at - closed_at


async def test_stale_voice_4006_rejoins_for_fresh_credentials_backed_off_and_capped(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    # The production back-off (the other tests run with a shortened one).
    async with running_bot(settings, discord, lavalink, errors, pacing=Pacing()):
        await _backed_off_and_capped(discord, lavalink)


async def _backed_off_and_capped(discord: FakeDiscord, lavalink: FakeLavalink) -> None:
    lavalink.voice_check = discord_voice_check(discord)
    discord.voice_server_delay = 0.2
    await _playing_rick(discord, lavalink)
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.voice == voice_of(discord.voice_credentials[-1])
    ops_before, creds_before = len(discord.voice_ops), len(discord.voice_credentials)
    requests_before = len(lavalink.requests)

    rejoined_at: list[float] = []
    for _ in range(3):
        rejoined_at.append(await _rejoin_after_4006(discord, lavalink))
    old_sessions = {c.session_id for c in discord.voice_credentials[:creds_before]}
    assert not old_sessions & {c.session_id for c in discord.voice_credentials[creds_before:]}
    print("re-join delays after each 4006:", [f"{d:.2f}" for d in rejoined_at])
    # Backed off: at once, then ~1 s, then ~3 s.
    assert rejoined_at[0] < 0.8
    assert 0.9 <= rejoined_at[1] < 2.5
    assert 2.9 <= rejoined_at[2] < 4.5

    # A fourth failure within the minute: no fourth re-join (no loop); the bot leaves.
    assert not any(op.channel_id is None for op in discord.voice_ops[ops_before:])
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="")
    await discord.wait_for_voice_op(GUILD, None, after=ops_before)
    await discord.wait_for_message("I couldn't keep a voice connection")
    await holds(lambda: len(_joins(discord, ops_before)) == 4, 0.5, "no fourth re-join")
    # Lavalink was only ever handed whole sets of credentials that Discord gave out.
    handed_out = [voice_of(c) for c in discord.voice_credentials]
    forwarded = [
        r.json["voice"]
        for r in lavalink.requests[requests_before:]
        if isinstance(r.json, dict) and "voice" in r.json
    ]
    assert forwarded
    assert all(v in handed_out for v in forwarded), forwarded


async def test_moved_by_a_moderator_plays_on_in_the_new_channel(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.voice_check = discord_voice_check(discord)
    await _playing_rick(discord, lavalink)
    ops_before, requests_before = len(discord.voice_ops), len(lavalink.requests)
    messages_before = len(discord.messages)

    # Discord's voice server drops the old connection (4014), the gateway says where to.
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4014, reason="Disconnected.")
    await discord.move_bot(GUILD, OTHER_VOICE_CHANNEL)
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.connected
            and (p.voice or {}).get("channelId") == str(OTHER_VOICE_CHANNEL)
        ),
        what="the new channel at Lavalink",
    )
    await _position_moves(lavalink)
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.track is not None
    assert player.track.title == RICK.title
    assert discord.voice_ops[ops_before:] == []  # nothing to ask Discord: it moved us
    assert not any(r.method == "DELETE" for r in lavalink.requests[requests_before:])
    assert discord.messages[messages_before:] == []
    assert discord.bot_voice_channel(GUILD) == OTHER_VOICE_CHANNEL
    reply = await (await discord.invoke("queue")).reply()
    assert "Never Gonna Give You Up" in reply.text
    assert "interrupted" not in reply.text
    assert "1 track in queue" in reply.text
    # A restart must bring the bot back to the channel it was moved to, not the old one.
    assert bot.repository is not None
    for _ in range(100):
        (stored,) = await bot.repository.load_guilds()
        if stored.player.voice_channel_id == OTHER_VOICE_CHANNEL:
            break
        await asyncio.sleep(0.02)
    assert stored.player.voice_channel_id == OTHER_VOICE_CHANNEL


async def test_kicked_from_voice_destroys_the_player_keeps_the_queue_and_says_so(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.voice_check = discord_voice_check(discord)
    await _playing_rick(discord, lavalink)
    session_id = next(iter(lavalink.sessions))
    ops_before = len(discord.voice_ops)

    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4014, reason="Disconnected.")
    player = lavalink.player(GUILD)
    assert player is not None
    kicked_at = player.position  # frozen since the voice socket closed
    await discord.kick_bot(GUILD)
    await lavalink.wait_for(lambda: lavalink.player(GUILD) is None, what="the player destroyed")
    assert any(
        r.method == "DELETE" and r.path == f"/v4/sessions/{session_id}/players/{GUILD}"
        for r in lavalink.requests
    )
    notice = await discord.wait_for_message("I was disconnected from voice")
    assert "queue is kept" in notice.text
    assert "/play" in notice.text
    reply = await (await discord.invoke("queue")).reply()
    assert "Never Gonna Give You Up" in reply.text
    assert "interrupted" in reply.text
    assert TAKE_ON_ME.title in reply.text
    assert "1 track in queue" in reply.text
    await holds(lambda: discord.voice_ops[ops_before:] == [], 0.3, "no re-join by itself")

    # /play brings the bot back: the interrupted song first, from where it was cut off.
    reply = await (await discord.invoke("play", {"query": "short song"})).reply()
    assert "Short Song" in reply.text
    await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before)
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="Rick back")
    resumed = [
        r.json
        for r in lavalink.requests
        if r.method == "PATCH"
        and isinstance(r.json, dict)
        and isinstance(r.json.get("track"), dict)
    ][-1]
    assert isinstance(resumed, dict)
    print(f"kicked at {kicked_at} ms, back at {resumed.get('position')} ms")
    assert kicked_at - 300 <= resumed.get("position", 0) <= kicked_at + 1500
    reply = await (await discord.invoke("queue")).reply()
    assert "2 tracks in queue" in reply.text


def _track_patches(lavalink: FakeLavalink) -> list[dict[str, Any]]:
    """Every player PATCH that started a track, oldest first."""
    return [
        r.json
        for r in lavalink.requests
        if r.method == "PATCH"
        and isinstance(r.json, dict)
        and isinstance(r.json.get("track"), dict)
    ]


async def test_voice_that_keeps_failing_leaves_keeps_the_queue_and_play_resumes(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.voice_check = discord_voice_check(discord)
    await _playing_rick(discord, lavalink)
    ops_before, messages_before = len(discord.voice_ops), len(discord.messages)

    # Discord's voice server refuses the bot from now on, whatever credentials it brings.
    lavalink.voice_check = lambda _guild, _voice: 4006
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4006, reason="")
    player = lavalink.player(GUILD)
    assert player is not None
    stopped_at = player.position  # the sound stops with the voice socket

    # Three backed-off re-joins (each refused), then the bot leaves instead of sitting there.
    leave = await discord.wait_for_voice_op(GUILD, None, after=ops_before, timeout=12)
    joins = [op for op in _joins(discord, ops_before) if op.channel_id is not None]
    assert [op.channel_id for op in joins] == [VOICE_CHANNEL] * 3
    assert all(op.at < leave.at for op in joins)
    assert discord.bot_voice_channel(GUILD) is None
    await lavalink.wait_for(lambda: lavalink.player(GUILD) is None, what="the player destroyed")
    notice = await discord.wait_for_message("I couldn't keep a voice connection")
    assert notice.channel_id == TEXT_CHANNEL
    assert notice.text == (
        f"I couldn't keep a voice connection in <#{VOICE_CHANNEL}>. "
        "The queue is kept: use /play to try again."
    )
    # Told once: the leave is not mistaken for a kick, and nothing else is said.
    await holds(lambda: len(discord.messages) == messages_before + 1, 0.5, "exactly one notice")
    assert len(_joins(discord, ops_before)) == 4  # no re-join by itself after leaving
    reply = await (await discord.invoke("queue")).reply()
    assert RICK.title in reply.text
    assert "interrupted" in reply.text
    assert TAKE_ON_ME.title in reply.text
    assert "1 track in queue" in reply.text

    # Voice works again: /play brings the bot back, Rick first, from where the sound stopped.
    lavalink.voice_check = discord_voice_check(discord)
    back = len(discord.voice_ops)
    reply = await (await discord.invoke("play", {"query": "short song"})).reply()
    assert SHORT_SONG.title in reply.text
    await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=back)
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="Rick back")
    resumed = _track_patches(lavalink)[-1]
    print(f"voice lost at {stopped_at} ms, back at {resumed.get('position')} ms")
    assert stopped_at - 300 <= resumed.get("position", 0) <= stopped_at + 500
    await _position_moves(lavalink)
    reply = await (await discord.invoke("queue")).reply()
    assert "interrupted" not in reply.text
    assert "2 tracks in queue" in reply.text


async def test_lavalink_refusing_the_voice_connection_leaves_and_adds_nothing(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    # The voice server update comes a moment after the voice state, as on Discord: exactly
    # one PATCH carries the voice credentials, and Lavalink answers it with a 400.
    discord.voice_server_delay = 0.1
    lavalink.fail_next(f"/players/{GUILD}", status=400)
    ops_before, requests_before = len(discord.voice_ops), len(lavalink.requests)

    reply = await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    assert reply.text == (
        "The music server couldn't take my voice connection just now, so nothing was added. "
        "Try again in a moment."
    )
    refused = [r for r in lavalink.requests[requests_before:] if r.method == "PATCH"]
    assert len(refused) == 1
    assert refused[0].status == 400
    assert isinstance(refused[0].json, dict)
    assert "voice" in refused[0].json
    # It joined, then left again rather than sit in the channel in silence.
    join = await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before)
    leave = await discord.wait_for_voice_op(GUILD, None, after=ops_before)
    assert join.at < leave.at
    await discord.wait_for(
        lambda: discord.bot_voice_channel(GUILD) is None, what="the bot out of voice"
    )
    assert lavalink.player(GUILD) is None
    reply = await (await discord.invoke("queue")).reply()
    assert "Nothing is playing" in reply.text

    # Asking again works, and the song is there once.
    reply = await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    assert RICK.title in reply.text
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="Rick")
    reply = await (await discord.invoke("queue")).reply()
    assert "0 tracks in queue" in reply.text


async def test_a_refused_join_keeps_an_interrupted_queue_as_it_was(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.voice_check = discord_voice_check(discord)
    await _playing_rick(discord, lavalink)
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4014, reason="Disconnected.")
    player = lavalink.player(GUILD)
    assert player is not None
    kicked_at = player.position
    await discord.kick_bot(GUILD)
    await discord.wait_for_message("I was disconnected from voice")

    # Lavalink keeps failing (500, retries too) when the bot comes back for the next /play.
    discord.voice_server_delay = 0.1
    lavalink.fail_next(f"/players/{GUILD}", status=500, count=3)
    ops_before = len(discord.voice_ops)
    reply = await (await discord.invoke("play", {"query": "short song"})).reply()
    assert "couldn't take my voice connection" in reply.text
    assert "nothing was added" in reply.text
    await discord.wait_for_voice_op(GUILD, None, after=ops_before)
    await discord.wait_for(
        lambda: discord.bot_voice_channel(GUILD) is None, what="the bot out of voice"
    )
    reply = await (await discord.invoke("queue")).reply()
    assert RICK.title in reply.text
    assert "interrupted" in reply.text
    assert TAKE_ON_ME.title in reply.text
    assert SHORT_SONG.title not in reply.text
    assert "1 track in queue" in reply.text

    # The next /play carries on with Rick where he was cut off, and adds the short song.
    reply = await (await discord.invoke("play", {"query": "short song"})).reply()
    assert SHORT_SONG.title in reply.text
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="Rick back")
    resumed = _track_patches(lavalink)[-1]
    assert kicked_at - 300 <= resumed.get("position", 0) <= kicked_at + 1500
    reply = await (await discord.invoke("queue")).reply()
    assert "2 tracks in queue" in reply.text
