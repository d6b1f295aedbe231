"""The times ``/seek`` accepts, read into milliseconds: a pure function, no state.

Accepted (surrounding spaces ignored, ASCII digits only):

* ``83``: seconds;
* ``1:23``: minutes and seconds (seconds as two digits, below 60);
* ``1:02:03``: hours, minutes and seconds (minutes and seconds as two digits, below 60);
* any of these after ``+`` or ``-``: that far forward or back from where the song stands.

The first number has at most :data:`MAX_DIGITS` digits. Anything else is refused with
:class:`~.errors.BadTimecode`, whose sentence lists the formats above.
"""

from __future__ import annotations

import dataclasses
import re

from .errors import BadTimecode

__all__ = ["MAX_DIGITS", "SeekTarget", "parse"]

MAX_DIGITS = 6
"""Digits of the first number (999999 s is over 11 days: longer than any seekable track)."""

_TIME = re.compile(
    rf"(?P<sign>[+-]?)(?P<first>[0-9]{{1,{MAX_DIGITS}}})(?::(?P<second>[0-9]{{2}}))?"
    r"(?::(?P<third>[0-9]{2}))?",
    re.ASCII,
)


@dataclasses.dataclass(frozen=True, slots=True)
class SeekTarget:
    """A parsed time: ``ms`` from the start (``direction`` 0), or forward (1) or back (-1)."""

    ms: int
    direction: int = 0

    def resolve(self, now_ms: int) -> int:
        """The position asked for when the song stands at ``now_ms``.

        Going back past the start lands on the start (0), as a player's rewind button does;
        going past the end is the caller's to refuse, since it knows the track's length.
        """
        if self.direction == 0:
            return self.ms
        return max(0, now_ms + self.direction * self.ms)


def parse(text: str) -> SeekTarget:
    """Read ``text`` as one of the formats in the module docstring.

    Raises:
        BadTimecode: ``text`` is none of them.
    """
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise BadTimecode(text)
    fields = [match["first"], match["second"], match["third"]]
    numbers = [int(f) for f in fields if f is not None]
    # Every field after the first is minutes or seconds within the next larger unit.
    if any(n >= 60 for n in numbers[1:]):
        raise BadTimecode(text)
    seconds = 0
    for number in numbers:
        seconds = seconds * 60 + number
    direction = {"": 0, "+": 1, "-": -1}[match["sign"]]
    return SeekTarget(seconds * 1000, direction)
