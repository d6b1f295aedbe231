"""DATABASE_URL: any SQLAlchemy async URL; bare PostgreSQL URLs mean asyncpg; the password
never reaches a log line or an error message."""

from __future__ import annotations

import base64
import logging

import pytest

from bot.config import ConfigError, check_database_url, load_settings
from bot.logs import RedactingFormatter

TOKEN = base64.b64encode(b"111111111111111111").decode().rstrip("=") + ".abc.def"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite+aiosqlite:///data/bot.db", "sqlite+aiosqlite:///data/bot.db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("postgresql+asyncpg://bot:pw@db/music", "postgresql+asyncpg://bot:pw@db/music"),
        # Hosting panels hand out driverless URLs; the rest is kept byte for byte.
        ("postgresql://bot:p%40ss@db:5433/music", "postgresql+asyncpg://bot:p%40ss@db:5433/music"),
        (
            "postgres://bot:pw@db/music?ssl=require",
            "postgresql+asyncpg://bot:pw@db/music?ssl=require",
        ),
        ("  postgresql://db/music  ", "postgresql+asyncpg://db/music"),
    ],
)
def test_accepted_urls(given: str, used: str) -> None:
    assert check_database_url(given) == used


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not a url", "is not a database URL"),
        ("sqlite:///data/bot.db", "sqlite+aiosqlite"),
        ("postgresql+psycopg2://bot:pw@db/music", "async driver"),
        ("nosuchdb://db/music", "does not know"),
        ("mysql+aiomysql://bot:pw@db/music", "pip install 'aiomysql'"),
    ],
)
def test_rejected_urls_say_why_without_the_password(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_database_url(value)
    assert raised.value.key == "DATABASE_URL"
    assert problem in str(raised.value)
    assert "pw" not in str(raised.value)


def test_database_password_is_redacted_from_logs() -> None:
    settings = load_settings(
        {"DISCORD_TOKEN": TOKEN, "DATABASE_URL": "postgres://bot:c0rrect-horse@db/music"},
        env_file=None,
    )
    assert settings.database_url == "postgresql+asyncpg://bot:c0rrect-horse@db/music"
    assert "c0rrect-horse" in settings.secrets
    assert "c0rrect-horse" not in repr(settings)
    record = logging.LogRecord("x", logging.ERROR, "", 0, "%s", (settings.database_url,), None)
    assert "c0rrect-horse" not in RedactingFormatter(settings.secrets).format(record)
