"""The now-playing controller: when it is posted, edited and deleted, and what its buttons do.

Over the real repository on SQLite with the Discord stand-in, which keeps each controller
message as what it shows (``FakeDiscordView.controllers``) and every call in order
(``controller_calls``). The worker's interval is made short so the tests wait little; the
coalescing test sets it long on purpose.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from bot import lavalink
from bot.services import errors as e
from bot.services.buttons import Button
from bot.services.controller import DRIFT_S
from bot.services.ports import Delivery
from bot.services.views import ControllerView, PlayerSettings, Shuffled, SkipOutcome, StopOutcome
from bot.storage import ControllerMessage, LoopMode
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

STRANGER = 99


@pytest.fixture(autouse=True)
def quick(bot: Bot) -> None:
    bot.service.controller.interval = 0.02


async def settled(bot: Bot) -> None:
    """Wait until every change reached the Discord stand-in."""
    async with asyncio.timeout(5):
        await bot.service.controller.settled()


async def playing(bot: Bot, *queries: str) -> int:
    """Play ``queries`` (the first starts); the controller's message id."""
    for query in queries:
        await bot.service.play(GUILD, LISTENER, TEXT, query)
    await settled(bot)
    (message_id,) = bot.discord.controllers
    return message_id


def shown(bot: Bot, message_id: int) -> ControllerView:
    channel_id, view = bot.discord.controllers[message_id]
    assert channel_id == TEXT
    return view


def calls(bot: Bot, kind: str) -> list[int]:
    return [message for done, message in bot.discord.controller_calls if done == kind]


async def test_a_track_start_posts_one_controller_with_its_end_as_a_time(bot: Bot) -> None:
    before = time.time()
    message_id = await playing(bot, "first")
    view = shown(bot, message_id)
    assert view.current.title == "first"
    assert view.current.requester_id == LISTENER
    assert (view.paused, view.waiting, view.volume, view.loop_mode) == (
        False,
        False,
        100,
        LoopMode.OFF,
    )
    # 180 s long, just started: it ends three minutes from now.
    assert view.ends_at_s is not None
    assert before + 180 - 1 <= view.ends_at_s <= time.time() + 180 + 1
    assert await bot.repo.controllers.load() == [ControllerMessage(GUILD, TEXT, message_id)]
    assert calls(bot, "post") == [message_id]


async def test_the_next_track_edits_the_same_message_and_is_not_announced(bot: Bot) -> None:
    message_id = await playing(bot, "first", "second")
    await bot.end_track()
    await settled(bot)
    assert shown(bot, message_id).current.title == "second"
    assert calls(bot, "post") == [message_id]
    assert calls(bot, "edit") == [message_id]
    assert bot.discord.announced == []  # the controller replaced "Now playing"


async def test_pause_resume_loop_volume_filter_and_seek_each_edit_it(bot: Bot) -> None:
    message_id = await playing(bot, "first")
    await bot.service.pause(GUILD, LISTENER)
    await settled(bot)
    assert (shown(bot, message_id).paused, shown(bot, message_id).ends_at_s) == (True, None)
    await bot.service.resume(GUILD, LISTENER)
    await settled(bot)
    assert shown(bot, message_id).ends_at_s is not None
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    await bot.service.set_volume(GUILD, LISTENER, 40)
    await settled(bot)
    assert (shown(bot, message_id).loop_mode, shown(bot, message_id).volume) == (
        LoopMode.QUEUE,
        40,
    )
    ends = shown(bot, message_id).ends_at_s
    assert ends is not None
    await bot.service.controls.seek(GUILD, LISTENER, "+60")
    await settled(bot)
    moved = shown(bot, message_id).ends_at_s
    assert moved is not None
    assert abs(ends - 60 - moved) <= DRIFT_S
    edits = len(calls(bot, "edit"))
    await bot.service.set_filter(GUILD, LISTENER, "nightcore")  # 1.1 times as fast: ends sooner
    await settled(bot)
    view = shown(bot, message_id)
    assert view.filter_name == "nightcore"
    assert view.ends_at_s is not None
    assert view.ends_at_s < moved - DRIFT_S
    assert len(calls(bot, "edit")) == edits + 1
    assert calls(bot, "post") == [message_id]


async def test_nothing_visible_changed_means_no_edit(bot: Bot) -> None:
    await playing(bot, "first", "second")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.OFF)  # already off: no write
    await bot.service.play(GUILD, LISTENER, TEXT, "third")  # the queue is not shown
    await bot.service.edits.shuffle(GUILD, LISTENER)
    await settled(bot)
    assert calls(bot, "edit") == []


