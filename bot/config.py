"""Settings, read once at start from the environment and an optional ``.env`` file.

Every key is validated here so that a mistake stops the bot at start with one line naming the
key, rather than as a traceback minutes later. The real environment wins over ``.env``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import dotenv
import sqlalchemy.engine

__all__ = ["ConfigError", "Settings", "check_database_url", "load_settings"]

DEFAULTS: Mapping[str, str] = {
    "DISCORD_API_URL": "https://discord.com/api/v10",
    "LAVALINK_URL": "http://localhost:2333",
    "LAVALINK_PASSWORD": "youshallnotpass",
    "LAVALINK_RESUME_TIMEOUT": "60",
    "LAVALINK_NODE_LOSS_GRACE": "10",
    "LAVALINK_REQUEST_TIMEOUT": "10",
    "DATABASE_URL": "sqlite+aiosqlite:///data/bot.db",
    "GUILD_IDS": "",
    "LOG_LEVEL": "INFO",
}


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the key and never its value."""

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

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line."""
        passwords = [node.password for node in self.lavalink_nodes]
        passwords.append(sqlalchemy.engine.make_url(self.database_url).password or "")
        # As typed, too: a driver or a log line may show the URL-encoded form.
        passwords.append(urllib.parse.urlsplit(self.database_url).password or "")
        return tuple(s for s in (self.discord_token, *passwords) if s)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``) over ``env_file``."""
    values: dict[str, str] = dict(DEFAULTS)
    if env_file is not None and Path(env_file).is_file():
        try:
            file_values = dotenv.dotenv_values(env_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(env_file), f"cannot be read ({exc.__class__.__name__})") from None
        values.update({k: v for k, v in file_values.items() if v is not None})
    values.update(os.environ if environ is None else environ)

    token = values.get("DISCORD_TOKEN", "").strip()
    return Settings(
        discord_token=token,
        bot_user_id=_bot_user_id(token),
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
    )


def _bot_user_id(token: str) -> int:
    """The bot's user id, which Discord encodes as base64 in the token's first segment."""
    if not token:
        raise ConfigError("DISCORD_TOKEN", "is not set (copy it from the Developer Portal)")
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
