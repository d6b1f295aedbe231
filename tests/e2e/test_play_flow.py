"""A user's session, end to end: /play, /queue, /skip until the queue drains."""

from __future__ import annotations

import pytest

from bot.app import MusicBot
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    PLAYLIST,
    PLAYLIST_URL,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    ErrorLog,
    wait_for_controller,
)


async def test_play_queue_skip_until_the_queue_drains(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    ops_before = len(discord.voice_ops)

    reply = await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    assert not reply.ephemeral
    assert "Now playing" in reply.text
    assert RICK.title in reply.text

    # op 4 joined the caller's channel, deafened; Lavalink got all four voice values.
    op = await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before)
    assert op.self_deaf is True
    assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.connected, what="voice connected"
    )
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.voice is not None
    assert set(player.voice) >= {"token", "endpoint", "sessionId", "channelId"}
    assert player.voice["channelId"] == str(VOICE_CHANNEL)
    assert all(player.voice[k] for k in ("token", "endpoint", "sessionId"))
    assert not player.voice["endpoint"].startswith("wss://")
    assert player.track is not None
    assert player.track.title == RICK.title
    await lavalink.wait_for_event(GUILD, "TrackStartEvent")

    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert "Added" in reply.text
    assert TAKE_ON_ME.title in reply.text
    assert "position **1**" in reply.text

    reply = await (await discord.invoke("play", {"query": "short song"})).reply()
    assert "position **2**" in reply.text

    reply = await (await discord.invoke("queue")).reply()
    assert RICK.title.replace("-", "\\-") in reply.text or "Never Gonna Give You Up" in reply.text
    assert "Take On Me" in reply.text
    assert "Short Song" in reply.text
    assert "2 tracks in queue" in reply.text
    assert "3:48 total" in reply.text  # 225 s + 3 s upcoming

    reply = await (await discord.invoke("skip")).reply()
    assert "Skipped" in reply.text
    assert "Take On Me" in reply.text
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title == TAKE_ON_ME.title
        ),
        what="Take On Me playing after /skip",
    )

    # Skip again; the short song then finishes by itself and the queue drains.
    reply = await (await discord.invoke("skip")).reply()
    assert "Short Song" in reply.text
    await lavalink.wait_for_event(GUILD, "TrackEndEvent", timeout=10)
    await discord.wait_for_message("queue is finished")
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.track is None

    reply = await (await discord.invoke("queue")).reply()
    assert "Nothing is playing" in reply.text


async def test_playlist_enqueues_every_track(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    reply = await (await discord.invoke("play", {"query": PLAYLIST_URL})).reply()
    assert "Queued **5** tracks from **80s Hits**" in reply.text
    reply = await (await discord.invoke("queue")).reply()
    assert "4 tracks in queue" in reply.text
    for info in PLAYLIST[1:]:
        assert info.title in reply.text
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.track is not None
    assert player.track.title == PLAYLIST[0].title


async def test_track_finishing_advances_to_the_next(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "short song"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    # Short Song is 3 s long: it ends by itself and Take On Me starts.
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title == TAKE_ON_ME.title
        ),
        timeout=10,
        what="the next track after a finish",
    )
    await wait_for_controller(discord, TAKE_ON_ME.title)
    reply = await (await discord.invoke("queue")).reply()
    assert "0 tracks in queue" in reply.text
    assert SHORT_SONG.title not in reply.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("file:///etc/passwd", "http(s)"),
        ("http://127.0.0.1:2333/v4/info", "private"),
        ("nothing matches this at all", "found nothing"),
        ("https://www.youtube.com/watch?v=blocked0000", "This video is unavailable"),
    ],
)
async def test_bad_queries_get_a_private_polite_answer(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink, query: str, says: str
) -> None:
    requests_before = len(lavalink.requests)
    reply = await (await discord.invoke("play", {"query": query})).reply()
    assert reply.ephemeral
    assert says in reply.text
    assert discord.bot_voice_channel(GUILD) is None
    if says in ("http(s)", "private"):
        # Refused before Lavalink ever saw it.
        assert all(query not in str(r.query) for r in lavalink.requests[requests_before:])


async def test_play_without_being_in_voice(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await discord.set_user_voice(GUILD, ALICE, None)
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert reply.ephemeral
    assert "Join a voice channel" in reply.text
    assert not discord.voice_ops


async def test_skip_needs_the_callers_presence_and_something_playing(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    reply = await (await discord.invoke("skip")).reply()
    assert reply.ephemeral
    assert "Nothing is playing" in reply.text

    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await discord.set_user_voice(GUILD, ALICE, None)
    reply = await (await discord.invoke("skip")).reply()
    assert reply.ephemeral
    assert "Join my voice channel" in reply.text
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.track is not None
    assert player.track.title == TAKE_ON_ME.title


async def test_lavalink_down_gets_a_polite_answer_and_the_bot_recovers(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    await lavalink.kill()
    await lavalink.wait_for(lambda: not bot.lavalink.available, what="the client to notice")
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert reply.ephemeral
    assert "unreachable" in reply.text
    await lavalink.start()
    await lavalink.wait_for(lambda: bot.lavalink.available, timeout=15, what="reconnect")
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert "Now playing" in reply.text
    assert TEXT_CHANNEL  # the notice channel exists in the fake guild


async def test_play_suggests_songs_while_typing_and_plays_the_pick(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    typing = await discord.autocomplete("play", "query", "never gonna give you up")
    choices = await typing.choices()
    # Every search result, each within Discord's limits (the fake refuses anything over).
    assert [c["value"] for c in choices] == [RICK.uri, TAKE_ON_ME.uri]
    rick = choices[0]
    assert rick["name"] == f"{RICK.title} — {RICK.author} (3:32)"

    # A link typed in is offered as itself; a search that finds nothing offers nothing.
    link = await (await discord.autocomplete("play", "query", TAKE_ON_ME.uri or "")).choices()
    assert link == [{"name": TAKE_ON_ME.uri, "value": TAKE_ON_ME.uri}]
    assert await (await discord.autocomplete("play", "query", "no such song")).choices() == []

    reply = await (await discord.invoke("play", {"query": rick["value"]})).reply()
    assert "Now playing" in reply.text
    assert RICK.title in reply.text
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.track is not None
        and p.track.title == RICK.title,
        what="the pick playing",
    )  # fmt: skip


async def test_answers_reuse_the_connection_to_discord(bot: MusicBot, discord: FakeDiscord) -> None:
    # Each answer is a REST call; against Discord a new connection is a new TLS handshake,
    # which a busy bot would pay per command (hikari's default closes every connection).
    connections, calls = len(discord.rest_connections), len(discord.rest_calls)
    for _ in range(10):
        reply = await (await discord.invoke("queue")).reply()
        assert "Nothing is playing" in reply.text
    assert len(discord.rest_calls) - calls >= 10
    assert len(discord.rest_connections) - connections <= 1
