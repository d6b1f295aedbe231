"""Pause, volume, loop and filters: the service rules, over the real repository on SQLite.

Each setting is checked where a user would notice it: the live player (the Lavalink stand-in),
what a restart loads from the database, and what a rebuilt player plays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from bot import lavalink
from bot.services import FILTER_PRESETS
from bot.storage import LoopMode, Repository
from bot.storage.migrate import alembic_config
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

STRANGER = 99


async def play(bot: Bot, query: str) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, query)


# --- pause / resume -------------------------------------------------------------------------


async def test_pause_freezes_the_player_and_survives_a_restart(bot: Bot, url: str) -> None:
    await play(bot, "3 songs")
    settings = await bot.service.pause(GUILD, LISTENER)
    assert settings.paused
    assert bot.lava.players[GUILD].paused
    with refused("already paused"):
        await bot.service.pause(GUILD, LISTENER)
    frozen = bot.service.queue(GUILD).position_ms
    await asyncio.sleep(0.05)
    assert bot.service.queue(GUILD).position_ms == frozen

    bot = await bot.crash(url)
    assert bot.service.queue(GUILD).paused
    settings = await bot.service.resume(GUILD, LISTENER)
    assert not settings.paused
    with refused("isn't paused"):
        await bot.service.resume(GUILD, LISTENER)
    await bot.repo.close()


async def test_only_listeners_may_pause_and_nothing_playing_is_said(bot: Bot) -> None:
    with refused("Nothing is playing"):
        await bot.service.pause(GUILD, LISTENER)
    await play(bot, "song")
    bot.discord.members[STRANGER] = VOICE + 1
    with refused("Join my voice channel"):
        await bot.service.pause(GUILD, STRANGER)
    with refused("Join my voice channel"):
        await bot.service.set_volume(GUILD, STRANGER, 10)
    assert not bot.lava.players[GUILD].paused


async def test_skip_while_paused_starts_the_next_song_paused(bot: Bot) -> None:
    await play(bot, "2 songs")
    await bot.service.pause(GUILD, LISTENER)
    await bot.service.skip(GUILD, LISTENER)
    assert bot.lava.players[GUILD].encoded is not None
    assert bot.lava.players[GUILD].paused  # Lavalink would unpause if the flag were not sent


# --- volume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [-1, 201, 1000])
async def test_volume_out_of_range_is_refused_politely(bot: Bot, level: int) -> None:
    await play(bot, "song")
    with refused("from 0 to 200"):
        await bot.service.set_volume(GUILD, LISTENER, level)
    assert bot.lava.players[GUILD].volume == 100
    assert bot.service.queue(GUILD).volume == 100


async def test_volume_reaches_the_player_and_the_next_tracks(bot: Bot, url: str) -> None:
    await play(bot, "2 songs")
    await bot.service.set_volume(GUILD, LISTENER, 35)
    assert bot.lava.players[GUILD].volume == 35
    await bot.end_track()
    assert bot.lava.players[GUILD].volume == 35
    bot = await bot.crash(url)
    assert bot.service.queue(GUILD).volume == 35
    await bot.repo.close()


async def test_a_new_queue_starts_at_the_servers_default_volume(bot: Bot) -> None:
    """/volume changes the music playing; a queue started from nothing starts at the server's
    default volume (/settings volume), whatever /volume said while nothing played."""
    await bot.service.set_volume(GUILD, LISTENER, 150)
    assert ("update", GUILD) not in bot.lava.calls  # no player to update yet
    await play(bot, "song")
    assert bot.lava.players[GUILD].volume == 100
    await bot.service.settings.set_default_volume(GUILD, True, 30)
    await bot.service.set_volume(GUILD, LISTENER, 150)  # the current one changes
    assert bot.lava.players[GUILD].volume == 150
    await bot.end_track()  # the queue ends; the next /play starts a new one
    await play(bot, "another")
    assert bot.lava.players[GUILD].volume == 30
    assert bot.service.queue(GUILD).volume == 30


async def test_a_failed_save_changes_nothing(bot: Bot) -> None:
    await play(bot, "song")
    bot.failures.arm()
    with refused("couldn't save"):
        await bot.service.set_volume(GUILD, LISTENER, 20)
    assert bot.lava.players[GUILD].volume == 100
    assert bot.service.queue(GUILD).volume == 100


async def test_lavalink_down_keeps_the_setting_for_the_rebuild(bot: Bot) -> None:
    await play(bot, "song")
    bot.lava.fail = True
    settings = await bot.service.set_volume(GUILD, LISTENER, 60)
    assert settings.volume == 60
    (stored,) = await bot.repo.load_guilds()
    assert stored.player.volume == 60


# --- loop -----------------------------------------------------------------------------------


async def test_loop_track_replays_on_natural_end_and_skip_moves_on(bot: Bot, url: str) -> None:
    await play(bot, "3 songs")
    first = bot.titles()
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.TRACK)
    await bot.end_track()
    await bot.end_track()
    assert bot.titles() == first
    assert bot.lava.players[GUILD].encoded is not None
    assert await bot.stored_titles() == first

    await bot.service.skip(GUILD, LISTENER)
    assert bot.titles() == first[1:]
    bot = await bot.crash(url)
    assert bot.service.queue(GUILD).loop_mode is LoopMode.TRACK
    assert bot.titles() == first[1:]
    await bot.repo.close()


async def test_loop_track_drops_a_track_that_failed_to_load(bot: Bot) -> None:
    await play(bot, "2 songs")
    first = bot.titles()
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.TRACK)
    await bot.end_track(lavalink.TrackEndReason.LOAD_FAILED)
    assert bot.titles() == first[1:]


async def test_loop_queue_sends_the_finished_song_to_the_back(bot: Bot) -> None:
    await play(bot, "3 songs")
    a, b, c = bot.titles()
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    await bot.end_track()
    assert bot.titles() == [b, c, a]
    await bot.service.skip(GUILD, LISTENER)  # a skipped song stays in the looped queue
    assert bot.titles() == [c, a, b]
    assert await bot.stored_titles() == [c, a, b]
    await play(bot, "new one")
    assert bot.titles() == [c, a, b, "new one"]
    assert await bot.stored_titles() == [c, a, b, "new one"]


async def test_loop_queue_of_one_song_plays_it_again(bot: Bot) -> None:
    await play(bot, "lonely")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    for _ in range(3):
        await bot.end_track()
        assert bot.titles() == ["lonely"]
        assert bot.lava.players[GUILD].encoded is not None


async def test_loop_queue_end_writes_one_entry_row_and_the_player(bot: Bot) -> None:
    await play(bot, "300 songs")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    writes: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        if statement.lstrip().split()[0] in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    sa.event.listen(bot.repo._engine.sync_engine, "before_cursor_execute", record)
    await bot.end_track()
    queue_writes = [w for w in writes if "queue_entries" in w or "queue_order" in w]
    assert len(queue_writes) == 1, queue_writes
    assert queue_writes[0].lstrip().startswith("UPDATE queue_order")


# --- storage failures keep memory and database equal ----------------------------------------


async def test_failed_skip_changes_nothing(bot: Bot) -> None:
    await play(bot, "3 songs")
    before = bot.titles()
    bot.failures.arm()
    with refused("nothing was skipped"):
        await bot.service.skip(GUILD, LISTENER)
    assert bot.titles() == before
    assert await bot.stored_titles() == before


async def test_failed_write_at_a_natural_end_stops_and_says_so(bot: Bot, url: str) -> None:
    await play(bot, "3 songs")
    before = bot.titles()
    bot.failures.arm()
    await bot.end_track()
    assert bot.titles() == before
    assert await bot.stored_titles() == before
    assert "couldn't save the queue" in bot.discord.announced[-1]
    # /skip goes on once the database is back.
    await bot.service.skip(GUILD, LISTENER)
    assert bot.titles() == before[1:]
    bot = await bot.crash(url)
    assert bot.titles() == before[1:]
    await bot.repo.close()


# --- filters --------------------------------------------------------------------------------


async def test_filter_preset_reaches_the_player_and_off_clears_it(bot: Bot) -> None:
    await play(bot, "song")
    settings = await bot.service.set_filter(GUILD, LISTENER, "nightcore")
    assert settings.filter_name == "nightcore"
    assert bot.lava.players[GUILD].filters == FILTER_PRESETS["nightcore"]
    await bot.service.set_filter(GUILD, LISTENER, "off")
    assert bot.lava.players[GUILD].filters == lavalink.Filters()
    (stored,) = await bot.repo.load_guilds()
    assert stored.player.filters is None
    with refused("don't know the filter"):
        await bot.service.set_filter(GUILD, LISTENER, "loud")


# --- rebuild --------------------------------------------------------------------------------


async def test_rebuild_restores_track_position_volume_filters_pause_and_loop(
    bot: Bot, url: str
) -> None:
    await play(bot, "3 songs")
    current = bot.service.queue(GUILD).current
    assert current is not None
    await bot.service.set_volume(GUILD, LISTENER, 40)
    await bot.service.set_filter(GUILD, LISTENER, "vaporwave")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    await bot.service.pause(GUILD, LISTENER)
    await bot.repo.save_position(GUILD, 42_000, 0)  # long ago, but paused: no time passed
    bot = await bot.crash(url)

    await bot.rebuild()
    player = bot.lava.players[GUILD]
    assert player.user_data["entry"] == current.id
    assert (player.paused, player.volume) == (True, 40)
    assert player.filters == FILTER_PRESETS["vaporwave"]
    assert player.position == 42_000
    assert bot.lava.channels[GUILD] == VOICE
    view = bot.service.queue(GUILD)
    assert (view.loop_mode, view.filter_name, view.paused) == (LoopMode.QUEUE, "vaporwave", True)
    await bot.repo.close()


async def test_rebuild_of_a_playing_track_adds_the_time_since_the_last_report(
    bot: Bot, url: str
) -> None:
    await play(bot, "song")
    await bot.repo.save_position(GUILD, 42_000, int(time.time() * 1000) - 5_000)
    bot = await bot.crash(url)
    await bot.rebuild()
    assert 47_000 <= bot.lava.players[GUILD].position <= 49_000
    assert not bot.lava.players[GUILD].paused
    await bot.repo.close()


@pytest.mark.parametrize("stored", ["{not json", '{"volume": 9.0}', '{"timescale": 3}'])
async def test_unreadable_stored_filters_do_not_stop_a_restart(
    bot: Bot, url: str, stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    await play(bot, "song")
    async with bot.repo._engine.begin() as conn:
        await conn.execute(sa.text("UPDATE guild_players SET filters = :f"), {"f": stored})
    with caplog.at_level(logging.WARNING):
        bot = await bot.crash(url)
    assert "unreadable stored filters" in caplog.text
    assert bot.service.queue(GUILD).filter_name == "off"
    await bot.rebuild()
    assert bot.lava.players[GUILD].filters is None
    await bot.repo.close()


# --- migration ------------------------------------------------------------------------------


async def test_migration_adds_settings_to_existing_players_and_downgrades(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, position_ms, position_at_ms, paused, "
                "volume, state) VALUES (5, 0, 0, 1, 70, 'idle')"
            )
        )
    repo = await Repository.open(f"sqlite+aiosqlite:///{db}")
    (stored,) = await repo.load_guilds()
    assert stored.player.loop_mode is LoopMode.OFF
    assert stored.player.filters is None
    assert (stored.player.paused, stored.player.volume) == (True, 70)
    await repo.close()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("guild_players")}
        assert "loop_mode" not in columns
        assert conn.execute(sa.text("SELECT volume FROM guild_players")).scalar() == 70
    engine.dispose()


async def test_unknown_stored_loop_mode_loads_as_off(
    bot: Bot, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await play(bot, "2 songs")
    async with bot.repo._engine.begin() as conn:
        await conn.execute(sa.text("UPDATE guild_players SET loop_mode = 'sideways'"))
    with caplog.at_level(logging.WARNING):
        bot = await bot.crash(url)
    assert "unknown stored loop mode" in caplog.text
    assert bot.service.queue(GUILD).loop_mode is LoopMode.OFF
    assert len(bot.titles()) == 2
    await bot.repo.close()
