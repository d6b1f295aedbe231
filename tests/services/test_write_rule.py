"""One rule for a failed write: memory changes only once the database took the change.

A command's failed write is told to its user (see ``test_player_settings``); an event's is
logged and memory stays as it was. The one exception is the bot being out of voice: memory
believes that even unstored, or the reconciler would join the channel again.
"""

from __future__ import annotations

import pytest

from bot import lavalink
from bot.storage import PlayerStatus
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot


async def _stored(bot: Bot) -> tuple[PlayerStatus, int | None]:
    (stored,) = await bot.repo.load_guilds()
    return stored.player.status, stored.player.voice_channel_id


async def test_kicked_while_the_database_fails_is_believed_and_never_rejoined(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    bot.lava.channels.pop(GUILD)
    bot.failures.arm()
    await bot.service.handle_event(lavalink.VoiceDisconnected(GUILD, VOICE))
    assert bot.failures.fired == 1
    state = bot.service.player_state(GUILD)
    assert state is not None
    assert (state.status, state.voice_channel_id) == (PlayerStatus.INTERRUPTED, None)
    assert bot.service.stats().in_voice == 0  # nothing promised: the reconciler stays away
    assert await _stored(bot) == (PlayerStatus.PLAYING, VOICE)
    # The next write that lands stores the whole player, the departure included.
    await bot.service.set_volume(GUILD, LISTENER, 50)
    assert await _stored(bot) == (PlayerStatus.INTERRUPTED, None)


@pytest.mark.parametrize("how", ["channel deleted", "voice failed"])
async def test_other_departures_are_believed_unstored_too(bot: Bot, how: str) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    bot.failures.arm()
    if how == "channel deleted":
        await bot.service.channel_deleted(GUILD, VOICE)
    else:
        await bot.service.handle_event(lavalink.VoiceFailed(GUILD, VOICE, 4006, ""))
    assert bot.failures.fired == 1
    assert bot.service.queue(GUILD).interrupted
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.service.stats().in_voice == 0


async def test_an_unstored_move_keeps_memory_as_it_was(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "song")
    bot.failures.arm()
    await bot.service.handle_event(lavalink.VoiceMoved(GUILD, VOICE, VOICE + 1))
    assert bot.failures.fired == 1
    state = bot.service.player_state(GUILD)
    assert state is not None
    assert state.voice_channel_id == VOICE == (await _stored(bot))[1]
    assert bot.discord.announced == []  # the bot's own write: logged, nobody is told


async def test_an_unstored_node_loss_keeps_memory_and_still_says_so(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "song")
    bot.failures.arm()
    await bot.service.handle_event(lavalink.NodeLost(bot.lava.node, frozenset({GUILD})))
    assert bot.failures.fired == 1
    assert not bot.service.queue(GUILD).interrupted
    assert (await _stored(bot))[0] is PlayerStatus.PLAYING
    assert bot.discord.announced[-1].startswith("I lost the music server.")
    # When a node is back the restore plays it either way.
    bot.lava.players.clear()
    bot.lava.channels.clear()
    await bot.rebuild()
    assert GUILD in bot.lava.players