async def test_a_burst_becomes_one_edit_with_the_latest_state(bot: Bot) -> None:
    message_id = await playing(bot, "first")
    bot.service.controller.interval = 2.0  # longer than the burst takes, even on a busy machine
    for level in range(10, 110, 10):
        await bot.service.set_volume(GUILD, LISTENER, level)
    await bot.service.pause(GUILD, LISTENER)
    await settled(bot)
    assert calls(bot, "edit") == [message_id]
    view = shown(bot, message_id)
    assert (view.volume, view.paused) == (100, True)


async def test_edits_keep_the_interval_apart(bot: Bot) -> None:
    await playing(bot, "first")
    bot.service.controller.interval = 0.3
    stamps: list[float] = []
    edit = bot.discord.edit_controller

    async def timed(channel_id: int, message_id: int, view: ControllerView) -> Delivery:
        stamps.append(time.monotonic())
        return await edit(channel_id, message_id, view)

    bot.discord.edit_controller = timed  # type: ignore[method-assign]
    for level in (10, 20, 30):
        await bot.service.set_volume(GUILD, LISTENER, level)
        await asyncio.sleep(0.05)
        await settled(bot)
    assert len(stamps) == 3
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("ending", ["queue end", "stop", "leave", "kicked", "skip last"])
async def test_playback_ending_deletes_it_and_forgets_it(bot: Bot, ending: str) -> None:
    message_id = await playing(bot, "first")
    match ending:
        case "queue end":
            await bot.end_track()
        case "stop":
            await bot.service.controls.stop(GUILD, LISTENER)
        case "leave":
            await bot.service.controls.leave(GUILD, LISTENER)
        case "kicked":
            await bot.service.handle_event(lavalink.VoiceDisconnected(GUILD, VOICE))
        case "skip last":
            await bot.service.skip(GUILD, LISTENER)
    await settled(bot)
    assert bot.discord.controllers == {}
    assert calls(bot, "delete") == [message_id]
    assert await bot.repo.controllers.load() == []
    assert not bot.service.controller.live(GUILD, message_id)


async def test_a_lost_music_server_keeps_it_saying_it_waits(bot: Bot) -> None:
    message_id = await playing(bot, "first")
    await bot.service.handle_event(lavalink.NodeLost(bot.lava.node, frozenset({GUILD})))
    await settled(bot)
    view = shown(bot, message_id)
    assert (view.waiting, view.ends_at_s) == (True, None)


async def test_a_restart_edits_the_stored_message_not_a_new_one(bot: Bot, url: str) -> None:
    message_id = await playing(bot, "first")
    bot = await bot.crash(url, same_discord=True)
    controller = bot.service.controller
    controller.interval = 0.02
    assert controller.live(GUILD, message_id)
    controller.refresh_all()
    await settled(bot)
    assert calls(bot, "post") == [message_id]
    assert calls(bot, "edit") == [message_id]
    await bot.repo.close()


async def test_a_restart_after_the_music_ended_deletes_the_old_message(bot: Bot, url: str) -> None:
    message_id = await playing(bot, "first")
    bot.service._playback.watcher = None  # type: ignore[attr-defined]
    await bot.service.controls.stop(GUILD, LISTENER)  # dies before the controller heard it
    await settled(bot)
    assert message_id in bot.discord.controllers
    bot = await bot.crash(url, same_discord=True)
    controller = bot.service.controller
    controller.interval = 0.02
    controller.refresh_all()
    await settled(bot)
    assert bot.discord.controllers == {}
    assert await bot.repo.controllers.load() == []
    await bot.repo.close()


async def test_a_message_someone_deleted_is_posted_again_at_the_next_change(bot: Bot) -> None:
    old = await playing(bot, "first")
    del bot.discord.controllers[old]
    await bot.service.pause(GUILD, LISTENER)
    await settled(bot)
    (new,) = bot.discord.controllers
    assert new != old
    assert shown(bot, new).paused
    assert await bot.repo.controllers.load() == [ControllerMessage(GUILD, TEXT, new)]
    assert bot.service.controller.live(GUILD, new)
    assert not bot.service.controller.live(GUILD, old)


async def test_a_failed_edit_is_retried_with_the_next_change(bot: Bot) -> None:
    message_id = await playing(bot, "first")
    bot.discord.refuse = Delivery.FAILED
    await bot.service.set_volume(GUILD, LISTENER, 50)
    await settled(bot)
    bot.discord.refuse = None
    await bot.service.set_volume(GUILD, LISTENER, 50)  # the same value: still a change
    await settled(bot)
    assert shown(bot, message_id).volume == 50


async def test_an_unstored_controller_still_works_in_this_run(bot: Bot) -> None:
    bot.failures.arm(controller=True)
    message_id = await playing(bot, "first")
    assert bot.failures.fired == 1
    assert await bot.repo.controllers.load() == []
    await bot.service.pause(GUILD, LISTENER)
    await settled(bot)
    assert shown(bot, message_id).paused


