"""Errors meant for the user: the message is shown as it is, ephemerally."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Something the user can fix or should know; ``str(exc)`` is the polite reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
