"""The client's fixed waits between repairs, in one place so tests can shorten them.

The defaults are the production values; nothing but a test should pass other ones (the bot
never does). Each wait is a back-off chosen against a real service, see where it is used.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Pacing"]


@dataclasses.dataclass(frozen=True, slots=True)
class Pacing:
    """Seconds the client waits before it tries a repair again.

    Attributes:
        rejoin_delays: before the first, second, third... re-join after Discord refused the
            voice credentials (4006, 4009) within the repair window; the last one repeats.
            At once, then spaced, so a broken channel is not hammered.
        update_retries: before the second, third... attempt of a player update that failed in
            passing (5xx, time-out, unreachable); their number is the number of retries.
    """

    rejoin_delays: tuple[float, ...] = (0.0, 1.0, 3.0)
    update_retries: tuple[float, ...] = (0.25, 1.0)

    def __post_init__(self) -> None:
        if not self.rejoin_delays or min((*self.rejoin_delays, *self.update_retries)) < 0:
            raise ValueError(f"invalid pacing: {self}")

    def rejoin_delay(self, tries: int) -> float:
        """The wait before the re-join that follows ``tries`` recent ones."""
        return self.rejoin_delays[min(tries, len(self.rejoin_delays) - 1)]
