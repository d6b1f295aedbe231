"""The Docker set-up, read as Docker reads it: no image can be pulled here, so the wiring is.

Each test is one thing that went wrong (or would) for a self-hoster on the first
``docker compose up``: a plugins folder Lavalink cannot write, a build context carrying the
token, a bot started before Lavalink is up, a version that drifts, a variable nobody can find.
The Lavalink health check itself runs against the fake Lavalink, as Docker would run it.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import DEFAULTS, load_settings
from peers.fake_lavalink import FakeLavalink
from tests.app.test_config import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _defaults(text: str) -> dict[str, str]:
    """``${VAR:-default}`` in compose (and Spring's ``${VAR:default}``): VAR -> default."""
    return dict(re.findall(r"\$\{([A-Z0-9_]+):-?([^}]*)\}", text))


def test_lavalink_gets_no_volume_over_a_folder_the_image_lacks() -> None:
    # Docker creates a missing mount point owned by root; Lavalink runs as uid 322 and then
    # cannot write its plugin jar: "Permission denied", and it does not start.
    for mount in _service("lavalink").get("volumes", []):
        source, _, rest = mount.partition(":")
        target = rest.split(":")[0]
        assert target != "/opt/Lavalink/plugins", mount
        assert source.startswith("./"), f"only bind mounts of our own files: {mount}"
        assert rest.endswith(":ro"), f"Lavalink's config is mounted read-only: {mount}"
    assert "lavalink-plugins" not in (_compose().get("volumes") or {})


def test_the_bots_volume_is_created_and_owned_by_its_user_in_the_image() -> None:
    # A named volume starts as a copy of the image's folder, owner included.
    lines = _dockerfile()
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    assert user not in ("root", "0")
    for mount in _service("bot")["volumes"]:
        target = mount.split(":")[1]
        made = [line for line in lines if f"mkdir -p {target}" in line]
        assert made, f"{target} is not created in the image"
        assert f"chown {user} {target}" in made[0], f"{target} is not owned by {user}"


def test_versions_are_pinned_once_in_env_example() -> None:
    example = _env_example()
    compose_text = (ROOT / "docker-compose.yml").read_text()
    lavalink_yml = (ROOT / "deploy" / "lavalink.yml").read_text()
    version = example["LAVALINK_VERSION"]
    assert re.fullmatch(r"4\.(\d+)\.\d+", version), "an exact 4.x.y tag"
    assert tuple(int(p) for p in version.split(".")) >= (4, 2, 0), "4.2+ for Discord's DAVE"
    assert (
        _service("lavalink")["image"] == "ghcr.io/lavalink-devs/lavalink:${LAVALINK_VERSION:-4.2.2}"
    )
    plugin = example["YOUTUBE_PLUGIN_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", plugin)
    # The defaults in compose and in Lavalink's config are the same versions.
    assert _defaults(compose_text)["LAVALINK_VERSION"] == version
    assert _defaults(compose_text)["YOUTUBE_PLUGIN_VERSION"] == plugin
    assert _defaults(lavalink_yml)["YOUTUBE_PLUGIN_VERSION"] == plugin
    config = yaml.safe_load(lavalink_yml)
    (dependency,) = [
        p["dependency"]
        for p in config["lavalink"]["plugins"]
        if "youtube-plugin" in p["dependency"]
    ]
    assert dependency.endswith(":${YOUTUBE_PLUGIN_VERSION:" + plugin + "}")
    assert _service("lavalink")["environment"]["YOUTUBE_PLUGIN_VERSION"].startswith(
        "${YOUTUBE_PLUGIN_VERSION"
    )


def test_every_variable_compose_reads_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    used |= set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "deploy" / "lavalink.yml").read_text()))
    assert used
    assert used <= set(_env_example()), used - set(_env_example())
    # What compose sets for the bot is a key the bot reads (documented there too).
    assert set(_service("bot")["environment"]) <= set(_env_example())


def test_the_bot_waits_for_a_healthy_lavalink_and_both_report_health() -> None:
    bot, lavalink = _service("bot"), _service("lavalink")
    assert bot["depends_on"] == {"lavalink": {"condition": "service_healthy"}}
    for service in (bot, lavalink):
        check = service["healthcheck"]
        assert check["test"][0] == "CMD"
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)
        assert service["init"] is True
        assert service["restart"] == "unless-stopped"
        options = service["logging"]["options"]
        assert service["logging"]["driver"] == "json-file"
        assert options["max-size"]
        assert int(options["max-file"]) >= 2
    # The bot's check asks its own /health on the port compose turns it on at.
    port = bot["environment"]["HEALTH_PORT"]
    assert f"http://127.0.0.1:{port}/health" in " ".join(bot["healthcheck"]["test"])
    assert bot["environment"]["HEALTH_HOST"] == "127.0.0.1"
    assert "lavalink:2333" in bot["environment"]["LAVALINK_URL"]


