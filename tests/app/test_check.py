"""``python -m bot check`` against the fake peers, set up wrong in each way self-hosters do.

Each case runs the real command as an operator would (environment only) and reads its output
and exit status: 0 healthy, 1 problems found, 2 cannot run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import _check as run_check
from bot.config import load_settings
from peers.catalogue import catalogue
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.process import bot_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def peers() -> AsyncIterator[tuple[FakeDiscord, FakeLavalink]]:
    lavalink = FakeLavalink(catalogue=catalogue())
    await lavalink.start()
    try:
        async with FakeDiscord() as discord:
            yield discord, lavalink
    finally:
        await lavalink.stop()


async def _check(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "MUSICBOT_ENV_FILE": os.devnull,
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def _check_here(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """What ``python -m bot check`` does after reading its settings, run in this process."""
    status = await run_check(load_settings(env, env_file=None))
    return status, capsys.readouterr().out


def _env(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path, **more: str
) -> dict[str, str]:
    return bot_environment(discord, lavalink, tmp_path / "data" / "bot.db") | more


async def test_a_healthy_set_up_passes_and_says_what_it_found(
    peers: tuple[FakeDiscord, FakeLavalink], tmp_path: Path
) -> None:
    discord, lavalink = peers
    status, out = await _check(_env(discord, lavalink, tmp_path))
    assert status == 0, out
    assert "[FAIL]" not in out
    assert "Lavalink 4.2.2, password accepted" in out
    assert "youtube-plugin 1.18.2" in out
    assert "a youtube search (ytsearch) found 2 tracks" in out
    assert "logged in as musicbot" in out
    assert "schema up to date, takes writes" in out
    assert out.rstrip().endswith("all checks passed")
    assert discord.token not in out


@pytest.mark.parametrize(
    "case",
    [
        ("old", "runs Lavalink 4.1.2", "LAVALINK_VERSION"),
        ("no plugin", "has no YouTube source", "youtube-plugin"),
        ("search error", "a youtube search (ytsearch) failed: Sign in to confirm", "poToken"),
        ("password", "refused the password", "LAVALINK_PASSWORD must equal"),
        ("down", "cannot reach", "is Lavalink running"),
        ("token", "Discord rejected DISCORD_TOKEN", "Developer Portal"),
        ("database", "Database: SQLite database", "DATABASE_URL"),
    ],
)
async def test_each_wrong_set_up_is_named_with_its_fix(
    peers: tuple[FakeDiscord, FakeLavalink],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    fault, finding, fix = case
    discord, lavalink = peers
    env = _env(discord, lavalink, tmp_path)
    if fault == "old":
        lavalink.version = "4.1.2"
    elif fault == "no plugin":
        lavalink.source_managers.remove("youtube")
        lavalink.plugins.clear()
    elif fault == "search error":
        lavalink.catalogue.add_error(
            "ytsearch:never gonna give you up", "Sign in to confirm you're not a bot"
        )
    elif fault == "password":
        env["LAVALINK_PASSWORD"] = "not-the-password"
    elif fault == "down":
        await lavalink.stop()
    elif fault == "token":
        # A token of the same bot that Discord no longer accepts (it was reset).
        env["DISCORD_TOKEN"] = discord.token[:-4] + "AAAA"
    else:
        # A file where the database's folder should be.
        (tmp_path / "data").write_text("not a folder")
    # In this process (a subprocess per case costs a second of imports; the healthy case
    # and the unreadable settings run the real command).
    status, out = await _check_here(env, capsys)
    assert status == 1, out
    problems = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert any(finding in line for line in problems), out
    assert fix in out
    assert "problems found" in out
    assert "not-the-password" not in out


async def test_settings_that_cannot_be_read_exit_2(tmp_path: Path) -> None:
    status, out = await _check({})
    assert status == 2
    assert "DISCORD_TOKEN" in out
