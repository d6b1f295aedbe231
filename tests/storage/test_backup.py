"""``python -m bot backup PATH``: a consistent copy, also while the bot keeps writing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage import NewEntry, PlayerRecord, Repository
from bot.storage.backup import BackupError, backup_sqlite
from tests.app.test_config import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


def _backup_cli(db: Path, target: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backup", target],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "MUSICBOT_ENV_FILE": os.devnull,
            "DISCORD_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_backup_taken_while_the_bot_writes_is_whole_and_restores(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    repo = await Repository.open(f"sqlite+aiosqlite:///{db}")
    player, _ = await repo.enqueue(PlayerRecord(guild_id=1), [_entry(1), _entry(2)], start=True)
    writing = True

    async def keep_writing() -> int:
        n = 2
        while writing:
            n += 1
            await repo.enqueue(player, [_entry(n)], start=False)
        return n

    writer = asyncio.ensure_future(keep_writing())
    await asyncio.sleep(0.2)
    # The CLI path, as an operator runs it, in another process while this one writes.
    target = tmp_path / "backups" / "bot-copy.db"
    target.parent.mkdir()
    done = await asyncio.to_thread(_backup_cli, db, str(target))
    writing = False
    written = await writer
    await repo.close()
    assert done.returncode == 0, done.stderr
    assert f"backed up the database to {target}" in done.stdout

    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    titles = [row[0] for row in copy.execute("SELECT title FROM queue_entries ORDER BY id")]
    copy.close()
    # One consistent moment: a prefix of what was written, with no gap.
    assert titles[:2] == ["Song 1", "Song 2"]
    assert titles == [f"Song {n}" for n in range(1, len(titles) + 1)]
    assert 2 <= len(titles) <= written
    assert not list(target.parent.glob(".*partial"))

    # Restoring is putting the copy where DATABASE_URL points: the bot reads it back.
    restored = await Repository.open(f"sqlite+aiosqlite:///{target}")
    (guild,) = await restored.load_guilds()
    assert [e.title for e in guild.entries] == titles
    await restored.close()


def test_what_cannot_be_backed_up_is_said_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    missing = _backup_cli(db, str(tmp_path / "copy.db"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    not_db = tmp_path / "notes.db"
    not_db.write_text("these are not the pages you are looking for" * 100)
    garbage = _backup_cli(not_db, str(tmp_path / "copy.db"))
    assert garbage.returncode == 2
    assert "backup failed" in garbage.stderr
    assert not (tmp_path / "copy.db").exists()
    usage = subprocess.run(
        [sys.executable, "-m", "bot", "backup"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2
    assert "backup PATH" in usage.stderr


def test_a_server_database_is_pointed_to_its_own_tool() -> None:
    url = "postgresql+asyncpg://bot:s3cret-pw@db:5432/music"
    with pytest.raises(BackupError) as refused:
        backup_sqlite(url, Path("/tmp/never-written.db"))
    assert "pg_dump" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)
