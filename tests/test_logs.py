"""Secrets never reach a log line, not even inside a traceback."""

from __future__ import annotations

import logging
import sys

from bot.logs import RedactingFormatter


def test_secrets_are_redacted_in_messages_and_tracebacks() -> None:
    formatter = RedactingFormatter(["MTEx.token.secret", "youshallnotpass"])
    try:
        raise RuntimeError("auth youshallnotpass failed")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token %s", ("MTEx.token.secret",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "MTEx.token.secret" not in line
    assert "youshallnotpass" not in line
    # The message, the traceback's source line and the exception text: all three hidden.
    assert line.count("***") == 3
