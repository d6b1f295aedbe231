"""``GET /metrics`` end to end, read back with prometheus-client's own parser.

Counters move when people use the bot: commands by outcome, their latency, database writes,
players; a lost Lavalink node shows as down, and its reconnect is counted.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.config import load_settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    GUILD,
    RICK,
    ErrorLog,
    bot_environment,
    playing,
    running_bot,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_what_people_do_and_what_lavalink_does(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    port = _free_port()
    env = bot_environment(discord, lavalink, tmp_path / "bot.db", HEALTH_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    async with running_bot(load_settings(env, env_file=None), discord, lavalink, errors) as app:
        node = app.settings.lavalink_nodes[0].name
        before = await _scrape(url)
        assert _value(before, "musicbot_lavalink_up", node=node) == 1
        assert _value(before, "musicbot_lavalink_connects_total", node=node) == 1
        assert _value(before, "musicbot_players", state="playing") == 0

        refused = await (await discord.invoke("skip")).reply()
        assert refused.ephemeral  # nothing is playing yet
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await (await discord.invoke("queue")).reply()
        await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title))

        after = await _scrape(url)
        assert _value(after, "musicbot_commands_total", command="play", outcome="ok") == 2
        assert _value(after, "musicbot_commands_total", command="skip", outcome="refused") == 1
        assert _value(after, "musicbot_commands_total", command="queue", outcome="ok") == 1
        assert _value(after, "musicbot_command_seconds_count", command="play") == 2
        assert _value(after, "musicbot_command_seconds_sum", command="play") > 0
        assert _value(after, "musicbot_players", state="playing") == 1
        assert _value(after, "musicbot_players", state="in_voice") == 1
        assert _value(after, "musicbot_queued_tracks") == 1
        assert _value(after, "musicbot_db_write_seconds_count") > _value(
            before, "musicbot_db_write_seconds_count"
        )
        assert _value(after, "musicbot_db_write_failures_total") == 0
        # Full collections stop the loop: an operator can see how often they run.
        assert ("python_gc_collections_total", (("generation", "2"),)) in after

        # The node goes away: down; back: up again, with one more connect counted.
        await lavalink.kill()
        await lavalink.wait_for(lambda: not app.lavalink.available, what="the bot to notice")
        down = await _scrape(url)
        assert _value(down, "musicbot_lavalink_up", node=node) == 0
        await lavalink.start()
        await lavalink.wait_for(lambda: app.lavalink.available, timeout=20, what="a reconnect")
        await asyncio.sleep(0.1)
        back = await _scrape(url)
        assert _value(back, "musicbot_lavalink_up", node=node) == 1
        assert _value(back, "musicbot_lavalink_connects_total", node=node) == 2
