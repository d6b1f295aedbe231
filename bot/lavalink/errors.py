"""Exceptions raised by the Lavalink client.

REST failures are split by what a caller can do about them: a wrong password (401/403) is a
configuration problem, 404 usually means a stale session, 400 a bad request, 5xx and time-outs
a node in trouble. Each carries Lavalink's own message.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "FilterError",
    "ForbiddenError",
    "LavalinkError",
    "NoNodeAvailableError",
    "NotFoundError",
    "ProtocolError",
    "RequestTimeoutError",
    "RestError",
    "ServerError",
    "TrackDecodeError",
    "UnauthorizedError",
    "UnreachableError",
    "VoiceConnectError",
]


class LavalinkError(Exception):
    """Base of every error this package raises."""


class NoNodeAvailableError(LavalinkError):
    """No node has a ready session right now."""


class UnreachableError(LavalinkError):
    """The node could not be reached at all (connection refused, DNS, reset)."""


class RequestTimeoutError(LavalinkError):
    """The node did not answer in time."""


class ProtocolError(LavalinkError):
    """The node answered with something that is not the Lavalink v4 protocol."""


class FilterError(LavalinkError, ValueError):
    """A filter value is outside the range Lavalink's audio filters accept."""


class TrackDecodeError(LavalinkError, ValueError):
    """An ``encoded`` track string could not be decoded locally."""


class VoiceConnectError(LavalinkError):
    """Joining or leaving a voice channel did not complete (no voice credentials, Lavalink
    refused, or the gateway was not connected to send it)."""


class RestError(LavalinkError):
    """Lavalink answered a REST call with an error status."""

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(f"{status} on {path}: {message}")
        self.status = status
        self.message = message
        self.path = path


class BadRequestError(RestError):
    """400: Lavalink rejected the request's contents."""


class UnauthorizedError(RestError):
    """401: no password was sent."""


class ForbiddenError(RestError):
    """403: the password is wrong."""


class NotFoundError(RestError):
    """404: unknown session or player (a paused session is also 'not found')."""


class ServerError(RestError):
    """5xx: Lavalink failed while handling the request."""


def rest_error_for(status: int, message: str, path: str) -> RestError:
    """Return the most specific :class:`RestError` for ``status``."""
    kind: type[RestError]
    if status == 400:
        kind = BadRequestError
    elif status == 401:
        kind = UnauthorizedError
    elif status == 403:
        kind = ForbiddenError
    elif status == 404:
        kind = NotFoundError
    elif status >= 500:
        kind = ServerError
    else:
        kind = RestError
    return kind(status, message, path)
