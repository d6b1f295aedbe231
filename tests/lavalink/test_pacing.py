"""The client's back-offs: production values by default, shortened only when passed in."""

from __future__ import annotations

import pytest

from bot.lavalink import Pacing


def test_the_defaults_are_the_production_back_offs() -> None:
    pacing = Pacing()
    # At once, then 1 s, then 3 s (tests/e2e/test_voice.py measures them end to end).
    assert [pacing.rejoin_delay(tries) for tries in range(3)] == [0.0, 1.0, 3.0]
    assert pacing.update_retries == (0.25, 1.0)


def test_the_last_rejoin_delay_repeats() -> None:
    pacing = Pacing(rejoin_delays=(0.0, 0.5))
    assert [pacing.rejoin_delay(tries) for tries in range(4)] == [0.0, 0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    "kwargs", [{"rejoin_delays": ()}, {"rejoin_delays": (0.0, -1.0)}, {"update_retries": (-0.1,)}]
)
def test_no_delay_is_negative_and_there_is_one_to_rejoin_after(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid pacing"):
        Pacing(**kwargs)  # type: ignore[arg-type]
