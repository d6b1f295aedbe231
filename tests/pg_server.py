"""A throwaway PostgreSQL server for the storage tests, started from the installed binaries.

It lives in a temporary folder, listens on a free port of 127.0.0.1 and on a unix socket in
that folder, trusts local connections (nothing else can reach it), and trades durability for
speed (fsync off): it exists for one test session. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user, which owns the folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailable", "find_binaries", "running_server"]

SUPERUSER = "musicbot"
_BINARIES = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(Exception):
    """No usable PostgreSQL here; the message says why (for a skip or a failure)."""


def find_binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH, /usr/local/bin, then Debian's
    versioned folders (newest first), which are not on PATH."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates.append(Path("/usr/local/bin"))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: _version(Path(p).parent.name), reverse=True)
    candidates.extend(Path(p) for p in versioned)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in _BINARIES):
            return folder.resolve() if (folder / "initdb").is_symlink() else folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, in "
        "/usr/local/bin or /usr/lib/postgresql/*/bin; install them (apt-get install postgresql)"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclasses.dataclass
class PostgresServer:
    """One running server. ``url(database)`` gives an asyncpg URL over TCP."""

    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    port: int
    run_as: str | None
    log_file: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect_kwargs(self, database: str = "postgres") -> dict[str, object]:
        """Keyword arguments for ``asyncpg.connect`` (used by fixtures to create databases)."""
        return {
            "host": str(self.socket_dir),
            "port": self.port,
            "user": SUPERUSER,
            "database": database,
        }

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=50 -c shared_buffers=16MB"
        )
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.log_file), "-o", options)

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")

    def restart(self) -> None:
        """Stop and start again on the same port: every open connection is cut."""
        self.stop()
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
            self.run_as,
            self.log_file,
        )


def _run(command: list[str], run_as: str | None, log_file: Path | None = None) -> None:
    kwargs: dict[str, object] = {}
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        subprocess.run(  # noqa: PLW1510 - the return code is checked below
            command, capture_output=True, text=True, timeout=60, env=env, cwd="/", **kwargs
        ).check_returncode()
    except subprocess.CalledProcessError as exc:
        log = ""
        if log_file is not None and log_file.is_file():
            log = log_file.read_text(errors="replace")[-2000:]
        raise PostgresUnavailable(
            f"{Path(command[0]).name} {command[1:3]} failed ({exc.returncode}): "
            f"{exc.stdout}{exc.stderr}{log}"
        ) from exc


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> str | None:
    """Who runs the server: ourselves, or ``postgres`` if we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root and there is no 'postgres' user to run the server as"
        ) from None
    return "postgres"


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """initdb into a fresh temporary folder, start, yield, then stop and delete everything."""
    bin_dir = find_binaries()
    run_as = _server_user()
    # /tmp itself, not pytest's private tmp folder: the postgres user must reach it, and a
    # unix socket path must stay short.
    root = Path(tempfile.mkdtemp(prefix="musicbot-pg-"))
    try:
        data_dir, socket_dir = root / "data", root / "sock"
        socket_dir.mkdir()
        if run_as is not None:
            user = pwd.getpwnam(run_as)
            for path in (root, socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            run_as,
        )
        # A free port can be taken between probing and binding: try a few.
        for attempt in range(3):
            server = PostgresServer(
                bin_dir, data_dir, socket_dir, _free_port(), run_as, root / "server.log"
            )
            try:
                server.start()
                break
            except PostgresUnavailable:
                if attempt == 2:
                    raise
        try:
            yield server
        finally:
            with contextlib.suppress(PostgresUnavailable):
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def fresh_database(server: PostgresServer) -> AsyncIterator[str]:
    """A new empty database on ``server`` (about 0.1 s), dropped afterwards."""
    import asyncpg  # noqa: PLC0415 - only when PostgreSQL is there

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(**server.connect_kwargs())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.url(name)
    finally:
        admin = await asyncpg.connect(**server.connect_kwargs())
        try:
            # FORCE: a test that failed half-way may have left a connection open.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
