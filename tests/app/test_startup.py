"""``python -m bot`` when start-up cannot finish: one line for the operator, a clear exit."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from peers.process import refused_start
from tests.app.test_config import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "MUSICBOT_ENV_FILE": os.devnull,  # never the developer's own .env
        "DISCORD_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        "LAVALINK_PASSWORD": "lava-secret-pw",
        **extra,
    }


def _run_until_it_gives_up(
    tmp_path: Path, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``python -m bot`` that must fail at start: exit 2 and exactly one line on stderr."""
    result, line = refused_start(_env(tmp_path, **extra), tmp_path)
    return result, [line]


def test_database_that_cannot_be_opened_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bot.db").mkdir()  # a folder where the database file should be
    result, lines = _run_until_it_gives_up(tmp_path)
    assert lines[0].startswith(
        f"musicbot: cannot start: DATABASE_URL: cannot open SQLite database {tmp_path}/bot.db: "
    )
    assert f"{tmp_path}/bot.db is a folder where the database file should be" in lines[0]
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr


def test_database_in_a_folder_that_is_a_file_names_both(tmp_path: Path) -> None:
    """Before: "File exists: '...'", naming neither DATABASE_URL nor what to do."""
    (tmp_path / "data").write_text("")
    _, lines = _run_until_it_gives_up(
        tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/bot.db"
    )
    assert lines[0] == (
        f"musicbot: cannot start: DATABASE_URL: cannot open SQLite database "
        f"{tmp_path}/data/bot.db: {tmp_path}/data is a file where a folder should be; move "
        "that file away, or use another path (cannot create its folder: File exists)"
    )


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "bot.db").write_text("DISCORD_TOKEN=oops, the .env went here\n")
    _, lines = _run_until_it_gives_up(tmp_path)
    assert "DATABASE_URL: " in lines[0]
    assert f"{tmp_path}/bot.db is not a SQLite database" in lines[0]
    assert (tmp_path / "bot.db").read_text().startswith("DISCORD_TOKEN=oops")


def test_sigterm_while_discord_does_not_answer_stops_the_bot(tmp_path: Path) -> None:
    """Start-up hangs on a Discord that accepts connections but never answers; SIGTERM must
    still stop the bot promptly, as `docker compose stop` expects."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        env = _env(tmp_path, DISCORD_API_URL=f"http://127.0.0.1:{port}")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            silent.settimeout(30)
            connection, _ = silent.accept()  # the bot is inside start-up now
            started = time.monotonic()
            os.kill(process.pid, signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
            took = time.monotonic() - started
            connection.close()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert took < 10, f"took {took:.1f} s"
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_database_from_a_newer_version_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """A downgraded bot meets a schema revision it does not know: say so, don't crash."""
    with sqlite3.connect(tmp_path / "bot.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('0099')")
    result, lines = _run_until_it_gives_up(tmp_path)
    assert "0099" in lines[0]
    assert "Traceback" not in result.stderr
