"""/nowplaying, /seek, /stop and /leave through the real bot, in one session (kept short)."""

from __future__ import annotations

import dataclasses

from bot.app import MusicBot
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import ALICE, GUILD, TAKE_ON_ME, VOICE_CHANNEL

ARTWORK = "https://i.ytimg.com/vi/djV11Xbc914/maxresdefault.jpg"


async def test_now_playing_seek_stop_and_leave(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    song = dataclasses.replace(TAKE_ON_ME, identifier="artwork0001", artwork_url=ARTWORK)
    lavalink.catalogue.add_track(song)
    lavalink.catalogue.add_search("take on me with artwork", [song])

    reply = await (await discord.invoke("nowplaying")).reply()
    assert (reply.ephemeral, reply.text) == (True, "Nothing is playing right now.")

    await (await discord.invoke("play", {"query": "take on me with artwork"})).reply()
    await (await discord.invoke("play", {"query": "short song"})).reply()
    await lavalink.wait_for_event(GUILD, "TrackStartEvent")

    reply = await (await discord.invoke("nowplaying")).reply()
    (embed,) = reply.embeds
    assert embed["title"] == song.title
    assert embed["url"] == song.uri
    assert embed["thumbnail"]["url"] == ARTWORK
    assert "/ 3:45`" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Requested by"] == f"<@{ALICE}>"
    assert (fields["Volume"], fields["Loop"], fields["Filter"]) == ("100%", "off", "off")
    assert "Short Song" in fields["Up next"]

    reply = await (await discord.invoke("seek", {"time": "2:00"})).reply()
    assert reply.text == f"Jumped to **2:00** in **{song.title}**."
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and 120_000 <= p.position < 125_000,
        what="Lavalink at 2:00",
    )
    reply = await (await discord.invoke("seek", {"time": "9:99"})).reply()
    assert reply.ephemeral
    assert "`1:23`" in reply.text

    reply = await (await discord.invoke("stop")).reply()
    assert "cleared the queue (2 tracks)" in reply.text
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.track is None,
        what="the track stopped",
    )
    assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL  # it stays
    reply = await (await discord.invoke("nowplaying")).reply()
    assert reply.text == "Nothing is playing right now."

    reply = await (await discord.invoke("leave")).reply()
    assert reply.text == f"Left <#{VOICE_CHANNEL}> and cleared the queue (0 tracks)."
    await discord.wait_for(lambda: discord.bot_voice_channel(GUILD) is None, what="left voice")
    reply = await (await discord.invoke("leave")).reply()
    assert reply.text == "I'm not in a voice channel, and the queue is empty."