def test_the_build_context_leaves_out_the_token_the_venv_and_the_data() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "data/", ".git"} <= ignored
    assert "*.db" in ignored
    # Nothing the image copies is ignored.
    copied = {
        part.rstrip("/")
        for line in _dockerfile()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    }
    assert copied
    assert not copied & {entry.rstrip("/") for entry in ignored}


def test_the_image_runs_the_python_ci_tests_with() -> None:
    base = next(line for line in _dockerfile() if line.startswith("FROM "))
    match = re.match(r"FROM python:(\d+)\.(\d+)-slim", base)
    assert match, base
    assert (int(match[1]), int(match[2])) == sys.version_info[:2]


def _lavalink_health_check(port: int) -> str:
    """The compose health check as Docker runs it: ``$$`` is compose's escape for ``$``."""
    script = _service("lavalink")["healthcheck"]["test"][3]
    assert "127.0.0.1/2333" in script
    return str(script).replace("$$", "$").replace("127.0.0.1/2333", f"127.0.0.1/{port}")


@pytest.mark.parametrize(("password", "healthy"), [("youshallnotpass", True), ("wrong", False)])
async def test_the_lavalink_health_check_asks_version_with_the_password(
    password: str, healthy: bool
) -> None:
    async with FakeLavalink() as lavalink:
        port = int(lavalink.url.rsplit(":", 1)[1])
        check = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            _lavalink_health_check(port),
            env={"LAVALINK_PASSWORD": password, "PATH": "/usr/bin:/bin"},
        )
        assert await asyncio.wait_for(check.wait(), 10) == (0 if healthy else 1)
        asked = [r for r in lavalink.requests if r.path == "/version"]
        assert asked
        assert asked[-1].status == (200 if healthy else 403)
    # No Lavalink listening: unhealthy, not hanging.
    check = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        _lavalink_health_check(port),
        env={"LAVALINK_PASSWORD": password, "PATH": "/usr/bin:/bin"},
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(check.wait(), 10) != 0


def test_the_readme_documents_every_setting_with_its_real_default() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", readme, flags=re.MULTILINE))
    keys = set(DEFAULTS) | {"DISCORD_TOKEN"} | set(_env_example())
    assert keys <= set(rows), keys - set(rows)
    for key, default in DEFAULTS.items():
        shown = rows[key].strip()
        assert shown == f"`{default}`" if default else shown.startswith("(empty"), (key, shown)
    for key in ("LAVALINK_VERSION", "YOUTUBE_PLUGIN_VERSION"):
        assert rows[key].strip() == f"`{_env_example()[key]}`"


def _scale() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_scaled_set_up_splits_the_shards_over_its_bots_on_one_postgres() -> None:
    # docker-compose.scale.yml: every shard run by exactly one bot process, all of them on the
    # one PostgreSQL and both Lavalink nodes, each started only once those are healthy.
    services = _scale()["services"]
    bots = {name: s for name, s in services.items() if name.startswith("bot-")}
    assert len(bots) >= 2
    owned: list[int] = []
    counts, databases = set(), set()
    for service in bots.values():
        env = {
            key: str(value).replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "pw")
            for key, value in service["environment"].items()
        }
        settings = load_settings({**env, "DISCORD_TOKEN": TOKEN}, env_file=None)
        assert settings.shards is not None
        owned += sorted(settings.shards.ids)
        counts.add(settings.shard_count)
        databases.add(settings.database_url)
        assert [n.url for n in settings.lavalink_nodes] == [
            "http://lavalink-a:2333",
            "http://lavalink-b:2333",
        ]
        healthy = {"condition": "service_healthy"}
        assert service["depends_on"] == {
            "postgres": healthy,
            "lavalink-a": healthy,
            "lavalink-b": healthy,
        }
        assert service["healthcheck"]["test"][0] == "CMD"
        assert service["restart"] == "unless-stopped"
    (count,) = counts
    assert sorted(owned) == list(range(count))
    (database,) = databases
    assert database.startswith("postgresql+asyncpg://musicbot:pw@postgres:5432/")
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    for node in ("lavalink-a", "lavalink-b"):
        assert services[node]["image"] == _service("lavalink")["image"]
        assert services[node]["volumes"] == _service("lavalink")["volumes"]


def test_every_variable_the_scaled_set_up_reads_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.scale.yml").read_text()))
    assert {"POSTGRES_PASSWORD", "LAVALINK_VERSION"} <= used
    assert used <= set(_env_example()), used - set(_env_example())
