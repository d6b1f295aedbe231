"""The fleet's guild plans (``peers/fleet.py``) spread over shards as Discord's ids would.

Why: the sharded restart bench (``bench/reshard.py``) compares 1 and 4 shards; the numbered ids
alone put nearly every guild on two shards of four, and listeners that followed the shard would
make one shard's guilds all go first. Either would measure the plans, not the bot.
"""

from __future__ import annotations

import collections

from peers.fake_discord import numbered_guild, shard_of
from peers.fleet import plan_fleet


def test_every_shard_holds_as_many_guilds_of_each_listener_count() -> None:
    plans = plan_fleet(1000, shards=4)
    per_shard = collections.Counter(shard_of(p.id, 4) for p in plans)
    assert per_shard == dict.fromkeys(range(4), 250)
    mix = collections.Counter((shard_of(p.id, 4), len(p.guild.members)) for p in plans)
    assert set(mix.values()) <= {62, 63}, mix
    assert len(mix) == 16
    assert len({p.id for p in plans}) == 1000


def test_unsharded_plans_keep_the_numbered_guilds() -> None:
    plans = plan_fleet(12, [2] * 12)
    assert [p.guild for p in plans] == [numbered_guild(i + 1, 2) for i in range(12)]
