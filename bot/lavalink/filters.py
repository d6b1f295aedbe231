"""Audio filters as one typed, validated, immutable object.

Lavalink replaces the whole filter set on every update, and a sub-object with a field left out
takes that field's *default*, not its previous value; so a :class:`Filters` is always sent
whole, every sub-object complete. Lavalink does not range-check values over REST: a bad value
is accepted and then fails the track when the filter chain is built. Every value is therefore
checked here, when the object is made, against the ranges lavadsp accepts.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from .errors import FilterError

__all__ = [
    "BAND_FREQUENCIES",
    "ChannelMix",
    "Distortion",
    "EqualizerBand",
    "Filters",
    "Karaoke",
    "LowPass",
    "Rotation",
    "Timescale",
    "Tremolo",
    "Vibrato",
]

BAND_FREQUENCIES: Final = (
    25, 40, 63, 100, 160, 250, 400, 630, 1_000, 1_600, 2_500, 4_000, 6_300, 10_000, 16_000,
)  # fmt: skip
"""Centre frequency in Hz of each of the 15 equalizer bands."""


def _check(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise FilterError(f"{name} must be in {bracket}{low}, {high}], not {value!r}")


class _Filter(msgspec.Struct, frozen=True, rename="camel"):
    """Base of the sub-filters: camelCase on the wire, every field always sent."""


class EqualizerBand(_Filter, frozen=True):
    """One band: ``gain`` -0.25 mutes it, 0 leaves it, 0.25 roughly doubles it."""

    band: int
    gain: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.band < len(BAND_FREQUENCIES):
            raise FilterError(f"equalizer band must be 0..14, not {self.band!r}")
        _check("equalizer gain", self.gain, -0.25, 1.0)


class Karaoke(_Filter, frozen=True):
    """Removes the voice band around ``filter_band`` Hz."""

    level: float = 1.0
    mono_level: float = 1.0
    filter_band: float = 220.0
    filter_width: float = 100.0

    def __post_init__(self) -> None:
        _check("karaoke level", self.level, 0.0, 1.0)
        _check("karaoke monoLevel", self.mono_level, 0.0, 1.0)
        _check("karaoke filterBand", self.filter_band, 0.0, 24_000.0)
        _check("karaoke filterWidth", self.filter_width, 0.0, 24_000.0)


class Timescale(_Filter, frozen=True):
    """``speed`` changes tempo, ``pitch`` only pitch, ``rate`` both."""

    speed: float = 1.0
    pitch: float = 1.0
    rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("speed", "pitch", "rate"):
            _check(f"timescale {name}", getattr(self, name), 0.0, 10.0, open_low=True)


class Tremolo(_Filter, frozen=True):
    """Wavering volume."""

    frequency: float = 2.0
    depth: float = 0.5

    def __post_init__(self) -> None:
        _check("tremolo frequency", self.frequency, 0.0, 1_000.0, open_low=True)
        _check("tremolo depth", self.depth, 0.0, 1.0, open_low=True)


class Vibrato(_Filter, frozen=True):
    """Wavering pitch."""

    frequency: float = 2.0
    depth: float = 0.5

    def __post_init__(self) -> None:
        _check("vibrato frequency", self.frequency, 0.0, 14.0, open_low=True)
        _check("vibrato depth", self.depth, 0.0, 1.0, open_low=True)


class Rotation(_Filter, frozen=True):
    """Pans the sound around the listener ("8D audio")."""

    rotation_hz: float = 0.0

    def __post_init__(self) -> None:
        _check("rotation rotationHz", self.rotation_hz, 0.0, 100.0)


class Distortion(_Filter, frozen=True):
    sin_offset: float = 0.0
    sin_scale: float = 1.0
    cos_offset: float = 0.0
    cos_scale: float = 1.0
    tan_offset: float = 0.0
    tan_scale: float = 1.0
    offset: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check(f"distortion {name}", getattr(self, name), -100.0, 100.0)


class ChannelMix(_Filter, frozen=True):
    """Mixes the channels; every factor 0.5 makes mono."""

    left_to_left: float = 1.0
    left_to_right: float = 0.0
    right_to_left: float = 0.0
    right_to_right: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check(f"channelMix {name}", getattr(self, name), 0.0, 1.0)


class LowPass(_Filter, frozen=True):
    """Suppresses high frequencies; ``smoothing`` above 1 has an effect."""

    smoothing: float = 20.0

    def __post_init__(self) -> None:
        _check("lowPass smoothing", self.smoothing, 0.0, 1_000.0)


class Filters(_Filter, frozen=True):
    """The complete filter set of a player. ``Filters()`` means no filters at all.

    ``volume`` is the filter volume (1.0 = 100 %, up to 5.0), separate from the player's own
    0..1000 volume. ``equalizer`` lists the bands that differ from 0; one entry per band.
    ``plugin_filters`` is passed through to server plugins untouched.
    """

    volume: float = 1.0
    equalizer: tuple[EqualizerBand, ...] = ()
    karaoke: Karaoke | None = None
    timescale: Timescale | None = None
    tremolo: Tremolo | None = None
    vibrato: Vibrato | None = None
    rotation: Rotation | None = None
    distortion: Distortion | None = None
    channel_mix: ChannelMix | None = None
    low_pass: LowPass | None = None
    plugin_filters: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check("filter volume", self.volume, 0.0, 5.0)
        bands = [entry.band for entry in self.equalizer]
        if len(set(bands)) != len(bands):
            # Lavalink silently keeps the last duplicate; a caller who sent two meant something.
            raise FilterError("each equalizer band may appear only once")

    def with_equalizer(self, gains: dict[int, float]) -> Filters:
        """A copy with the given ``band -> gain`` equalizer (other filters kept)."""
        bands = tuple(EqualizerBand(band, gain) for band, gain in sorted(gains.items()))
        return msgspec.structs.replace(self, equalizer=bands)
