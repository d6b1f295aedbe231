"""Commands and Lavalink events for one guild arriving at once.

Each test lets two things interleave the way they do in production (a command waiting on the
database while an event or another command comes in) and checks what a user would notice: the
channel the bot plays in, the position a restart resumes from, a song starting twice, a server
that removed the bot getting it back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot import lavalink
from bot.extensions.sentences import error_text
from bot.services import ServiceError, reactions
from bot.storage import PlayerStatus
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

OTHER = 88
"""A user in another voice channel of the same server."""


async def _stored_player(bot: Bot) -> object:
    stored = {g.player.guild_id: g for g in await bot.repo.load_guilds()}
    return stored[GUILD].player if GUILD in stored else None


async def test_two_plays_at_once_from_different_channels(bot: Bot) -> None:
    """Both arrive while idle: the second must not move the stored channel away from the
    one the bot plays in (a restart would rejoin the wrong channel)."""
    bot.discord.members[OTHER] = VOICE + 1
    results = await asyncio.gather(
        bot.service.play(GUILD, LISTENER, TEXT, "first"),
        bot.service.play(GUILD, OTHER, TEXT, "second"),
        return_exceptions=True,
    )
    assert not isinstance(results[0], BaseException)
    assert isinstance(results[1], ServiceError)
    assert "already playing" in error_text(results[1])
    assert bot.lava.voice_channel(GUILD) == VOICE
    stored = await _stored_player(bot)
    assert getattr(stored, "voice_channel_id", None) == VOICE
    assert bot.titles() == await bot.stored_titles() == ["first"]


async def test_position_report_racing_a_skip_is_not_kept_for_the_next_song(
    bot: Bot, url: str
) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    late = lavalink.PlayerStateUpdate(
        GUILD, lavalink.PlayerState(time=0, position=170_000, connected=True)
    )
    save_position = bot.repo.save_position

    async def busy_save_position(guild_id: int, position_ms: int, at_ms: int, **kw: Any) -> None:
        await asyncio.sleep(0.05)  # the database is busy with another write for a moment
        await save_position(guild_id, position_ms, at_ms, **kw)

    bot.repo.save_position = busy_save_position  # type: ignore[method-assign]
    # The report for the old song is being stored when the skip comes in.
    report = asyncio.ensure_future(bot.service.handle_event(late))
    await asyncio.sleep(0)
    await asyncio.gather(bot.service.skip(GUILD, LISTENER), report)
    assert bot.service.queue(GUILD).position_ms < 10_000
    stored = await _stored_player(bot)
    assert getattr(stored, "position_ms", None) == 0
    bot = await bot.crash(url)
    assert bot.service.queue(GUILD).position_ms < 10_000
    await bot.repo.close()


async def test_restore_racing_play_starts_the_song_once(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await bot.service.handle_event(lavalink.NodeLost(bot.lava.node, frozenset({GUILD})))
    bot.lava.players.clear()  # the node went away with its players
    bot.lava.channels.clear()
    bot.lava.calls.clear()
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    await bot.service.play(GUILD, LISTENER, TEXT, "third")
    for _ in range(100):
        await asyncio.sleep(0.01)
    assert bot.lava.calls.count(("play", GUILD)) == 1
    assert bot.service.queue(GUILD).interrupted is False


async def test_guild_removed_while_restoring_stays_removed(bot: Bot, url: str) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    bot = await bot.crash(url)
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    await bot.service.guild_removed(GUILD)
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert GUILD not in bot.lava.players
    assert bot.lava.voice_channel(GUILD) is None
    assert await _stored_player(bot) is None
    assert bot.service.queue(GUILD).current is None
    await bot.repo.close()


async def test_play_whose_write_fails_does_not_sit_in_voice(bot: Bot) -> None:
    bot.failures.arm()
    with refused("nothing was added"):
        await bot.service.play(GUILD, LISTENER, TEXT, "song")
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.service.queue(GUILD).current is None
    # And the next /play works as usual.
    await bot.service.play(GUILD, LISTENER, TEXT, "song")
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.service.queue(GUILD).current is not None
    assert (await bot.repo.load_guilds())[0].player.status is PlayerStatus.PLAYING


@pytest.mark.parametrize("how", ["channel deleted", "kicked"])
async def test_skip_after_losing_voice_then_play_rejoins(bot: Bot, how: str) -> None:
    """A /skip while the bot is out of voice must not mark the next song as playing: the
    /play after it has to join the channel again, or it only queues into silence."""
    await bot.service.play(GUILD, LISTENER, TEXT, "3 songs")
    if how == "channel deleted":
        await bot.service.channel_deleted(GUILD, VOICE)
    else:
        bot.lava.channels.pop(GUILD)
        await bot.service.handle_event(lavalink.VoiceDisconnected(GUILD, VOICE))
    assert bot.lava.voice_channel(GUILD) is None
    outcome = await bot.service.skip(GUILD, LISTENER)
    assert outcome.next is not None
    assert outcome.waiting  # told it waits for /play, not that it plays
    await bot.service.play(GUILD, LISTENER, TEXT, "more")
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.lava.players[GUILD].encoded == outcome.next.encoded
    assert bot.titles() == ["3 songs #1", "3 songs #2", "more"]
    assert not bot.service.queue(GUILD).interrupted


async def test_play_in_a_new_server_during_shutdown(bot: Bot) -> None:
    """Commands still arrive while the shutdown writes its last heartbeat."""
    await bot.service.play(GUILD, LISTENER, TEXT, "song")
    bot.service.heartbeat.start()
    beat = bot.repo.liveness.beat

    async def slow_beat(process_key: str, at_ms: int) -> None:
        await asyncio.sleep(0.05)
        await beat(process_key, at_ms)

    bot.repo.liveness.beat = slow_beat  # type: ignore[method-assign]
    shutdown = asyncio.ensure_future(bot.service.shutdown())
    await asyncio.sleep(0.005)
    await bot.service.play(GUILD + 2, LISTENER, TEXT, "song")
    await shutdown  # no error
    stored = {g.player.guild_id: g.player for g in await bot.repo.load_guilds()}
    assert stored[GUILD + 2].status is PlayerStatus.PLAYING
    last = await bot.repo.liveness.last_alive("bot")
    assert last is not None
    assert last >= stored[GUILD + 2].position_at_ms - 1000


async def test_a_lost_node_stores_all_its_guilds_in_one_write(bot: Bot) -> None:
    guilds = [GUILD, GUILD + 1, GUILD + 2, GUILD + 3]
    for guild_id in guilds:
        await bot.service.play(guild_id, LISTENER, TEXT, "song")
    await bot.service.controller.settled()
    writes: list[bool] = []
    bot.repo.write_observer = lambda _s, ok: writes.append(ok)
    busy = bot.service._guilds[GUILD + 3].lock
    await busy.acquire()  # a command holds this one: it is stored after, on its own
    lost = asyncio.ensure_future(
        bot.service.handle_event(lavalink.NodeLost(bot.lava.node, frozenset(guilds)))
    )
    async with asyncio.timeout(5):
        while not writes:  # noqa: ASYNC110 - the write comes with no event to wait on
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert writes == [True]  # the three free guilds, together
    assert not lost.done()  # the fourth waits for its command
    busy.release()
    await lost
    assert writes == [True, True]
    stored = {g.player.guild_id: g.player for g in await bot.repo.load_guilds()}
    for guild_id in guilds:
        assert stored[guild_id].status is PlayerStatus.INTERRUPTED
        assert stored[guild_id] == bot.service._guilds[guild_id].player


async def test_shutdown_lets_a_running_restore_store_its_work(bot: Bot) -> None:
    """SIGTERM right after Lavalink came back: the restore that is re-joining voice finishes
    and stores the guild as playing, rather than being cut off mid-write."""
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await bot.service.handle_event(lavalink.NodeLost(bot.lava.node, frozenset({GUILD})))
    bot.lava.players.clear()
    bot.lava.channels.clear()
    assert bot.service.queue(GUILD).interrupted
    connect = bot.lava.connect

    async def slow_connect(guild_id: int, channel_id: int) -> None:
        await asyncio.sleep(0.3)  # Discord takes a moment to send the voice credentials
        await connect(guild_id, channel_id)

    bot.lava.connect = slow_connect  # type: ignore[method-assign]
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    await asyncio.sleep(0.05)  # the restore is waiting for voice
    await bot.service.shutdown()
    assert GUILD in bot.lava.players  # it played again
    stored = await _stored_player(bot)
    assert getattr(stored, "status", None) is PlayerStatus.PLAYING


async def _restarted_playing_in(count: int, bot: Bot, url: str) -> tuple[list[int], Bot]:
    """``count`` guilds playing, then the process dies and a new one has loaded them."""
    guilds = [GUILD + n for n in range(count)]
    for guild_id in guilds:
        await bot.service.play(guild_id, LISTENER, TEXT, "2 songs")
    return guilds, await bot.crash(url)


async def test_restores_after_a_restart_go_a_few_at_a_time_and_hold_their_guilds(
    bot: Bot, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of guilds wait for their re-join as a list, not a task each; a guild still
    # waiting is held all the same, so a command there runs after its restore, as before.
    monkeypatch.setattr(reactions, "RESTORES_AT_ONCE", 2)
    guilds, bot = await _restarted_playing_in(5, bot, url)
    gate, in_flight, most = asyncio.Event(), set[int](), 0
    connect = bot.lava.connect

    async def slow_connect(guild_id: int, channel_id: int) -> None:
        nonlocal most
        in_flight.add(guild_id)
        most = max(most, len(in_flight))
        await gate.wait()
        await connect(guild_id, channel_id)
        in_flight.discard(guild_id)

    bot.lava.connect = slow_connect  # type: ignore[method-assign]
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    await asyncio.sleep(0.05)
    assert most == 2
    last = guilds[-1] if guilds[-1] not in in_flight else guilds[0]
    paused = asyncio.ensure_future(bot.service.pause(last, LISTENER))
    await asyncio.sleep(0.05)
    assert not paused.done()  # its guild waits for its restore
    gate.set()
    await asyncio.wait_for(paused, 5)
    assert bot.lava.players[last].paused
    assert most == 2
    assert {g for g in guilds if g in bot.lava.players} == set(guilds)
    await bot.repo.close()


async def test_a_shutdown_while_restores_wait_lets_go_of_their_guilds(
    bot: Bot, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reactions, "RESTORES_AT_ONCE", 1)
    guilds, bot = await _restarted_playing_in(3, bot, url)
    never = asyncio.Event()

    async def hanging_connect(guild_id: int, channel_id: int) -> None:
        await never.wait()

    bot.lava.connect = hanging_connect  # type: ignore[method-assign]
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    await asyncio.sleep(0.02)
    assert all(bot.service._guilds[g].lock.locked() for g in guilds)
    await bot.service._reactions.drain(0.05)  # the shutdown's, with a short grace
    assert not any(bot.service._guilds[g].lock.locked() for g in guilds)
    await bot.repo.close()


async def test_restores_on_one_shard_do_not_wait_for_another_shards_turn(
    bot: Bot, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each shard has its own budget of voice joins: while one shard's joins wait for theirs,
    # the other shard's guilds are restored all the same.
    monkeypatch.setattr(reactions, "RESTORES_AT_ONCE", 1)
    spent = [(2 * n) << 22 for n in range(1, 4)]  # shard 0 of 2
    free = [(2 * n + 1) << 22 for n in range(1, 4)]  # shard 1 of 2
    for guild_id in spent + free:
        await bot.service.play(guild_id, LISTENER, TEXT, "2 songs")
    bot = await bot.crash(url)
    bot.discord.shard_count = 2
    never, connect = asyncio.Event(), bot.lava.connect

    async def shard_0_waits(guild_id: int, channel_id: int) -> None:
        if guild_id in spent:
            await never.wait()
        await connect(guild_id, channel_id)

    bot.lava.connect = shard_0_waits  # type: ignore[method-assign]
    await bot.service.handle_event(lavalink.SessionReady(bot.lava.node, "new", False))
    for _ in range(100):
        if set(free) <= set(bot.lava.players):
            break
        await asyncio.sleep(0.01)
    assert set(bot.lava.players) == set(free)
    await bot.service._reactions.drain(0.05)
