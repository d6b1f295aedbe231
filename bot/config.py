"""Settings, read once at start from the environment and an optional ``.env`` file.

Every key is validated here so that a mistake stops the bot at start with one line naming the
key, rather than as a traceback minutes later. The real environment wins over ``.env``.

Which ``.env``: the file named by ``MUSICBOT_ENV_FILE`` if that is set, else ``.env`` in the
current folder, else ``.env`` in the project folder (the checkout holding ``pyproject.toml``
and the ``bot`` package), so ``python -m bot`` finds it wherever it is started from.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import dotenv
import sqlalchemy.engine

from bot.shards import ShardSet

__all__ = [
    "ENV_FILE_VARIABLE",
    "ConfigError",
    "EnvFileSearch",
    "Settings",
    "check_database_url",
    "load_settings",
]

ENV_FILE_VARIABLE: Final = "MUSICBOT_ENV_FILE"
"""Names the ``.env`` file to read, instead of looking for one."""

DEFAULTS: Mapping[str, str] = {
    "DISCORD_API_URL": "https://discord.com/api/v10",
    "LAVALINK_URL": "http://localhost:2333",
    "LAVALINK_PASSWORD": "youshallnotpass",
    "LAVALINK_RESUME_TIMEOUT": "60",
    "LAVALINK_NODE_LOSS_GRACE": "10",
    "LAVALINK_REQUEST_TIMEOUT": "10",
    "IDLE_TIMEOUT": "180",
    "DATABASE_URL": "sqlite+aiosqlite:///data/bot.db",
    "GUILD_IDS": "",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
    "HEALTH_HOST": "127.0.0.1",
    "HEALTH_PORT": "",
    "SHARD_COUNT": "",
    "SHARD_IDS": "",
}


MAX_SHARDS = 4096
"""More than any bot needs (Discord asks for about one shard per 1,000 servers)."""


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the key and never a setting's
    value (the paths of the ``.env`` files it looked at are not secret, and are named)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


@dataclasses.dataclass(frozen=True, slots=True)
class LavalinkNode:
    """One Lavalink node; ``name`` (its ``host:port``) keys its stored session."""

    name: str
    url: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str = dataclasses.field(repr=False)
    bot_user_id: int
    discord_api_url: str
    lavalink_nodes: tuple[LavalinkNode, ...]
    lavalink_resume_timeout: int
    lavalink_node_loss_grace: float
    lavalink_request_timeout: float
    database_url: str = dataclasses.field(repr=False)
    guild_ids: tuple[int, ...]
    log_level: int
    log_format: str = "text"
    """``text`` (one readable line per record) or ``json`` (one JSON object per line)."""
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    """``None``: no health endpoint."""
    idle_timeout: float = 180.0
    """Seconds the bot stays in voice alone or with nothing to play; 0: it never leaves."""
    env_file: Path | None = None
    """The ``.env`` file the settings were read from (absolute), if any."""
    shard_count: int | None = None
    """Gateway shards the bot runs; ``None``: as many as Discord recommends."""
    shards: ShardSet | None = None
    """This process's shards when several processes share the bot (``SHARD_IDS``);
    ``None``: this process runs every shard and owns every guild."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line."""
        passwords = [node.password for node in self.lavalink_nodes]
        passwords.append(sqlalchemy.engine.make_url(self.database_url).password or "")
        # As typed, too: a driver or a log line may show the URL-encoded form.
        passwords.append(urllib.parse.urlsplit(self.database_url).password or "")
        return tuple(s for s in (self.discord_token, *passwords) if s)


