"""A Lavalink node that cannot be reached: said once with the fix, then quietly retried, with a
reminder at most every REMINDER_INTERVAL, and one line when it finally connects. What the
node said it is (``/v4/info``) reaches whoever asked through ``on_node_connected``."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import pytest

from bot import lavalink
from bot.lavalink import LavalinkClient, NodeConfig
from bot.lavalink import node as node_module
from peers.fake_lavalink import FakeLavalink
from tests.lavalink.harness import BOT_USER, DiscordStandIn

LOGGER = "bot.lavalink.node"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def client_for(url: str, password: str = "youshallnotpass") -> LavalinkClient:
    """A client that retries every ~0.05 s, so a test sees dozens of attempts in a second."""
    client = LavalinkClient(
        [NodeConfig("main", url, password)], DiscordStandIn(), reconnect_cap=0.05
    )
    await client.start(BOT_USER)
    return client


def node_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def quiet_failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("failed again" in m for m in node_lines(caplog, logging.DEBUG))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - log records come with no event to wait on
            await asyncio.sleep(0.02)


async def test_lavalink_down_is_said_once_with_the_fix_then_retried_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = await client_for(url)
    connected: list[lavalink.NodeConnected] = []
    client.on_node_connected(connected.append)
    fake = FakeLavalink(port=port)
    try:
        await until(lambda: quiet_failures(caplog) >= 20)
        warnings = node_lines(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"Lavalink node main unreachable at {url}: ")
        assert "is Lavalink running and LAVALINK_URL right?" in warnings[0]
        assert not node_lines(caplog, logging.INFO)  # no "reconnecting in" line per attempt
        assert not node_lines(caplog, logging.ERROR)
        assert client.node_info("main") is None

        await fake.start()
        await until(lambda: client.available)
        (line,) = node_lines(caplog, logging.INFO)
        assert line.startswith("Lavalink node main connected after ")
        failures = int(line.split(" after ")[1].split()[0])
        assert failures >= 20
        (event,) = connected
        assert event.node == "main"
        assert event.url == url
        assert event.failed_attempts == failures
        assert event.info.version.semver == "4.2.2"
        assert [p.name for p in event.info.plugins] == ["youtube-plugin"]
        assert client.node_info("main") == event.info
    finally:
        await client.close()
        await fake.stop()


async def test_a_reminder_comes_every_interval_while_the_node_stays_down(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_module, "REMINDER_INTERVAL", 0.4)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = await client_for(f"http://127.0.0.1:{free_port()}")
    try:
        await asyncio.sleep(1.5)
    finally:
        await client.close()
    warnings = node_lines(caplog, logging.WARNING)
    reminders = [w for w in warnings if w.startswith("still cannot reach Lavalink node main")]
    assert len(warnings) == 1 + len(reminders)
    assert 2 <= len(reminders) <= 3, warnings  # 1.5 s at most one every 0.4 s
    assert "is Lavalink running and LAVALINK_URL right?" in reminders[-1]
    assert quiet_failures(caplog) > 3 * len(warnings)  # most attempts fail quietly


async def test_a_rejected_password_is_an_error_once_not_once_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with FakeLavalink() as fake:
        client = await client_for(fake.url, password="hunter2-wrong")
        try:
            await until(lambda: quiet_failures(caplog) >= 10)
        finally:
            await client.close()
    (error,) = node_lines(caplog, logging.ERROR)
    assert f"at {fake.url}" in error
    assert "LAVALINK_PASSWORD" in error
    assert not node_lines(caplog, logging.WARNING)
    assert "hunter2-wrong" not in caplog.text


async def test_a_new_failure_is_said_again_and_a_first_connect_has_no_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with FakeLavalink() as fake:
        client = await client_for(fake.url)
        try:
            await until(lambda: client.available)
            assert [m for m in node_lines(caplog, logging.INFO) if "ready (session" in m]
            await fake.kill()
            fake.fail_next("/v4/info", status=500)  # the first try after the restart
            await until(lambda: quiet_failures(caplog) >= 5)
            await fake.start()
            await until(lambda: client.available)
        finally:
            await client.close()
    warnings = node_lines(caplog, logging.WARNING)
    assert any("closed the connection" in w for w in warnings)
    unreachable = [w for w in warnings if "unreachable" in w]
    assert len(unreachable) == 2, warnings  # refused, then the 500: two different failures
    assert "see its own log" in unreachable[1]
    assert any("connected after" in m for m in node_lines(caplog, logging.INFO))
