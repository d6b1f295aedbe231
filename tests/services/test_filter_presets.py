"""Every named filter preset is a filter set Lavalink takes, and each one does something."""

from __future__ import annotations

import msgspec

from bot import lavalink
from bot.services import FILTER_PRESETS
from peers.fake_lavalink import FakeLavalink
from peers.tracks import encode_track
from tests.lavalink.harness import CHANNEL, GUILD, LONG, catalogue, started


def test_there_are_at_least_ten_distinct_presets_and_discord_can_list_them() -> None:
    assert len(FILTER_PRESETS) >= 10
    assert len(FILTER_PRESETS) <= 25  # Discord shows at most 25 choices
    assert FILTER_PRESETS["off"] == lavalink.Filters()
    sets = list(FILTER_PRESETS.values())
    assert len({repr(s) for s in sets}) == len(sets), "two names for the same sound"
    assert all(len(name) <= 100 for name in FILTER_PRESETS)


async def test_the_node_accepts_every_preset_and_reports_it_back() -> None:
    node = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=5)
    await node.start()
    client, _discord, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        for name, filters in FILTER_PRESETS.items():
            player = await client.set_filters(GUILD, filters)
            # What the node answers (and holds) reads back as the very same filter set.
            assert msgspec.convert(player.filters, lavalink.Filters) == filters, name
            live = node.player(GUILD)
            assert live is not None
            assert msgspec.convert(live.filters, lavalink.Filters) == filters, name
    finally:
        await client.close()
        await node.stop()
