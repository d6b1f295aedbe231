"""Configuration: defaults, .env handling, and one clear error per bad key."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, LavalinkNode, load_settings

BOT_ID = 111111111111111111
TOKEN = base64.b64encode(str(BOT_ID).encode()).decode().rstrip("=") + ".abc.def"


def test_defaults_with_only_a_token() -> None:
    settings = load_settings({"DISCORD_TOKEN": TOKEN}, env_file=None)
    assert settings.bot_user_id == BOT_ID
    assert settings.discord_api_url == "https://discord.com/api/v10"
    assert settings.lavalink_nodes == (
        LavalinkNode("localhost:2333", "http://localhost:2333", "youshallnotpass"),
    )
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert settings.guild_ids == ()
    assert settings.log_level == logging.INFO


def test_several_lavalink_nodes_with_one_or_many_passwords() -> None:
    urls = "http://lava-a:2333, https://lava-b.example"
    shared = load_settings({"DISCORD_TOKEN": TOKEN, "LAVALINK_URL": urls}, env_file=None)
    assert [(n.name, n.password) for n in shared.lavalink_nodes] == [
        ("lava-a:2333", "youshallnotpass"),
        ("lava-b.example:443", "youshallnotpass"),
    ]
    own = load_settings(
        {"DISCORD_TOKEN": TOKEN, "LAVALINK_URL": urls, "LAVALINK_PASSWORD": "one,two"},
        env_file=None,
    )
    assert [n.password for n in own.lavalink_nodes] == ["one", "two"]
    assert "one" in own.secrets
    assert "two" in own.secrets
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {"DISCORD_TOKEN": TOKEN, "LAVALINK_URL": urls, "LAVALINK_PASSWORD": "a,b,c"},
            env_file=None,
        )
    assert raised.value.key == "LAVALINK_PASSWORD"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DISCORD_TOKEN={TOKEN}\nLAVALINK_URL=http://lava:2333\nGUILD_IDS=1, 2\nLOG_LEVEL=debug\n"
    )
    settings = load_settings({"LAVALINK_URL": "https://other:443"}, env_file=env_file)
    assert [node.url for node in settings.lavalink_nodes] == ["https://other:443"]
    assert settings.guild_ids == (1, 2)
    assert settings.log_level == logging.DEBUG


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DISCORD_TOKEN", ""),
        ("DISCORD_TOKEN", "not-a-token"),
        ("DISCORD_TOKEN", "Bot " + TOKEN),
        ("DISCORD_API_URL", "discord.com/api"),
        ("LAVALINK_URL", "ws://localhost:2333"),
        ("LAVALINK_URL", "http://localhost:99999"),
        ("LAVALINK_PASSWORD", "  "),
        ("LAVALINK_URL", " , "),
        ("LAVALINK_URL", "http://a:2333,http://a:2333"),
        ("LAVALINK_RESUME_TIMEOUT", "soon"),
        ("LAVALINK_NODE_LOSS_GRACE", "-1"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "sqlite:///data/bot.db"),
        ("GUILD_IDS", "123,abc"),
        ("LOG_LEVEL", "LOUD"),
        ("LAVALINK_REQUEST_TIMEOUT", "0"),
        ("HEALTH_PORT", "http"),
        ("HEALTH_PORT", "70000"),
        ("HEALTH_PORT", "80.5"),
        ("HEALTH_HOST", "http://0.0.0.0"),
        ("LOG_FORMAT", "xml"),
        ("SHARD_COUNT", "0"),
        ("SHARD_COUNT", "2.5"),
        ("SHARD_COUNT", "many"),
    ],
)
def test_bad_values_name_their_key(key: str, value: str) -> None:
    environ = {"DISCORD_TOKEN": TOKEN, key: value}
    with pytest.raises(ConfigError) as info:
        load_settings(environ, env_file=None)
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_the_health_endpoint_is_off_unless_a_port_is_given() -> None:
    settings = load_settings({"DISCORD_TOKEN": TOKEN}, env_file=None)
    assert (settings.health_host, settings.health_port) == ("127.0.0.1", None)
    settings = load_settings(
        {"DISCORD_TOKEN": TOKEN, "HEALTH_PORT": "8080", "HEALTH_HOST": "0.0.0.0"}, env_file=None
    )
    assert (settings.health_host, settings.health_port) == ("0.0.0.0", 8080)


def test_shards_are_as_discord_recommends_unless_a_count_is_given() -> None:
    assert load_settings({"DISCORD_TOKEN": TOKEN}, env_file=None).shard_count is None
    settings = load_settings({"DISCORD_TOKEN": TOKEN, "SHARD_COUNT": "4"}, env_file=None)
    assert settings.shard_count == 4


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        {"DISCORD_TOKEN": TOKEN, "LAVALINK_PASSWORD": "hunter2-secret"}, env_file=None
    )
    assert TOKEN not in repr(settings)
    assert "hunter2-secret" not in repr(settings)


def _run_bot(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # MUSICBOT_ENV_FILE: never the developer's own .env in this checkout's folder.
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env={"PATH": "/usr/bin:/bin", "MUSICBOT_ENV_FILE": os.devnull, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_m_bot_without_token_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    result = _run_bot({}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DISCORD_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr


def test_malformed_setting_exits_2_without_leaking_the_token(tmp_path: Path) -> None:
    result = _run_bot({"DISCORD_TOKEN": TOKEN, "LAVALINK_URL": "nope"}, tmp_path)
    assert result.returncode == 2
    assert "LAVALINK_URL" in result.stderr
    assert TOKEN not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key", ["LAVALINK_URL", "DISCORD_API_URL"])
def test_urls_with_a_password_in_them_are_refused_without_echoing_it(key: str) -> None:
    # These URLs are logged; Lavalink's password belongs in LAVALINK_PASSWORD.
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {"DISCORD_TOKEN": TOKEN, key: "http://admin:hunter2-url@lava:2333"}, env_file=None
        )
    assert key in str(raised.value)
    assert "hunter2-url" not in str(raised.value)


def test_the_database_password_is_a_secret_as_typed_and_decoded() -> None:
    settings = load_settings(
        {
            "DISCORD_TOKEN": TOKEN,
            "DATABASE_URL": "postgresql+asyncpg://bot:p%40ss%2Fword@db:5432/music",
        },
        env_file=None,
    )
    assert "p@ss/word" in settings.secrets
    assert "p%40ss%2Fword" in settings.secrets