@dataclasses.dataclass(frozen=True, slots=True)
class EnvFileSearch:
    """How :func:`load_settings` finds its ``.env`` when not handed one: the file named by
    ``MUSICBOT_ENV_FILE`` (which must then exist and be readable), else ``.env`` in ``cwd``,
    else ``.env`` in ``project_dir``. ``None`` means the current folder and the project
    folder of this checkout (none when the package is installed elsewhere, e.g. in
    site-packages: a ``.env`` there would surprise everyone)."""

    cwd: Path | None = None
    project_dir: Path | None = None

    def candidates(self) -> tuple[Path, ...]:
        """The ``.env`` files looked for, in order, as absolute paths, each once."""
        folders = [self.cwd or Path.cwd(), self.project_dir or project_dir()]
        found: list[Path] = []
        for folder in folders:
            if folder is None:
                continue
            path = Path(os.path.abspath(folder / ".env"))
            if path not in found:
                found.append(path)
        return tuple(found)


def project_dir() -> Path | None:
    """The folder holding the ``bot`` package, when it is a checkout (has pyproject.toml)."""
    root = Path(os.path.abspath(__file__)).parent.parent
    return root if (root / "pyproject.toml").is_file() else None


@dataclasses.dataclass(frozen=True, slots=True)
class _EnvSource:
    """Where the ``.env`` values came from, for the error when DISCORD_TOKEN is missing."""

    read: Path | None  # the file read, if any
    looked_in: tuple[Path, ...] = ()  # the files looked for when none was found
    named_by: str | None = None  # the variable that named ``read``, if one did

    def token_hint(self) -> str:
        portal = "copy it from the Developer Portal's Bot tab"
        if self.read is not None:
            by = f" (named by {self.named_by})" if self.named_by else ""
            return f"not in the environment, nor in {self.read}{by}; {portal}"
        if not self.looked_in:
            return portal
        if len(self.looked_in) == 1:
            where = f"looked in {self.looked_in[0]}, which does not exist"
        else:
            where = (
                "looked in "
                + ", ".join(str(p) for p in self.looked_in[:-1])
                + f" and {self.looked_in[-1]}; none exists"
            )
        return f"{where} \N{EM DASH} copy .env.example to .env"


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | EnvFileSearch | None = EnvFileSearch(),
) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``) over a ``.env`` file.

    ``env_file`` is that file, or ``None`` for none, or (the default) an
    :class:`EnvFileSearch` saying where to look for one.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, str] = dict(DEFAULTS)
    source = _find_env_file(environ, env_file)
    if source.read is not None:
        values.update(_read_env_file(source.read, source.named_by))
    values.update(environ)

    token = values.get("DISCORD_TOKEN", "").strip()
    return Settings(
        discord_token=token,
        bot_user_id=_bot_user_id(token, source),
        discord_api_url=_http_url("DISCORD_API_URL", values["DISCORD_API_URL"]),
        lavalink_nodes=_lavalink_nodes(values["LAVALINK_URL"], values["LAVALINK_PASSWORD"]),
        lavalink_resume_timeout=int(
            _number("LAVALINK_RESUME_TIMEOUT", values["LAVALINK_RESUME_TIMEOUT"], 1, 86_400)
        ),
        lavalink_node_loss_grace=_number(
            "LAVALINK_NODE_LOSS_GRACE", values["LAVALINK_NODE_LOSS_GRACE"], 0, 3_600
        ),
        lavalink_request_timeout=_number(
            "LAVALINK_REQUEST_TIMEOUT", values["LAVALINK_REQUEST_TIMEOUT"], 0.5, 120
        ),
        database_url=check_database_url(values["DATABASE_URL"]),
        guild_ids=_snowflakes("GUILD_IDS", values["GUILD_IDS"]),
        log_level=_log_level(values["LOG_LEVEL"]),
        log_format=_choice("LOG_FORMAT", values["LOG_FORMAT"], ("text", "json")),
        health_host=_host("HEALTH_HOST", values["HEALTH_HOST"]),
        health_port=_port("HEALTH_PORT", values["HEALTH_PORT"]),
        idle_timeout=_number("IDLE_TIMEOUT", values["IDLE_TIMEOUT"], 0, 86_400),
        env_file=source.read,
        shard_count=(count := _shard_count(values["SHARD_COUNT"])),
        shards=_shards(values["SHARD_IDS"], count, values["DATABASE_URL"]),
    )


