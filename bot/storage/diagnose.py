"""Why a database could not be opened, in words an operator can act on.

SQLite says ``unable to open database file`` for a dozen different reasons, and a driver's
error never says which file or server it was about. These helpers name the database (the
absolute file path, or the server and database name; never a password) and, from the error and
a look at the file system, the likely cause with its fix.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = ["database_problem", "describe_database", "sqlite_file"]

_BACKEND_NAMES = {
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL",
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "mssql": "SQL Server",
    "oracle": "Oracle",
}


def sqlite_file(url: str | sa.URL) -> Path | None:
    """The absolute path of a SQLite database file (relative paths are relative to the
    current folder, as SQLite takes them), or ``None`` for an in-memory or other database."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(os.path.abspath(str(parsed.database)))


def describe_database(url: str | sa.URL) -> str:
    """``SQLite database /abs/path.db`` or ``PostgreSQL database 'music' on db:5432 as user
    'bot'``: what and where, never the password."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    name = _BACKEND_NAMES.get(backend, backend)
    if backend == "sqlite":
        path = sqlite_file(parsed)
        return f"SQLite database {path}" if path else "in-memory SQLite database"
    where = f"{parsed.host}:{parsed.port}" if parsed.host and parsed.port else parsed.host
    text = f"{name} database {parsed.database!r}" if parsed.database else f"{name} database"
    text += f" on {where}" if where else " on the local socket"
    if parsed.username:
        text += f" as user {parsed.username!r}"
    return text


def database_problem(url: str | sa.URL, exc: BaseException) -> str | None:
    """The likely cause of ``exc`` (raised opening ``url``) and its fix, or ``None`` when
    nothing better than the driver's own words can be said."""
    path = sqlite_file(url)
    if path is not None:
        return _sqlite_problem(path, exc)
    if (make_url(url) if isinstance(url, str) else url).get_backend_name() == "sqlite":
        return None
    return _server_problem(exc)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (SQLAlchemy's ``orig``, causes, contexts)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None]
        todo += [current.__cause__, current.__context__]


def _sqlite_problem(path: Path, exc: BaseException) -> str | None:
    words = " ".join(str(e).lower() for e in _chain(exc))
    codes = {e.errno for e in _chain(exc) if isinstance(e, OSError)}
    # A file where a folder of the path should be: mkdir says "File exists" or "Not a
    # directory", SQLite "unable to open database file".
    folder = path.parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return (
                    f"{ancestor} is a file where a folder should be; move that file away, "
                    "or use another path"
                )
            folder = ancestor  # the nearest folder that exists
            break
    if path.is_dir():
        return (
            f"{path} is a folder where the database file should be; move it away, "
            "or use another path"
        )
    if "not a database" in words or "encrypted" in words or "malformed" in words:
        return (
            f"{path} is not a SQLite database (another program's file, or a damaged one); "
            "move it away and the bot starts a new database, or use another path"
        )
    if "disk is full" in words or codes & {errno.ENOSPC, errno.EDQUOT}:
        return f"the disk holding {folder} is full; free some space"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return (
            f"the file {path} is not readable and writable by this user (uid {os.getuid()}); "
            "change its owner or mode (chown, chmod), or use another path"
        )
    cannot_create = _cannot_create_files_in(folder)
    if cannot_create is not None:
        return _folder_problem(folder, cannot_create)
    if "readonly" in words or "read-only" in words:
        return (
            f"{path} or its folder is read-only for this user (uid {os.getuid()}); "
            "SQLite must also create files next to it (-wal, -shm); make both writable"
        )
    return None


def _cannot_create_files_in(folder: Path) -> OSError | None:
    """What stops a new file in ``folder`` (SQLite creates the database and its -wal and -shm
    files there), found by trying: permission bits alone mislead (root ignores them; a
    read-only mount or a full disk does not show in them)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".musicbot-probe-"):
            pass
    except OSError as exc:
        return exc
    return None


def _folder_problem(folder: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"the folder {folder} is not writable by this user (uid {os.getuid()}); give "
            "that user write access to it (chown, chmod), or use another path"
        )
    if exc.errno == errno.EROFS:
        return f"the folder {folder} is on a read-only file system; use another path"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {folder} is full; free some space"
    return (
        f"no file can be created in the folder {folder} ({exc.strerror or exc}); use another path"
    )


# SQLSTATEs a server answers a connection with, and what to do about each.
_SQLSTATE_FIXES = {
    "28P01": "the server rejected the user name or password; check both in the URL",
    "28000": "the server does not let this user in (pg_hba.conf); check the user name",
    "3D000": "the database does not exist on that server; create it (createdb)",
    "42501": "this user may not use the database; grant it the rights",
    "53300": "the server has too many connections; try again, or raise its limit",
    "57P03": "the server is starting up or shutting down; try again in a moment",
}


def _server_problem(exc: BaseException) -> str | None:
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(code, str) and code in _SQLSTATE_FIXES:
            return _SQLSTATE_FIXES[code]
    for error in _chain(exc):
        if isinstance(error, socket.gaierror):
            return "the host name does not resolve; check the host in the URL"
        if isinstance(error, ConnectionRefusedError):
            return "is the database server running, and are the host and port right?"
        if isinstance(error, TimeoutError):
            return "the server did not answer in time; is the host right, and reachable?"
    return None
