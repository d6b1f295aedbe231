"""Queue edits (/skip to, /remove, /move, /shuffle, /clear): the rules, the refusals, and the
write rule: after every edit the stored queue is the one in memory; a failed write changes
nothing."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.services import QueueService, in_turn, session_keeper
from bot.storage import LoopMode, Repository
from tests.services.fakes import (
    GUILD,
    LISTENER,
    TEXT,
    VOICE,
    Bot,
    FailingWrites,
    FakeDiscordView,
    RecordingLavalink,
    refused,
)

OTHER = 88


@pytest.fixture
async def seeded(url: str) -> AsyncIterator[Bot]:
    """The service with a seeded shuffle."""
    repo = await Repository.open(url)
    lava, discord = RecordingLavalink(), FakeDiscordView()
    service = QueueService(repo, lava, discord, rng=random.Random(7))
    lava.set_listener(in_turn(session_keeper(repo), service.handle_event))
    await service.load()
    yield Bot(repo, service, lava, discord, FailingWrites(repo._engine))
    await service.controller.close()
    await repo.close()


async def _queued(bot: Bot, count: int) -> list[str]:
    """``count`` songs: one playing, the rest upcoming; their titles in order."""
    await bot.service.play(GUILD, LISTENER, TEXT, f"{count} songs")
    return bot.titles()


async def _same_as_stored(bot: Bot) -> None:
    """What a restart loads is what memory holds: order, ids, sort keys, total length."""
    stored = {g.player.guild_id: g for g in await bot.repo.load_guilds()}[GUILD]
    view = bot.service.queue(GUILD, limit=100_000)
    current = stored.player.current_entry_id
    assert (view.current.id if view.current else None) == current
    upcoming = [(e.id, e.sort_key) for e in stored.entries if e.id != current]
    assert [(e.id, e.sort_key) for e in view.upcoming] == upcoming
    assert view.total_ms == sum(e.length_ms for e in view.upcoming if not e.is_stream)


def _playing(bot: Bot) -> str | None:
    player = bot.lava.players.get(GUILD)
    return player.encoded if player else None


# --- /skip to ---------------------------------------------------------------------------------


async def test_skip_to_drops_the_entries_before_it_and_plays_it(bot: Bot) -> None:
    titles = await _queued(bot, 6)
    outcome = await bot.service.edits.skip_to(GUILD, LISTENER, 3)
    assert (outcome.skipped.title, outcome.passed) == (titles[0], 2)
    assert outcome.next is not None
    assert outcome.next.title == titles[3]
    assert bot.titles() == titles[3:]
    assert _playing(bot) == outcome.next.encoded
    await _same_as_stored(bot)


async def test_skip_to_one_is_a_plain_skip(bot: Bot) -> None:
    titles = await _queued(bot, 3)
    await bot.service.edits.skip_to(GUILD, LISTENER, 1)
    assert bot.titles() == titles[1:]
    await _same_as_stored(bot)


async def test_skip_to_the_last_with_loop_queue_sends_the_passed_ones_to_the_back(
    bot: Bot,
) -> None:
    titles = await _queued(bot, 5)
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    await bot.service.edits.skip_to(GUILD, LISTENER, 4)
    # As four skips in a row would: the current one, then the three passed, in order.
    assert bot.titles() == [titles[4], *titles[:4]]
    await _same_as_stored(bot)
    await bot.end_track()  # the next finishes by itself: the loop goes on in that order
    assert bot.titles() == [*titles[:4], titles[4]]
    await _same_as_stored(bot)


async def test_skip_to_out_of_range_says_the_range_and_changes_nothing(bot: Bot) -> None:
    titles = await _queued(bot, 4)
    calls = len(bot.lava.calls)
    with refused(r"no song at position 4: the queue has songs 1 to 3"):
        await bot.service.edits.skip_to(GUILD, LISTENER, 4)
    with refused(r"no song at position 0"):
        await bot.service.edits.skip_to(GUILD, LISTENER, 0)
    assert bot.titles() == titles
    assert len(bot.lava.calls) == calls


async def test_skip_to_with_nothing_playing_or_nothing_queued(bot: Bot) -> None:
    with refused("Nothing is playing"):
        await bot.service.edits.skip_to(GUILD, LISTENER, 1)
    await _queued(bot, 1)
    with refused("Nothing is queued after the current song"):
        await bot.service.edits.skip_to(GUILD, LISTENER, 1)


async def test_skip_to_out_of_voice_waits_for_play(bot: Bot) -> None:
    titles = await _queued(bot, 4)
    bot.lava.channels.pop(GUILD)
    await bot.service.handle_event(_disconnected())
    outcome = await bot.service.edits.skip_to(GUILD, LISTENER, 2)
    assert outcome.waiting
    assert bot.titles() == titles[2:]
    await _same_as_stored(bot)


def _disconnected() -> Any:
    from bot import lavalink  # noqa: PLC0415

    return lavalink.VoiceDisconnected(GUILD, VOICE)


# --- /remove ----------------------------------------------------------------------------------


async def test_remove_one_and_a_range(bot: Bot) -> None:
    titles = await _queued(bot, 8)
    removed = await bot.service.edits.remove(GUILD, LISTENER, 2)
    assert [e.title for e in removed.entries] == [titles[2]]
    await _same_as_stored(bot)
    removed = await bot.service.edits.remove(GUILD, LISTENER, 3, 5)
    assert [e.title for e in removed.entries] == titles[4:7]
    assert (removed.first, removed.last) == (3, 5)
    assert bot.titles() == [titles[0], titles[1], titles[3], titles[7]]
    await _same_as_stored(bot)


async def test_remove_the_edges(bot: Bot) -> None:
    titles = await _queued(bot, 5)
    await bot.service.edits.remove(GUILD, LISTENER, 4)
    await bot.service.edits.remove(GUILD, LISTENER, 1)
    assert bot.titles() == [titles[0], titles[2], titles[3]]
    await bot.service.edits.remove(GUILD, LISTENER, 1, 2)
    assert bot.titles() == [titles[0]]
    assert bot.service.queue(GUILD).total_ms == 0
    await _same_as_stored(bot)


async def test_remove_refusals_change_nothing(bot: Bot) -> None:
    titles = await _queued(bot, 4)
    with refused(r"no song at position 4: the queue has songs 1 to 3"):
        await bot.service.edits.remove(GUILD, LISTENER, 4)
    with refused(r"no song at position 9"):
        await bot.service.edits.remove(GUILD, LISTENER, 2, 9)
    with refused(r"runs backwards \(3 to 1\)"):
        await bot.service.edits.remove(GUILD, LISTENER, 3, 1)
    assert bot.titles() == titles
    await _same_as_stored(bot)


# --- /move ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [(1, 5), (5, 1), (2, 4), (4, 2), (3, 4), (4, 3)])
async def test_move_puts_the_entry_at_its_new_place(bot: Bot, source: int, target: int) -> None:
    titles = await _queued(bot, 6)
    upcoming = titles[1:]
    moved = await bot.service.edits.move(GUILD, LISTENER, source, target)
    entry = upcoming.pop(source - 1)
    upcoming.insert(target - 1, entry)
    assert moved.entry.title == entry
    assert bot.titles() == [titles[0], *upcoming]
    await _same_as_stored(bot)


async def test_move_refusals(bot: Bot) -> None:
    titles = await _queued(bot, 3)
    with refused("at position 2 already"):
        await bot.service.edits.move(GUILD, LISTENER, 2, 2)
    with refused(r"no song at position 3: the queue has songs 1 to 2"):
        await bot.service.edits.move(GUILD, LISTENER, 1, 3)
    with refused(r"no song at position 5"):
        await bot.service.edits.move(GUILD, LISTENER, 5, 1)
    assert bot.titles() == titles


async def test_many_moves_to_one_spot_respace_a_window_not_the_queue(bot: Bot) -> None:
    """The neighbours run out of integers between them after ten moves; from then on a move
    re-spaces the rows crammed into that spot and a few more, never the whole queue."""
    titles = await _queued(bot, 1001)
    written: list[int] = []
    reorder = bot.repo.reorder

    async def counting(guild_id: int, keys: Any) -> None:
        written.append(len(keys))
        await reorder(guild_id, keys)

    bot.repo.reorder = counting  # type: ignore[method-assign]
    expected = titles[1:]
    for _ in range(100):
        await bot.service.edits.move(GUILD, LISTENER, 1000, 2)
        expected.insert(1, expected.pop())
    assert bot.titles() == [titles[0], *expected]
    await _same_as_stored(bot)
    assert written.count(1) >= 80  # most moves write one row
    assert max(written) <= 120, written  # the crammed ones and a few: not 1000
    assert sum(written) / len(written) < 20, written


# --- /shuffle ---------------------------------------------------------------------------------


async def test_shuffle_keeps_the_current_and_every_entry(seeded: Bot) -> None:
    bot = seeded
    titles = await _queued(bot, 30)
    before_ms = bot.service.queue(GUILD).total_ms
    shuffled = await bot.service.edits.shuffle(GUILD, LISTENER)
    after = bot.titles()
    assert after[0] == titles[0]
    assert sorted(after[1:]) == sorted(titles[1:])
    assert after[1:] != titles[1:]
    assert shuffled.count == 29
    assert shuffled.next.title == after[1]
    assert bot.service.queue(GUILD).total_ms == before_ms
    await _same_as_stored(bot)


async def test_shuffle_is_reproducible_with_a_seed(url: str, tmp_path: Any) -> None:
    orders = []
    for run in range(2):
        repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path}/run{run}.db")
        lava, discord = RecordingLavalink(), FakeDiscordView()
        service = QueueService(repo, lava, discord, rng=random.Random(42))
        await service.play(GUILD, LISTENER, TEXT, "12 songs")
        await service.edits.shuffle(GUILD, LISTENER)
        orders.append([e.title.rsplit("#")[1] for e in service.queue(GUILD, 100).upcoming])
        await service.controller.close()  # its first post is not written to a closed database
        await repo.close()
    assert orders[0] == orders[1]


async def test_shuffle_refusals(bot: Bot) -> None:
    with refused("Nothing is playing"):
        await bot.service.edits.shuffle(GUILD, LISTENER)
    await _queued(bot, 1)
    with refused("Nothing is queued"):
        await bot.service.edits.shuffle(GUILD, LISTENER)
    await bot.service.play(GUILD, LISTENER, TEXT, "one more")
    with refused("Only one song is queued"):
        await bot.service.edits.shuffle(GUILD, LISTENER)


async def test_shuffling_ten_thousand_is_one_quick_statement(seeded: Bot) -> None:
    bot = seeded
    await _queued(bot, 10_000)
    await bot.service.play(GUILD, LISTENER, TEXT, "one more")  # 10,000 upcoming
    await bot.service.controller.settled()  # its message is stored: not part of the shuffle
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]).split()[0].upper())

    import sqlalchemy as sa  # noqa: PLC0415

    sa.event.listen(bot.repo._engine.sync_engine, "before_cursor_execute", record)
    # CPU time of this process (its SQLite thread included), not wall time: the bound is on
    # the work done, which other processes on a loaded machine cannot stretch.
    started = time.process_time()
    await bot.service.edits.shuffle(GUILD, LISTENER)
    took = time.process_time() - started
    assert statements.count("WITH") + statements.count("UPDATE") == 1, statements
    assert took < 0.25, took  # 60-110 ms here: ~30 ms SQLite, the rest re-keying memory
    await _same_as_stored(bot)


# --- /clear -----------------------------------------------------------------------------------


async def test_clear_keeps_the_current_track_playing(bot: Bot) -> None:
    titles = await _queued(bot, 5)
    cleared = await bot.service.edits.clear(GUILD, LISTENER)
    assert cleared.count == 4
    assert cleared.current is not None
    assert cleared.current.title == titles[0]
    assert bot.titles() == titles[:1]
    assert bot.service.queue(GUILD).total_ms == 0
    assert _playing(bot) == cleared.current.encoded
    await _same_as_stored(bot)
    with refused("Nothing is queued after the current song"):
        await bot.service.edits.clear(GUILD, LISTENER)


# --- for every edit ---------------------------------------------------------------------------

EDITS: dict[str, Any] = {
    "skip to": lambda s: s.skip_to(GUILD, LISTENER, 2),
    "remove": lambda s: s.remove(GUILD, LISTENER, 1, 2),
    "move": lambda s: s.move(GUILD, LISTENER, 1, 3),
    "shuffle": lambda s: s.shuffle(GUILD, LISTENER),
    "clear": lambda s: s.clear(GUILD, LISTENER),
}
UNSAVED = {
    "skip to": "nothing was skipped",
    "remove": "nothing was removed",
    "move": "nothing was moved",
    "shuffle": "it wasn't shuffled",
    "clear": "nothing was cleared",
}
JOIN = {
    "skip to": "to skip",
    "remove": "to remove songs",
    "move": "to move songs",
    "shuffle": "to shuffle the queue",
    "clear": "to clear the queue",
}


@pytest.mark.parametrize("edit", EDITS)
async def test_a_failed_write_changes_nothing_and_says_so(seeded: Bot, edit: str) -> None:
    bot = seeded
    titles = await _queued(bot, 5)
    playing = _playing(bot)
    bot.failures.arm()
    with refused(f"couldn't save the queue just now, so {UNSAVED[edit]}"):
        await EDITS[edit](bot.service.edits)
    assert bot.failures.fired == 1
    assert bot.titles() == titles
    assert _playing(bot) == playing
    await _same_as_stored(bot)


@pytest.mark.parametrize("edit", EDITS)
async def test_only_listeners_may_edit(bot: Bot, edit: str) -> None:
    titles = await _queued(bot, 5)
    bot.discord.members[LISTENER] = VOICE + 1
    with refused(f"Join my voice channel <#{VOICE}> {JOIN[edit]}"):
        await EDITS[edit](bot.service.edits)
    assert bot.titles() == titles


@pytest.mark.parametrize("edit", EDITS)
async def test_nothing_to_edit(bot: Bot, edit: str) -> None:
    with refused("Nothing is playing"):
        await EDITS[edit](bot.service.edits)


async def test_an_edit_waiting_for_the_lock_checks_again(bot: Bot) -> None:
    """A /clear that got in first leaves a waiting /remove nothing to remove."""
    await _queued(bot, 4)
    import asyncio  # noqa: PLC0415

    results = await asyncio.gather(
        bot.service.edits.clear(GUILD, LISTENER),
        bot.service.edits.remove(GUILD, LISTENER, 2),
        return_exceptions=True,
    )
    assert not isinstance(results[0], BaseException)
    with refused("Nothing is queued"):
        raise results[1]  # type: ignore[misc]
    await _same_as_stored(bot)