def _find_env_file(
    environ: Mapping[str, str], env_file: str | Path | EnvFileSearch | None
) -> _EnvSource:
    if env_file is None:
        return _EnvSource(None)
    if not isinstance(env_file, EnvFileSearch):
        path = Path(os.path.abspath(env_file))
        return _EnvSource(path) if path.is_file() else _EnvSource(None, (path,))
    named = environ.get(ENV_FILE_VARIABLE, "").strip()
    if named:
        path = Path(os.path.abspath(named))
        if not path.exists():
            raise ConfigError(ENV_FILE_VARIABLE, f"names {path}, which does not exist")
        return _EnvSource(path, named_by=ENV_FILE_VARIABLE)
    candidates = env_file.candidates()
    for path in candidates:
        if path.is_file():
            return _EnvSource(path)
    return _EnvSource(None, candidates)


def _read_env_file(path: Path, named_by: str | None) -> dict[str, str]:
    """The file's values. Read here rather than by python-dotenv, which says nothing when a
    file cannot be read: a folder, a file the bot's user may not read, or not text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = "is a folder" if path.is_dir() else f"cannot be read ({type(exc).__name__})"
        if named_by is not None:
            raise ConfigError(named_by, f"names {path}, which {problem}") from None
        raise ConfigError(str(path), problem) from None
    file_values = dotenv.dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in file_values.items() if v is not None}


def _bot_user_id(token: str, source: _EnvSource) -> int:
    """The bot's user id, which Discord encodes as base64 in the token's first segment."""
    if not token:
        # The first thing a new user meets: say where the bot looked, so a .env in the
        # wrong folder is found at once.
        raise ConfigError("DISCORD_TOKEN", f"is not set ({source.token_hint()})")
    if token.lower().startswith("bot "):
        raise ConfigError("DISCORD_TOKEN", "must be the bare token, without 'Bot '")
    first = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if token.count(".") != 2 or not decoded.isdigit():
        raise ConfigError("DISCORD_TOKEN", "is not a Discord bot token")
    return int(decoded)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    chosen = value.strip().lower()
    if chosen not in choices:
        raise ConfigError(key, f"must be one of: {', '.join(choices)}")
    return chosen


def _host(key: str, value: str) -> str:
    host = value.strip()
    if not host or any(c.isspace() or c in "/:@" for c in host.strip("[]")):
        raise ConfigError(key, "must be an address to listen on, like 127.0.0.1 or 0.0.0.0")
    return host.strip("[]")


def _port(key: str, value: str) -> int | None:
    """A TCP port, or ``None`` when left empty (the feature is off)."""
    if not value.strip():
        return None
    number = _number(key, value, 1, 65_535)
    if not number.is_integer():
        raise ConfigError(key, "must be a whole number")
    return int(number)


def _shard_count(value: str) -> int | None:
    if not value.strip():
        return None
    number = _number("SHARD_COUNT", value, 1, MAX_SHARDS)
    if not number.is_integer():
        raise ConfigError("SHARD_COUNT", "must be a whole number")
    return int(number)


def _shards(value: str, count: int | None, database_url: str) -> ShardSet | None:
    if not value.strip():
        return None
    if count is None:
        raise ConfigError("SHARD_IDS", "needs SHARD_COUNT, the shards of all processes together")
    if database_url.strip().startswith("sqlite"):
        raise ConfigError(
            "SHARD_IDS",
            "several processes share one database, and a SQLite file cannot be shared: "
            "set DATABASE_URL to PostgreSQL",
        )
    try:
        return ShardSet.parse(value, count)
    except ValueError as exc:
        raise ConfigError("SHARD_IDS", str(exc)) from None


def _http_url(key: str, value: str) -> str:
    value = value.strip().rstrip("/")
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(key, "must be an http:// or https:// URL")
    if parsed.username is not None or parsed.password is not None:
        # URLs are logged; a password in one would be too (Lavalink's has its own setting).
        raise ConfigError(key, "must not contain a user name or password")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(key, "has an invalid port") from None
    return value


def _lavalink_nodes(urls: str, passwords: str) -> tuple[LavalinkNode, ...]:
    """``LAVALINK_URL`` lists nodes by comma; ``LAVALINK_PASSWORD`` gives one password for all
    of them, or one per URL in the same order."""
    url_list = [_http_url("LAVALINK_URL", part) for part in urls.split(",") if part.strip()]
    if not url_list:
        raise ConfigError("LAVALINK_URL", "must name at least one Lavalink node")
    secret_list = [part.strip() for part in passwords.split(",")]
    if len(secret_list) == 1:
        secret_list *= len(url_list)
    if len(secret_list) != len(url_list):
        raise ConfigError("LAVALINK_PASSWORD", "must be one password, or one per LAVALINK_URL")
    if not all(secret_list):
        raise ConfigError("LAVALINK_PASSWORD", "must not be empty")
    nodes = []
    for url, password in zip(url_list, secret_list, strict=True):
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        nodes.append(LavalinkNode(f"{parsed.hostname}:{port}", url, password))
    if len({node.name for node in nodes}) != len(nodes):
        raise ConfigError("LAVALINK_URL", "names the same node twice")
    return tuple(nodes)


def _number(key: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(key, "must be a number") from None
    if not low <= number <= high:
        raise ConfigError(key, f"must be between {low:g} and {high:g}")
    return number


# A bare ``postgresql://`` (or Heroku-style ``postgres://``) URL names no driver; SQLAlchemy
# would pick the sync psycopg2, which the bot cannot use, so it means asyncpg here.
_DEFAULT_ASYNC_DRIVERS: Mapping[str, str] = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}

# Which extra of this package brings a driver, for the error message.
_DRIVER_EXTRAS: Mapping[str, str] = {"asyncpg": "musicbot[postgres]"}


def check_database_url(value: str) -> str:
    """``DATABASE_URL`` as the bot uses it: any SQLAlchemy URL whose async driver is installed,
    ``postgresql://`` and ``postgres://`` meaning asyncpg. Errors never echo the value, which
    may hold a password."""
    try:
        url = sqlalchemy.engine.make_url(value.strip())
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError("DATABASE_URL", "is not a database URL") from None
    if url.drivername == "sqlite":
        # Kept as an error rather than mapped: the bot's own default is written out in full.
        raise ConfigError("DATABASE_URL", "must use the async driver: sqlite+aiosqlite:///...")
    value = value.strip()
    if url.drivername in _DEFAULT_ASYNC_DRIVERS:
        # Swap only the scheme: re-rendering the URL would re-quote the rest of it.
        value = _DEFAULT_ASYNC_DRIVERS[url.drivername] + value[value.index(":") :]
        url = sqlalchemy.engine.make_url(value)
    try:
        dialect = url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError("DATABASE_URL", "names a database SQLAlchemy does not know") from None
    if not getattr(dialect, "is_async", False):
        raise ConfigError(
            "DATABASE_URL",
            "must use an async driver: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
        )
    try:
        dialect.import_dbapi()
    except ImportError:
        driver = url.get_driver_name()
        package = _DRIVER_EXTRAS.get(driver, driver)
        raise ConfigError(
            "DATABASE_URL", f"needs the {driver} driver: pip install '{package}'"
        ) from None
    return value


def _snowflakes(key: str, value: str) -> tuple[int, ...]:
    ids = []
    for part in value.replace(" ", ",").split(","):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 2**64:
            raise ConfigError(key, "must be a comma-separated list of server ids")
        ids.append(int(part))
    return tuple(ids)


def _log_level(value: str) -> int:
    level = logging.getLevelNamesMapping().get(value.strip().upper())
    if level is None:
        raise ConfigError("LOG_LEVEL", "must be one of DEBUG, INFO, WARNING, ERROR")
    return level
