"""The self-diagnosis behind ``python -m bot check`` and ``/doctor``.

Most of what goes wrong for people who run a music bot themselves is set-up: a Lavalink too old
for Discord's encrypted voice, a wrong password, a missing YouTube plugin, a source that YouTube
blocks, a database folder the bot may not write, a token that was reset. Each check here turns
what it finds into :class:`Finding` lines: what is true, and for a problem the fix, in one line
each, in words an operator can act on. Checks never raise; what cannot be checked is a finding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Iterable, Sequence

import aiohttp
import hikari

from bot import lavalink
from bot.lavalink.node import MIN_VERSION
from bot.lavalink.rest import RestClient
from bot.storage import Repository, StorageError, describe_database

__all__ = [
    "SEARCH_PREFIXES",
    "Finding",
    "Status",
    "check_database",
    "check_discord",
    "check_lavalink",
    "exit_status",
    "render",
]

CHECK_TIMEOUT = 10.0
"""Seconds one request of a check may take."""
TEST_QUERY = "never gonna give you up"

SEARCH_PREFIXES: dict[str, str] = {
    "youtube": "ytsearch",
    "soundcloud": "scsearch",
    "bandcamp": "bcsearch",
    "deezer": "dzsearch",
    "spotify": "spsearch",
    "applemusic": "amsearch",
    "yandexmusic": "ymsearch",
}
"""Search prefixes of the sources that can search, to try one search each."""

_YOUTUBE_FIX = (
    "YouTube often blocks servers: update YOUTUBE_PLUGIN_VERSION, and see the README's "
    "troubleshooting for the plugin's OAuth, poToken and remote cipher options"
)


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One thing checked: ``area`` (``Lavalink 127.0.0.1:2333``, ``Database``, ...), what was
    found, and for anything but OK the fix."""

    area: str
    status: Status
    text: str
    fix: str | None = None


def exit_status(findings: Iterable[Finding]) -> int:
    """``check``'s exit status: 0 healthy (warnings allowed), 1 a problem found."""
    return 1 if any(f.status is Status.PROBLEM for f in findings) else 0


def render(findings: Iterable[Finding]) -> list[str]:
    """One line per finding, the fix on the next line after an arrow."""
    marks = {Status.OK: "ok  ", Status.WARNING: "warn", Status.PROBLEM: "FAIL"}
    lines = []
    for finding in findings:
        lines.append(f"[{marks[finding.status]}] {finding.area}: {finding.text}")
        if finding.fix:
            lines.append(f"       -> {finding.fix}")
    return lines


# --- Lavalink ---------------------------------------------------------------------------------


async def check_lavalink(
    nodes: Sequence[lavalink.NodeConfig], http: aiohttp.ClientSession
) -> list[Finding]:
    """Every node: reachable, password, version (DAVE), sources and plugins, one search per
    source that can search, load."""
    results = await asyncio.gather(*(_check_node(node, http) for node in nodes))
    return [finding for found in results for finding in found]


async def _check_node(node: lavalink.NodeConfig, http: aiohttp.ClientSession) -> list[Finding]:
    area = f"Lavalink {node.name}"
    rest = RestClient(http, node.url, node.password, timeout=CHECK_TIMEOUT)
    try:
        info = await rest.info()
    except (lavalink.UnauthorizedError, lavalink.ForbiddenError):
        return [
            Finding(
                area,
                Status.PROBLEM,
                f"{node.url} refused the password",
                "LAVALINK_PASSWORD must equal lavalink.server.password in Lavalink's "
                "application.yml",
            )
        ]
    except (lavalink.UnreachableError, lavalink.RequestTimeoutError) as exc:
        return [
            Finding(
                area,
                Status.PROBLEM,
                f"cannot reach {node.url} ({exc})",
                "is Lavalink running, and does LAVALINK_URL point at it (host and port)?",
            )
        ]
    except lavalink.LavalinkError as exc:
        return [
            Finding(
                area,
                Status.PROBLEM,
                f"{node.url} answered, but not as Lavalink 4 does ({exc})",
                "LAVALINK_URL must point at a Lavalink 4.2+ server",
            )
        ]
    findings = [_version_finding(area, info)]
    findings.extend(_source_findings(area, info))
    findings.extend(await _search_findings(area, rest, info))
    findings.append(await _load_finding(area, rest))
    return findings


def _version_finding(area: str, info: lavalink.NodeInfo) -> Finding:
    version = info.version
    semver = version.semver or f"{version.major}.{version.minor}.{version.patch}"
    if (version.major, version.minor, version.patch) < MIN_VERSION or version.major != 4:
        return Finding(
            area,
            Status.PROBLEM,
            f"runs Lavalink {semver}; Discord's encrypted voice (DAVE) needs 4.2 or newer 4.x",
            "upgrade Lavalink (in Docker: LAVALINK_VERSION=4.2.2 in .env, then "
            "`docker compose up -d`)",
        )
    return Finding(area, Status.OK, f"Lavalink {semver}, password accepted")


