"""What storage failures look like to the rest of the bot."""

from __future__ import annotations

__all__ = ["DatabaseOpenError", "StorageError"]


class StorageError(Exception):
    """A database read or write failed; nothing of that operation was saved."""


class DatabaseOpenError(StorageError):
    """The database could not be opened, or its schema not brought up to date, at start.

    The message names the database (``where``: the SQLite file's absolute path, or the server
    and database name, never the password), what went wrong and, where it can tell, the likely
    cause and its fix.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"cannot open {where}: {problem}")
        self.where = where
        self.problem = problem
