"""Filters: validated when made, always sent whole (Lavalink replaces the set)."""

from __future__ import annotations

import json
import math

import msgspec
import pytest

from bot.lavalink import (
    ChannelMix,
    EqualizerBand,
    FilterError,
    Filters,
    Karaoke,
    Timescale,
    Tremolo,
    UpdatePlayer,
    Vibrato,
)


def test_a_partial_change_is_still_sent_as_the_complete_set() -> None:
    filters = Filters(timescale=Timescale(speed=1.25)).with_equalizer({0: 0.2, 3: -0.1})
    wire = json.loads(msgspec.json.encode(UpdatePlayer(filters=filters)))["filters"]
    # Sub-objects carry every field (an omitted one would reset to its default server-side).
    assert wire["timescale"] == {"speed": 1.25, "pitch": 1.0, "rate": 1.0}
    # Every band states its gain: a band without one means gain 1.0 to Lavalink.
    assert wire["equalizer"] == [{"band": 0, "gain": 0.2}, {"band": 3, "gain": -0.1}]
    assert wire["volume"] == 1.0
    assert wire["karaoke"] is None
    assert set(wire) == {
        "volume", "equalizer", "karaoke", "timescale", "tremolo", "vibrato", "rotation",
        "distortion", "channelMix", "lowPass", "pluginFilters",
    }  # fmt: skip


def test_no_filters_clears_everything() -> None:
    wire = json.loads(msgspec.json.encode(Filters()))
    assert wire["equalizer"] == []
    assert all(wire[k] is None for k in ("karaoke", "timescale", "tremolo", "lowPass"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: EqualizerBand(15, 0.1),
        lambda: EqualizerBand(-1, 0.1),
        lambda: EqualizerBand(2, -0.3),
        lambda: EqualizerBand(2, 1.5),
        lambda: Filters(volume=5.5),
        lambda: Filters(volume=math.nan),
        lambda: Timescale(speed=0.0),
        lambda: Tremolo(depth=0.0),
        lambda: Vibrato(frequency=14.5),
        lambda: Karaoke(level=1.2),
        lambda: ChannelMix(left_to_right=-0.1),
        lambda: Filters(equalizer=(EqualizerBand(1, 0.1), EqualizerBand(1, 0.2))),
        lambda: Filters().with_equalizer({20: 0.1}),
    ],
)
def test_out_of_range_values_never_reach_lavalink(make: object) -> None:
    with pytest.raises(FilterError):
        make()  # type: ignore[operator]


def test_the_bounds_themselves_are_accepted() -> None:
    Filters(
        volume=5.0,
        equalizer=(EqualizerBand(0, -0.25), EqualizerBand(14, 1.0)),
        vibrato=Vibrato(frequency=14.0, depth=1.0),
        channel_mix=ChannelMix(0.5, 0.5, 0.5, 0.5),
    )