def _source_findings(area: str, info: lavalink.NodeInfo) -> list[Finding]:
    sources = ", ".join(info.source_managers) or "none"
    plugins = ", ".join(f"{p.name} {p.version}" for p in info.plugins) or "none"
    findings = [Finding(area, Status.OK, f"sources: {sources}; plugins: {plugins}")]
    if "youtube" not in info.source_managers:
        findings.append(
            Finding(
                area,
                Status.PROBLEM,
                "has no YouTube source, so song names find nothing on YouTube",
                "add the YouTube plugin (dev.lavalink.youtube:youtube-plugin) under "
                "lavalink.plugins in application.yml, as deploy/lavalink.yml does",
            )
        )
    return findings


async def _search_findings(area: str, rest: RestClient, info: lavalink.NodeInfo) -> list[Finding]:
    prefixes = [(s, SEARCH_PREFIXES[s]) for s in info.source_managers if s in SEARCH_PREFIXES]
    results = await asyncio.gather(
        *(rest.load_tracks(f"{prefix}:{TEST_QUERY}") for _, prefix in prefixes),
        return_exceptions=True,
    )
    findings = []
    for (source, prefix), result in zip(prefixes, results, strict=True):
        fix = _YOUTUBE_FIX if source == "youtube" else None
        match result:
            case lavalink.SearchResult(data=tracks) if tracks:
                text = f"a {source} search ({prefix}) found {len(tracks)} tracks"
                findings.append(Finding(area, Status.OK, text))
            case lavalink.ErrorResult(data=error):
                text = f"a {source} search ({prefix}) failed: {error.message or 'no reason given'}"
                findings.append(Finding(area, Status.PROBLEM, text, fix))
            case BaseException() as exc:
                text = f"a {source} search ({prefix}) failed: {exc}"
                findings.append(Finding(area, Status.PROBLEM, text, fix))
            case _:
                text = f"a {source} search ({prefix}) found nothing for {TEST_QUERY!r}"
                findings.append(Finding(area, Status.WARNING, text, fix))
    return findings


async def _load_finding(area: str, rest: RestClient) -> Finding:
    try:
        stats = await rest.stats()
    except lavalink.LavalinkError as exc:
        return Finding(area, Status.WARNING, f"cannot read its load ({exc})")
    load = stats.cpu.system_load
    text = (
        f"{stats.playing_players} of {stats.players} players playing, "
        f"system load {load:.0%}, Lavalink load {stats.cpu.lavalink_load:.0%}"
    )
    if load > 0.9:
        return Finding(
            area,
            Status.WARNING,
            text,
            "the machine is nearly saturated: audio may stutter; add a node or a core",
        )
    return Finding(area, Status.OK, text)


# --- database ---------------------------------------------------------------------------------


async def check_database(database_url: str) -> list[Finding]:
    """Opened as the bot opens it (so brought to the newest schema), then a write tried."""
    area = "Database"
    where = describe_database(database_url)
    try:
        repository = await Repository.open(database_url)
    except StorageError as exc:
        return [Finding(area, Status.PROBLEM, f"{where}: {exc}", "see DATABASE_URL")]
    try:
        problem = await repository.check_writable()
    finally:
        await repository.close()
    if problem is not None:
        return [
            Finding(
                area,
                Status.PROBLEM,
                f"{where} cannot be written: {problem}",
                "let the bot's user write the database and its folder, or stop whatever "
                "holds it locked",
            )
        ]
    return [Finding(area, Status.OK, f"{where}: schema up to date, takes writes")]


# --- Discord ----------------------------------------------------------------------------------


async def check_discord(token: str, api_url: str) -> list[Finding]:
    """The token logs in; what the bot is called and which application it belongs to."""
    area = "Discord"
    rest_app = hikari.RESTApp(url=api_url, max_retries=1)
    await rest_app.start()
    try:
        async with rest_app.acquire(token, hikari.TokenType.BOT) as rest:
            user = await rest.fetch_my_user()
            application = await rest.fetch_application()
    except hikari.UnauthorizedError:
        return [
            Finding(
                area,
                Status.PROBLEM,
                "Discord rejected DISCORD_TOKEN",
                "copy a fresh token from the Developer Portal's Bot tab (a reset invalidates "
                "the old one)",
            )
        ]
    except (hikari.HikariError, aiohttp.ClientError, OSError) as exc:
        return [
            Finding(
                area,
                Status.PROBLEM,
                f"cannot reach Discord ({type(exc).__name__})",
                "check this machine's internet connection (and DISCORD_API_URL if you set it)",
            )
        ]
    finally:
        await rest_app.close()
    return [
        Finding(
            area,
            Status.OK,
            f"logged in as {user.username} ({user.id}), application {application.id}",
        ),
        Finding(
            area,
            Status.OK,
            "needs only the GUILDS and GUILD_VOICE_STATES intents: nothing to enable in the "
            "Developer Portal",
        ),
    ]
