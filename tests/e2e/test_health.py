"""``GET /health`` end to end: the real bot, both fakes, and Docker's own health check command.

It answers 200 only while the bot could play (gateway connected, a Lavalink node ready, the
database taking a write), else 503 naming what fails; it recovers with the part that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.app import MusicBot, StartupError
from bot.config import load_settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.process import bot_environment
from tests.e2e.conftest import ErrorLog, running_bot

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _bot_with_health(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, db: Path
) -> AsyncIterator[tuple[MusicBot, str]]:
    port = _free_port()
    env = bot_environment(discord, lavalink, db, HEALTH_PORT=str(port))
    async with running_bot(load_settings(env, env_file=None), discord, lavalink, errors) as app:
        yield app, f"http://127.0.0.1:{port}/health"


async def _get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def _until(url: str, status: int, timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got, body = await _get(url)
        if got == status:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"/health stayed {got} {body}, expected {status}")
        await asyncio.sleep(0.05)


async def test_health_is_200_while_every_part_works(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot_with_health(discord, lavalink, errors, tmp_path / "bot.db") as (_, url):
        status, body = await _get(url)
        assert status == 200
        assert body == {
            "status": "ok",
            "checks": {"gateway": "ok", "lavalink": "ok", "database": "ok"},
        }


async def test_health_names_a_lost_lavalink_and_recovers_with_it(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot_with_health(discord, lavalink, errors, tmp_path / "bot.db") as (_, url):
        await lavalink.kill()
        body = await _until(url, 503)
        assert body["status"] == "failing"
        assert "no Lavalink node is connected" in body["checks"]["lavalink"]
        assert body["checks"]["gateway"] == body["checks"]["database"] == "ok"
        await lavalink.start()
        await _until(url, 200, timeout=20)


async def test_health_names_a_lost_gateway_and_recovers_with_it(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot_with_health(discord, lavalink, errors, tmp_path / "bot.db") as (_, url):
        await discord.drop_gateway(resumable=True)
        body = await _until(url, 503)
        assert "not connected to Discord" in body["checks"]["gateway"]
        await _until(url, 200)


async def test_health_names_a_database_that_takes_no_write(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    db = tmp_path / "bot.db"
    async with _bot_with_health(discord, lavalink, errors, db) as (_, url):
        # Another process holds SQLite's write lock for longer than a health check may take.
        holder = sqlite3.connect(db, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            status, body = await _get(url)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert status == 503
        assert body["checks"]["database"] != "ok"
        assert body["checks"]["lavalink"] == "ok"
        await _until(url, 200)


async def test_dockers_health_check_command_passes_and_fails_with_the_bot(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["bot"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    port = compose["services"]["bot"]["environment"]["HEALTH_PORT"]

    async def docker_check(url: str) -> int:
        script = command[3].replace(f"http://127.0.0.1:{port}/health", url)
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stderr=asyncio.subprocess.DEVNULL
        )
        return await asyncio.wait_for(check.wait(), 10)

    async with _bot_with_health(discord, lavalink, errors, tmp_path / "bot.db") as (_, url):
        assert await docker_check(url) == 0
        await lavalink.kill()
        await _until(url, 503)
        assert await docker_check(url) != 0


async def test_a_health_port_in_use_stops_the_bot_with_one_line(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bot_environment(discord, lavalink, tmp_path / "bot.db", HEALTH_PORT=str(port))
        app = MusicBot(load_settings(env, env_file=None))
        try:
            with pytest.raises(StartupError) as refused:
                await app.start()
        finally:
            await app.close()
        assert str(refused.value).startswith(f"HEALTH_PORT: cannot listen on 127.0.0.1:{port}")
