"""Secrets never reach a log line, not even inside a traceback."""

from __future__ import annotations

import json
import logging
import sys

from bot.logs import JsonFormatter, RedactingFormatter


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


def test_json_lines_are_one_object_each_with_secrets_removed_before_encoding() -> None:
    # A secret with characters JSON escapes: redacting the encoded line would miss it.
    secret = 'pa"ss\\word'
    formatter = JsonFormatter([secret, "MTEx.token.secret"])
    try:
        raise RuntimeError(f"auth {secret} failed")
    except RuntimeError:
        record = logging.LogRecord(
            "bot.x", logging.ERROR, __file__, 1, "token %s", ("MTEx.token.secret",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "bot.x"
    assert entry["message"] == "token ***"
    assert "RuntimeError: auth *** failed" in entry["exception"]
    assert entry["time"].endswith("+00:00")
    assert json.dumps(secret)[1:-1] not in line  # not even JSON-escaped
