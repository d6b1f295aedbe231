"""Discord guild events, in process: removed from a guild, a voice channel deleted."""

from __future__ import annotations

from pathlib import Path

from bot.app import MusicBot
from bot.config import Settings, load_settings
from bot.storage import PlayerStatus
from peers.fake_discord import OTHER_VOICE_CHANNEL, VOICE_CHANNEL, FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.fleet import Fleet, fleet_catalogue, plan_fleet
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    RICK,
    TAKE_ON_ME,
    ErrorLog,
    bot_environment,
    running_bot,
)


async def stored_guilds(app: MusicBot) -> dict[int, PlayerStatus]:
    assert app.repository is not None
    return {g.player.guild_id: g.player.status for g in await app.repository.load_guilds()}


async def test_voice_channel_deleted_stops_keeps_the_queue_and_says_so_once(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(lambda: (p := lavalink.player(GUILD)) is not None and p.position > 500)
    before = len(discord.messages)

    await discord.delete_channel(GUILD, VOICE_CHANNEL)
    await discord.wait_for_message("voice channel was deleted")
    await lavalink.wait_for(lambda: lavalink.player(GUILD) is None, what="player destroyed")
    assert discord.bot_voice_channel(GUILD) is None
    reply = await (await discord.invoke("queue")).reply()
    assert RICK.title in reply.text
    assert "interrupted" in reply.text
    assert TAKE_ON_ME.title in reply.text
    assert "1 track in queue" in reply.text
    assert await stored_guilds(bot) == {GUILD: PlayerStatus.INTERRUPTED}
    # One short notice: not a second "disconnected" one for the same event.
    assert [m.text for m in discord.messages[before:]] == [
        "My voice channel was deleted, so the music stopped. "
        "The queue is kept: use /play in another channel to carry on."
    ]

    # /play from another channel carries on with the same song, near where it stopped.
    await discord.set_user_voice(GUILD, ALICE, OTHER_VOICE_CHANNEL)
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.track is not None and p.running,
        what="playing again",
    )
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.track is not None
    assert player.track.title == RICK.title
    assert player.position >= 500 - 200  # at most one position report (0.2 s) lost
    assert discord.bot_voice_channel(GUILD) == OTHER_VOICE_CHANNEL


async def test_removed_from_the_guild_deletes_its_player_and_queue(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert await stored_guilds(bot) == {GUILD: PlayerStatus.PLAYING}
    before_ops, before_messages = len(discord.voice_ops), len(discord.messages)

    await discord.remove_bot(GUILD)
    await lavalink.wait_for(lambda: lavalink.player(GUILD) is None, what="player destroyed")
    await discord.wait_for(lambda: not bot.service or not bot.service.guild_ids(), what="forgot")
    assert await stored_guilds(bot) == {}
    assert discord.voice_ops[before_ops:] == []  # no gateway command for a guild it left
    assert discord.messages[before_messages:] == []


async def test_a_guild_left_while_offline_is_forgotten_at_the_next_start(
    errors: ErrorLog, tmp_path: Path
) -> None:
    plans = plan_fleet(2)
    kept, gone = plans
    async with FakeDiscord(guilds=[p.guild for p in plans]) as discord:
        lavalink = FakeLavalink(catalogue=fleet_catalogue(plans), player_update_interval=0.2)
        await lavalink.start()
        env = bot_environment(discord, lavalink, tmp_path / "bot.db") | {"GUILD_IDS": ""}
        settings = load_settings(env, env_file=None)
        fleet = Fleet(discord, lavalink, plans)
        try:
            async with running_bot(settings, discord, lavalink, errors):
                await fleet.play_everywhere()
            await discord.remove_bot(gone.id)  # nobody is connected to hear the GUILD_DELETE
            ops = len(discord.voice_ops)
            async with running_bot(settings, discord, lavalink, errors) as app:
                fleet.plans = [kept]
                await fleet.wait_all_back(timeout=10)
                assert set(await stored_guilds(app)) == {kept.id}
                assert {op.guild_id for op in discord.voice_ops[ops:]} == {kept.id}
        finally:
            await lavalink.stop()


async def test_a_servers_emojis_are_not_kept(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    # GUILD_CREATE carries every custom emoji (hundreds in some servers); the bot uses none,
    # so it keeps none, and what it does use (voice states, members) is still there.
    discord.guilds[GUILD].emojis = 200
    async with running_bot(settings, discord, lavalink, errors) as app:
        cache = app.bot.cache
        assert cache.get_guild(GUILD) is not None
        assert len(cache.get_emojis_view()) == 0
        assert cache.get_voice_state(GUILD, ALICE) is not None
        reply = await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        assert "Now playing" in reply.text
