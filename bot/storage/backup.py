"""``python -m bot backup PATH``: a consistent copy of the SQLite database, bot running or not.

Copying the file by hand while the bot writes can catch a half-written page, and in WAL mode the
newest changes still sit in ``bot.db-wal``. SQLite's online backup copies page by page inside
read transactions and starts over if a writer changes a page it has copied, so the copy is one
consistent moment. It is written beside ``PATH`` first and renamed into place, so an
interrupted backup never leaves a broken file where a good one was.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from .diagnose import describe_database, sqlite_file

__all__ = ["BackupError", "backup_sqlite"]

_PAGES_PER_STEP = 256
"""Pages copied per step: the bot's writers wait at most one step's worth of work."""


class BackupError(Exception):
    """The backup could not be made; the message says why, in one line."""


def backup_sqlite(database_url: str, target: Path) -> int:
    """Copy the database ``database_url`` names to ``target``; returns the bytes written.

    Raises:
        BackupError: not a SQLite database (use the server's own tools), the file is missing
            or not a database, or ``target`` cannot be written.
    """
    source = sqlite_file(database_url)
    if source is None:
        raise BackupError(
            f"DATABASE_URL names a {describe_database(database_url)}; back it up with that "
            "server's own tool (for PostgreSQL: pg_dump)"
        )
    if not source.is_file():
        raise BackupError(f"DATABASE_URL: {source} does not exist (nothing to back up yet)")
    target = Path(os.path.abspath(target))
    if target == source:
        raise BackupError("the backup would overwrite the database itself; pick another path")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the backup file, e.g. {target}/bot.db")
    partial = target.with_name(f".{target.name}.partial")
    try:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        with contextlib.closing(reader), contextlib.closing(sqlite3.connect(partial)) as writer:
            reader.backup(writer, pages=_PAGES_PER_STEP)
            check = writer.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy of {source} failed its integrity check")
        os.replace(partial, target)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target.stat().st_size
