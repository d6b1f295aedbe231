"""A database that cannot be opened: the error names the database (the SQLite file's absolute
path, or the server and database name, never the password) and the likely cause with its fix.

Every failure here is real, but for the full disk (which would need a small file system to
fill: see the test for why it is taken from SQLite's own words instead).
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import tempfile
from pathlib import Path

import pytest

from bot.storage import DatabaseOpenError, Repository, describe_database
from bot.storage.diagnose import database_problem
from bot.storage.repository import RetryPolicy
from tests.pg_server import PostgresServer

FAST = RetryPolicy(attempts=2, first_delay=0.01)


async def _open_error(url: str) -> str:
    with pytest.raises(DatabaseOpenError) as raised:
        await Repository.open(url, retry=FAST)
    return str(raised.value)


def _sqlite(path: Path | str) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    for database in (tmp_path / "data" / "bot.db", tmp_path / "data" / "deeper" / "bot.db"):
        message = await _open_error(_sqlite(database))
        assert message.startswith(f"cannot open SQLite database {database}: ")
        assert f"{tmp_path / 'data'} is a file where a folder should be" in message


async def test_a_folder_where_the_file_should_be(tmp_path: Path) -> None:
    (tmp_path / "bot.db").mkdir()
    message = await _open_error(_sqlite(tmp_path / "bot.db"))
    assert f"{tmp_path / 'bot.db'} is a folder where the database file should be" in message
    assert "(SQLite: unable to open database file)" in message


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", os.urandom(8192)])
async def test_a_file_that_is_not_a_database(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bot.db").write_bytes(content)
    message = await _open_error(_sqlite(tmp_path / "bot.db"))
    assert f"{tmp_path / 'bot.db'} is not a SQLite database" in message
    assert "move it away" in message
    assert (tmp_path / "bot.db").read_bytes() == content  # nothing written over it


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder where this process cannot create files. Permission bits stop anyone but root;
    root (as in CI containers) is stopped only by the kernel: sysfs refuses new files to
    everyone (EACCES; EROFS where it is mounted read-only)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    folder = Path("/sys")
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return folder
        pytest.skip(f"running as root, and /sys refuses new files with {exc!r}")
    pytest.skip("running as root, and /sys takes new files: no folder stops root here")


async def test_a_folder_the_bot_may_not_write_to(tmp_path: Path) -> None:
    folder = _unwritable_folder(tmp_path)
    try:
        message = await _open_error(_sqlite(folder / "bot.db"))
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o700)
    assert message.startswith(f"cannot open SQLite database {folder / 'bot.db'}: ")
    assert f"the folder {folder}" in message
    assert "not writable by this user" in message or "read-only file system" in message


async def test_a_relative_path_is_named_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").write_text("")
    message = await _open_error("sqlite+aiosqlite:///data/bot.db")
    assert f"cannot open SQLite database {tmp_path / 'data' / 'bot.db'}: " in message


def test_a_full_disk_is_named_with_its_folder(tmp_path: Path) -> None:
    # Filling a disk for real needs a small file system of its own (a mount, which tests may
    # not do); SQLite reports it as SQLITE_FULL with exactly these words.
    full = sqlite3.OperationalError("database or disk is full")
    problem = database_problem(_sqlite(tmp_path / "bot.db"), full)
    assert problem == f"the disk holding {tmp_path} is full; free some space"


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    pytest.importorskip("asyncpg")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://bot:hunter2-s3cret@127.0.0.1:{port}/music"
    message = await _open_error(url)
    assert message.startswith(f"cannot open PostgreSQL database 'music' on 127.0.0.1:{port}")
    assert "as user 'bot'" in message
    assert "is the database server running, and are the host and port right?" in message
    assert "hunter2-s3cret" not in message


async def test_a_database_missing_on_the_server(postgres_server: PostgresServer) -> None:
    message = await _open_error(postgres_server.url("no_such_database"))
    assert "'no_such_database'" in message
    assert "the database does not exist on that server; create it" in message


def test_describe_database_never_shows_the_password() -> None:
    assert describe_database("postgresql+asyncpg://bot:p%40ss@db/music") == (
        "PostgreSQL database 'music' on db as user 'bot'"
    )
    assert describe_database("sqlite+aiosqlite://") == "in-memory SQLite database"
