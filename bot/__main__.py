"""``python -m bot``: read the settings, then run the bot until stopped."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from bot import checkup, lavalink
from bot.app import StartupError, run
from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure_logging
from bot.storage import StorageError
from bot.storage.backup import BackupError, backup_sqlite

USAGE = """usage: python -m bot [check | backup PATH]

  (no command)   run the bot until SIGINT/SIGTERM
  check          diagnose the set-up (Discord, Lavalink, database), a fix for each problem;
                 exit status 0 healthy, 1 problems found, 2 cannot run
  backup PATH    copy the SQLite database to PATH, safely, also while the bot runs"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args and args != ["check"] and not (args[0] == "backup" and len(args) == 2):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"musicbot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args == ["check"]:
        return asyncio.run(_check(settings))
    if args:
        return _backup(settings.database_url, Path(args[1]))
    configure_logging(settings.log_level, settings.secrets, settings.log_format)
    try:
        asyncio.run(run(settings))
    except (StartupError, StorageError) as exc:
        print(f"musicbot: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _check(settings: Settings) -> int:
    nodes = [lavalink.NodeConfig(n.name, n.url, n.password) for n in settings.lavalink_nodes]
    async with aiohttp.ClientSession() as http:
        found = await asyncio.gather(
            checkup.check_discord(settings.discord_token, settings.discord_api_url),
            checkup.check_lavalink(nodes, http),
            checkup.check_database(settings.database_url),
        )
    findings = [finding for part in found for finding in part]
    text = "\n".join(checkup.render(findings))
    for secret in settings.secrets:  # never echo a secret, whatever an error says
        text = text.replace(secret, "***")
    print(text)
    status = checkup.exit_status(findings)
    print("musicbot: all checks passed" if status == 0 else "musicbot: problems found (see above)")
    return status


def _backup(database_url: str, target: Path) -> int:
    try:
        size = backup_sqlite(database_url, target)
    except BackupError as exc:
        print(f"musicbot: backup failed: {exc}", file=sys.stderr)
        return 2
    print(f"musicbot: backed up the database to {target.resolve()} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
