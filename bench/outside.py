"""What the fleet bench sees of the bot from outside: the node's traffic, /proc, /metrics.

Nothing here reads the bot's memory or log: CPU and RSS come from ``/proc/<pid>``, database
commits from the bot's own Prometheus endpoint, track changes and their delays from what the
fake Lavalink sent (stamped as it went out), gateway use from what the fake Discord received.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import aiohttp

from peers.fake_discord import FakeDiscord, Interaction

__all__ = [
    "Traffic",
    "commits",
    "cpu_seconds",
    "free_port",
    "gateway_note",
    "rss_kb",
    "scrape",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Traffic:
    """What the fake Lavalink sent, stamped with the loop clock as it went out."""

    loop: asyncio.AbstractEventLoop
    events: list[tuple[float, int, str, str]] = dataclasses.field(default_factory=list)
    """(time, guild, event type, end reason)."""
    updates: list[float] = dataclasses.field(default_factory=list)

    def hear(self, _session: str, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "playerUpdate":
            self.updates.append(self.loop.time())
        elif op == "event":
            reason = str(message.get("reason", ""))
            self.events.append(
                (self.loop.time(), int(message["guildId"]), str(message["type"]), reason)
            )

    def starts(self, t0: float, t1: float) -> int:
        return sum(t0 <= t < t1 and kind == "TrackStartEvent" for t, _, kind, _ in self.events)

    def lags(self, t0: float, t1: float) -> tuple[list[float], int]:
        """For each track that finished in [t0, t1): seconds until the guild's next track
        started; and how many had no next start at all."""
        pending: dict[int, float] = {}
        lags, missing = [], 0
        for t, guild, kind, reason in self.events:
            if kind == "TrackEndEvent" and reason == "finished" and t0 <= t < t1:
                pending[guild] = t
            elif kind == "TrackStartEvent" and guild in pending:
                lags.append(t - pending.pop(guild))
        missing = len(pending)
        return lags, missing


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(port: int) -> dict[str, float]:
    """The bot's metrics, one sample per line (labels kept in the name)."""
    url, timeout = f"http://127.0.0.1:{port}/metrics", aiohttp.ClientTimeout(60)
    async with aiohttp.ClientSession() as http, http.get(url, timeout=timeout) as resp:
        text = await resp.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def commits(samples: dict[str, float]) -> float:
    return samples.get("musicbot_db_write_seconds_count", 0.0) - samples.get(
        "musicbot_db_write_failures_total", 0.0
    )


def gateway_note(discord: FakeDiscord, began: float) -> str:
    """The bot's gateway connections: when each ended, its busiest 60 s and by which ops."""
    notes = []
    for n, ops in enumerate(discord.connection_ops):
        if not ops:
            continue
        times = [t for t, _ in ops]
        best, first, at = 0, 0, 0
        for last, t in enumerate(times):
            while times[first] <= t - 60:
                first += 1
            if last - first + 1 > best:
                best, at = last - first + 1, first
        kinds = collections.Counter(op for _, op in ops[at : at + best])
        ops_text = ", ".join(f"op {op}: {c}" for op, c in sorted(kinds.items()))
        notes.append(
            f"connection {n}: {len(ops)} payloads until {times[-1] - began:.0f} s; busiest 60 s "
            f"from {times[at] - began:.0f} s: {best} ({ops_text})"
        )
    return "; ".join(notes)


EPHEMERAL = 64
"""The message flag of an answer only its user sees: the bot's refusals."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """How the bot answered one interaction."""

    seconds: float
    """From the INTERACTION_CREATE written to the bot's socket to its callback."""
    deferred: bool
    """A "thinking..." defer: ``seconds`` is the defer, not the answer."""
    private: str | None
    """The text of a private answer (a refusal), else ``None``."""


async def answer(discord: FakeDiscord, interaction: Interaction) -> Answer:
    """Until the bot answered ``interaction`` (at most 30 s); how it did."""
    await discord.wait_for(lambda: interaction.callback_at is not None, timeout=30)
    assert interaction.sent_at is not None
    assert interaction.callback_at is not None
    _, body = interaction.responses[0]
    data = body.get("data") or {}
    private = str(data.get("content")) if int(data.get("flags") or 0) & EPHEMERAL else None
    return Answer(interaction.callback_at - interaction.sent_at, body.get("type") == 5, private)
