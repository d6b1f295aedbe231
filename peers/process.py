"""``python -m bot`` as a child process, for the end-to-end tests and the benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink

__all__ = ["REPO_ROOT", "BotProcess", "bot_environment", "log_problems", "refused_start"]

REPO_ROOT = Path(__file__).resolve().parents[1]


class BotProcess:
    """One ``python -m bot`` child; its log is kept to check for swallowed errors."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env = {  # read at every start: a test may change it between runs
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO_ROOT),
            # The bot would read the .env of this checkout's folder: the developer's, not ours.
            "MUSICBOT_ENV_FILE": os.devnull,
            **env,
        }
        self._cwd = cwd
        self._log_path = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        with self._log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", env=self.env, cwd=self._cwd, stdout=log, stderr=log
            )

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait up to ``timeout`` s for the exit; returns the exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
            async with asyncio.timeout(timeout):
                await self.process.wait()
        return self.process.returncode or 0

    async def reap(self) -> None:
        """Kill the child if it still runs (a failed test must not leave it behind)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")


def log_problems(log: str, secrets: list[str]) -> list[str]:
    """Error lines, tracebacks and leaked secrets found in a bot log."""
    bad = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    bad += [f"a secret reached the log: {s[:4]}..." for s in secrets if s and s in log]
    return bad


def refused_start(env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """``python -m bot`` that must refuse to start: exit 2 and exactly one line on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return result, lines[0]


def bot_environment(
    discord: FakeDiscord,
    lavalink: FakeLavalink | Sequence[FakeLavalink],
    db: Path,
    **overrides: str,
) -> dict[str, str]:
    """How a user configures the bot: environment variables only.

    Several nodes become a comma-separated ``LAVALINK_URL``; every guild the fake Discord
    knows gets the commands; ``overrides`` replace single keys (e.g. a short resume timeout).
    """
    nodes = [lavalink] if isinstance(lavalink, FakeLavalink) else list(lavalink)
    return {
        "DISCORD_TOKEN": discord.token,
        "DISCORD_API_URL": discord.rest_url,
        "LAVALINK_URL": ",".join(node.url for node in nodes),
        "LAVALINK_PASSWORD": "youshallnotpass",
        "LAVALINK_NODE_LOSS_GRACE": "1",
        "LAVALINK_RESUME_TIMEOUT": "60",
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "GUILD_IDS": ",".join(str(g) for g in discord.guilds),
        "LOG_LEVEL": "INFO",
        **overrides,
    }