async def test_a_guild_removed_while_its_controller_is_posted_leaves_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord answers the post only after the bot was removed from the server: the message is
    # deleted at the next pass and no row is stored for a guild that is gone (no error).
    post = bot.discord.post_controller

    async def slow_post(channel_id: int, view: ControllerView) -> int | None:
        await bot.service.guild_removed(GUILD)
        return await post(channel_id, view)

    bot.discord.post_controller = slow_post  # type: ignore[method-assign]
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    await settled(bot)
    (message_id,) = calls(bot, "post")
    assert calls(bot, "delete") == [message_id]
    assert bot.discord.controllers == {}
    assert await bot.repo.controllers.load() == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- buttons ---------------------------------------------------------------------------------


async def test_each_button_is_its_command(bot: Bot) -> None:
    message_id = await playing(bot, "first", "second", "third", "fourth")
    buttons = bot.service.buttons
    paused = await buttons.press(GUILD, message_id, LISTENER, Button.PAUSE)
    assert isinstance(paused, PlayerSettings)
    assert paused.paused
    assert bot.lava.players[GUILD].paused
    resumed = await buttons.press(GUILD, message_id, LISTENER, Button.PAUSE)
    assert isinstance(resumed, PlayerSettings)
    assert not resumed.paused
    modes = []
    for _ in range(3):
        looped = await buttons.press(GUILD, message_id, LISTENER, Button.LOOP)
        assert isinstance(looped, PlayerSettings)
        modes.append(looped.loop_mode)
    assert modes == [LoopMode.TRACK, LoopMode.QUEUE, LoopMode.OFF]
    skipped = await buttons.press(GUILD, message_id, LISTENER, Button.SKIP)
    assert isinstance(skipped, SkipOutcome)
    assert (skipped.skipped.title, bot.titles()[0]) == ("first", "second")
    shuffled = await buttons.press(GUILD, message_id, LISTENER, Button.SHUFFLE)
    assert isinstance(shuffled, Shuffled)
    assert shuffled.count == 2
    stopped = await buttons.press(GUILD, message_id, LISTENER, Button.STOP)
    assert isinstance(stopped, StopOutcome)
    assert bot.titles() == []
    await settled(bot)
    assert bot.discord.controllers == {}


@pytest.mark.parametrize("button", list(Button))
async def test_a_button_refuses_as_its_command_does(bot: Bot, button: Button) -> None:
    message_id = await playing(bot, "first", "second", "third")
    bot.discord.members[STRANGER] = VOICE + 1
    with refused(f"Join my voice channel <#{VOICE}> to "):
        await bot.service.buttons.press(GUILD, message_id, STRANGER, button)
    assert bot.titles() == ["first", "second", "third"]
    view = bot.service.queue(GUILD)
    assert (view.paused, view.loop_mode) == (False, LoopMode.OFF)


@pytest.mark.parametrize("button", list(Button))
async def test_a_press_on_an_ended_player_changes_nothing(bot: Bot, button: Button) -> None:
    old = await playing(bot, "first")
    await bot.service.controls.stop(GUILD, LISTENER)
    await settled(bot)
    await bot.service.play(GUILD, LISTENER, TEXT, "new")  # a new player, a new controller
    await bot.service.play(GUILD, LISTENER, TEXT, "after")
    await settled(bot)
    with pytest.raises(e.PlayerEnded):
        await bot.service.buttons.press(GUILD, old, LISTENER, button)
    assert bot.titles() == ["new", "after"]
    view = bot.service.queue(GUILD)
    assert (view.paused, view.loop_mode) == (False, LoopMode.OFF)


async def test_a_press_after_the_guild_never_played_is_ended_too(bot: Bot) -> None:
    with pytest.raises(e.PlayerEnded):
        await bot.service.buttons.press(GUILD, 12345, LISTENER, Button.LOOP)
    assert bot.service.player_state(GUILD) is None


async def test_a_press_after_the_music_ended_but_before_the_delete_changes_nothing(
    bot: Bot,
) -> None:
    message_id = await playing(bot, "first")
    bot.service.controller.interval = 5.0  # the delete waits: the message is still there
    await bot.service.pause(GUILD, LISTENER)
    await bot.service.controls.stop(GUILD, LISTENER)
    assert message_id in bot.discord.controllers
    for button in Button:
        with pytest.raises(e.PlayerEnded):
            await bot.service.buttons.press(GUILD, message_id, LISTENER, button)
    assert bot.service.queue(GUILD).loop_mode is LoopMode.OFF
