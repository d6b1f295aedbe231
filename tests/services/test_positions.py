"""Positions derived from a stored anchor (issue 14): what is written, and what is derived.

Over the real repository on SQLite with the Lavalink stand-in, which sends no position reports
of its own: each test hands the service the ``playerUpdate`` it wants judged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import msgspec
import pytest

from bot import lavalink
from bot.services.guild import FILTER_PRESETS, GuildState, now_ms
from bot.services.heartbeat import PROCESS_KEY, Heartbeat
from bot.services.positions import DRIFT_MS, anchored, drifted, rebuild_position
from bot.storage import PlayerRecord, PlayerStatus, QueueEntry
from tests.services.fakes import GUILD, LISTENER, TEXT, Bot

LENGTH = 180_000


def _guild(
    position_ms: int, ago_ms: int, *, status: PlayerStatus = PlayerStatus.PLAYING, **kw: object
) -> GuildState:
    player = PlayerRecord(
        guild_id=GUILD, status=status, position_ms=position_ms,
        position_at_ms=now_ms() - ago_ms, current_entry_id=1, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    guild = GuildState(player)
    guild.current = QueueEntry("enc", "song", "artist", LENGTH, False, None, LISTENER, 1, 1, 0)
    return guild


def _report(position: int) -> lavalink.PlayerStateUpdate:
    return lavalink.PlayerStateUpdate(
        GUILD, lavalink.PlayerState(time=now_ms(), position=position, connected=True)
    )


async def _writes(bot: Bot) -> list[bool]:
    """Every write from now on (the controller's first post, a write of its own, done)."""
    await bot.service.controller.settled()
    done: list[bool] = []
    bot.repo.write_observer = lambda _seconds, committed: done.append(committed)
    return done


async def _stored(bot: Bot) -> PlayerRecord:
    (stored,) = [g.player for g in await bot.repo.load_guilds() if g.player.guild_id == GUILD]
    return stored


# --- the arithmetic ----------------------------------------------------------------------------


def test_a_playing_anchor_runs_with_the_clock_and_the_speed() -> None:
    assert abs(anchored(_guild(10_000, 20_000)) - 30_000) <= 50
    nightcore = FILTER_PRESETS["nightcore"]
    assert nightcore.timescale is not None
    rate = nightcore.timescale.speed * nightcore.timescale.rate
    fast = _guild(10_000, 20_000, filters=msgspec.json.encode(nightcore).decode())
    assert abs(anchored(fast) - (10_000 + 20_000 * rate)) <= 50


@pytest.mark.parametrize(
    "stopped",
    [{"paused": True}, {"status": PlayerStatus.INTERRUPTED}, {"status": PlayerStatus.IDLE}],
)
def test_a_paused_interrupted_or_idle_anchor_stands_still(stopped: dict[str, object]) -> None:
    assert anchored(_guild(10_000, 20_000, **stopped)) == 10_000  # type: ignore[arg-type]


def test_an_anchor_never_runs_past_the_end_of_the_track() -> None:
    assert anchored(_guild(LENGTH - 1_000, 60_000)) == LENGTH


# --- what a report writes -------------------------------------------------------------------------


async def test_a_report_that_agrees_with_the_anchor_writes_nothing(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    before = await _stored(bot)
    writes = await _writes(bot)
    for _ in range(5):
        guild = bot.service._guilds[GUILD]
        await bot.service.handle_event(_report(anchored(guild) + DRIFT_MS // 2))
    assert writes == []
    assert await _stored(bot) == before


async def test_a_report_that_drifts_corrects_the_anchor_once(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    writes = await _writes(bot)
    guild = bot.service._guilds[GUILD]
    reported = anchored(guild) + 3 * DRIFT_MS  # the node is ahead: a stall on our side
    await bot.service.handle_event(_report(reported))
    assert writes == [True]
    stored = await _stored(bot)
    assert stored.position_ms == reported
    assert abs(stored.position_at_ms - now_ms()) < 1_000
    # The corrected anchor agrees with the next report: nothing more is written.
    await bot.service.handle_event(_report(anchored(bot.service._guilds[GUILD])))
    assert writes == [True]


async def test_reports_as_they_arrive_start_nothing_unless_they_drift(bot: Bot) -> None:
    # The app's path: each report judged in the node's read loop. Agreeing reports start no
    # task at all; drifting ones while the correction is being written start no second one.
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    writes = await _writes(bot)
    guild = bot.service._guilds[GUILD]
    tasks = len(asyncio.all_tasks())
    for _ in range(5):
        bot.service.position_reported(_report(anchored(guild) + DRIFT_MS // 2))
    assert len(asyncio.all_tasks()) == tasks
    reported = anchored(guild) + 3 * DRIFT_MS
    for _ in range(3):
        bot.service.position_reported(_report(reported))
    await asyncio.gather(*bot.service._reactions.tasks)
    assert writes == [True]
    assert (await _stored(bot)).position_ms == reported


def test_a_report_read_late_or_stamped_by_an_odd_clock_is_not_a_drift() -> None:
    guild = _guild(10_000, 20_000)  # the anchor says 30 s now
    now = now_ms()
    # Sent 3 s ago at 27 s, read only now (the loop was busy): it agrees when it was sent.
    assert not drifted(guild, 27_000, now, now - 3_000)
    # A node whose clock is an hour off, reporting what the anchor says now.
    assert not drifted(guild, 30_000, now, now + 3_600_000)
    # Wrong at both moments: a drift (and without the node's stamp, wrong now is enough).
    assert drifted(guild, 40_000, now, now - 3_000)
    assert drifted(guild, 27_000, now)


async def test_a_track_change_is_one_write(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    await bot.service.play(GUILD, LISTENER, TEXT, "second")
    writes = await _writes(bot)
    await bot.end_track()
    assert bot.titles() == ["second"]
    assert writes == [True]  # the move on, with the next track's anchor; no second write
    stored = await _stored(bot)
    assert (stored.status, stored.position_ms) == (PlayerStatus.PLAYING, 0)


async def test_a_speed_change_anchors_where_the_old_speed_got_to(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    guild = bot.service._guilds[GUILD]
    guild.player = dataclasses.replace(
        guild.player, position_ms=10_000, position_at_ms=now_ms() - 20_000
    )
    await bot.service.set_filter(GUILD, LISTENER, "nightcore")
    stored = await _stored(bot)
    assert abs(stored.position_ms - 30_000) <= 100  # 20 s at normal speed
    assert abs(stored.position_at_ms - now_ms()) < 1_000
    assert stored == guild.player


# --- restores --------------------------------------------------------------------------------


async def test_a_rebuild_follows_the_anchor_until_the_bot_stopped_plus_the_resume_timeout(
    bot: Bot, url: str
) -> None:
    # The bot was last alive 100 s ago; its session's players played on for the resume
    # timeout (60 s here) and stopped. The track's anchor is from 120 s ago, at 0:10.
    await bot.service.play(GUILD, LISTENER, TEXT, "first")
    now = now_ms()
    await bot.repo.save_position(GUILD, 10_000, now - 120_000)
    await bot.repo.liveness.beat("bot", now - 100_000)
    bot = await bot.crash(url)
    await bot.rebuild()
    expected = 10_000 + 20_000 + bot.lava.resume_timeout * 1000  # not 10 s + 120 s
    assert abs(bot.lava.players[GUILD].position - expected) <= 200
    await bot.repo.close()


async def test_without_a_liveness_row_the_anchor_moment_stands_for_the_last_sign_of_life() -> None:
    # A database from before the liveness row: its positions were stored with each report.
    guild = _guild(10_000, 120_000)

    class NoReports:
        resume_timeout = 60

        def snapshot(self, guild_id: int) -> None:
            return None

    at = rebuild_position(guild, NoReports(), None)  # type: ignore[arg-type]
    assert abs(at - 70_000) <= 50


# --- the heartbeat -----------------------------------------------------------------------------


async def test_the_heartbeat_beats_and_its_last_beat_is_the_stop(bot: Bot) -> None:
    heartbeat = Heartbeat(bot.repo, interval=0.05)
    heartbeat.start()
    await asyncio.sleep(0.2)
    beaten = await bot.repo.liveness.last_alive(PROCESS_KEY)
    assert beaten is not None
    assert now_ms() - beaten < 1_000
    await asyncio.sleep(0.1)
    closing = now_ms()
    await heartbeat.close()
    last = await bot.repo.liveness.last_alive(PROCESS_KEY)
    assert last is not None
    assert last >= closing  # the last beat is the stop itself


async def test_a_failing_heartbeat_is_said_once_and_its_recovery_once(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bot.services.heartbeat")
    heartbeat = Heartbeat(bot.repo)
    bot.failures.arm(3)  # the first beat fails (its retries included), the next ones work
    for _ in range(4):
        await heartbeat.beat()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.services.heartbeat"]
    assert len(said) == 2
    assert said[0].startswith("database: could not record that the bot is alive: ")
    assert said[1] == "recording that the bot is alive works again"
    assert [r.levelno for r in caplog.records if "alive" in r.getMessage()] == [
        logging.WARNING,
        logging.INFO,
    ]
