"""``python -m bot``: read the settings, then run the bot until stopped."""

from __future__ import annotations

import asyncio
import sys

from bot.app import StartupError, run
from bot.config import ConfigError, load_settings
from bot.logs import configure_logging
from bot.storage import StorageError


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"musicbot: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets)
    try:
        asyncio.run(run(settings))
    except (StartupError, StorageError) as exc:
        print(f"musicbot: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
