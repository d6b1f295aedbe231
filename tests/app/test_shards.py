"""Several processes share one bot: which guilds are whose, and what each keeps as its own."""

from __future__ import annotations

import itertools

import pytest

from bot.config import ConfigError, load_settings
from bot.services import own_sessions
from bot.services.heartbeat import process_key, process_shards
from bot.services.sessions import session_key, session_owner
from bot.shards import MAX_PERIOD, ShardSet, covered, overlap, shard_of
from tests.app.test_config import TOKEN

POSTGRES = "postgresql+asyncpg://bot:secret@db:5432/bot"


def test_a_guild_belongs_to_exactly_one_process_by_discords_rule() -> None:
    processes = [ShardSet.parse("0-3", 8), ShardSet.parse("4,5,6,7", 8)]
    for guild_id in (81384788765712384, 613425648685547541, 1 << 22, 7 << 22, 12345):
        owners = [p for p in processes if p.owns(guild_id)]
        assert len(owners) == 1
        assert shard_of(guild_id, 8) in owners[0].ids


@pytest.mark.parametrize(
    ("text", "ids"),
    [("0-3", {0, 1, 2, 3}), ("4,5,6,7", {4, 5, 6, 7}), ("0-1, 6", {0, 1, 6}), ("2", {2})],
)
def test_shard_ids_are_ranges_or_lists(text: str, ids: set[int]) -> None:
    assert ShardSet.parse(text, 8).ids == ids


@pytest.mark.parametrize("text", ["", "a-b", "3-1", "8", "0-8", "-1"])
def test_nonsense_shard_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each says its own problem
        ShardSet.parse(text, 8)


def test_each_process_keys_its_own_session_and_liveness() -> None:
    first, second = ShardSet.parse("0-3", 8), ShardSet.parse("4-7", 8)
    keys = {session_key("lava:2333", s) for s in (None, first, second)}
    assert len(keys) == 3
    assert session_key("lava:2333", None) == "lava:2333"  # one process: as before
    assert len({process_key(s) for s in (None, first, second)}) == 3
    stored = {session_key("lava:2333", first): "aaa", session_key("lava:2333", second): "bbb"}
    assert own_sessions(stored, ["lava:2333"], first) == {"lava:2333": "aaa"}
    assert own_sessions(stored, ["lava:2333"], second) == {"lava:2333": "bbb"}
    assert own_sessions(stored, ["lava:2333"], None) == {}
    # A different layout (resharding) resumes nothing of the old one.
    assert own_sessions(stored, ["lava:2333"], ShardSet.parse("0-1", 4)) == {}


@pytest.mark.parametrize("text", ["0", "0-3", "4,5,6,7", "0-1,6", "1,3,5"])
def test_a_key_is_read_back_to_its_shards(text: str) -> None:
    shards = ShardSet.parse(text, 8)
    assert ShardSet.from_key(shards.key) == shards
    assert process_shards(process_key(shards)) == shards
    node, process = session_owner(session_key("lava:2333", shards))
    assert (node, process) == ("lava:2333", process_key(shards))


def test_the_whole_bot_and_digests_and_strangers() -> None:
    assert process_shards(process_key(None)) == ShardSet.whole()
    assert session_owner(session_key("lava:2333", None)) == ("lava:2333", process_key(None))
    assert all(ShardSet.whole().owns(guild) for guild in (1, 1 << 22, 12345 << 22))
    many = ShardSet(frozenset(range(0, 60, 2)), 60)
    assert len(many.key) < 40  # a digest stands for the long list
    assert ShardSet.from_key(many.key) is None  # and cannot be read back
    assert process_shards(process_key(many)) is None
    for key in ("", "0-3", "x/8", "0-3/x", "9/8", "3-1/8", "007/8", "1,1/8"):
        assert ShardSet.from_key(key) is None, key
    assert process_shards("other 0-1/4") is None


def _guilds_of(shards: ShardSet, count: int = 2_000) -> set[int]:
    return {s for s in range(count) if shards.owns(s << 22)}


@pytest.mark.parametrize(
    ("first", "second"),
    [(("0", 2), ("1", 2)), (("0", 2), ("1", 4)), (("0", 2), ("2", 4)), (("0-1", 4), ("1", 2)),
     (("0", 3), ("1", 2)), (("2", 4), ("1,3", 6)), (("0", 1), ("5", 7))],
)  # fmt: skip
def test_overlap_is_whether_some_guild_is_in_both(
    first: tuple[str, int], second: tuple[str, int]
) -> None:
    a, b = ShardSet.parse(*first), ShardSet.parse(*second)
    expected = bool(_guilds_of(a) & _guilds_of(b))  # by brute force over shard numbers
    assert overlap(a, b) == expected
    assert overlap(b, a) == expected


def test_covered_is_whether_every_guild_is_in_one_of_the_others() -> None:
    halves = [ShardSet.parse("0", 2), ShardSet.parse("1", 2)]
    quarters = [ShardSet.parse(str(n), 4) for n in range(4)]
    assert covered(ShardSet.whole(), halves)
    assert not covered(ShardSet.whole(), halves[:1])
    assert covered(halves[0], [quarters[0], quarters[2]])
    assert not covered(halves[0], [quarters[0], quarters[1]])
    assert covered(ShardSet.parse("0-1", 4), [ShardSet.parse("0", 1)])
    assert not covered(ShardSet.whole(), [])
    for picked in itertools.combinations([*halves, *quarters, ShardSet.parse("1", 3)], 2):
        expected = _guilds_of(ShardSet.parse("0-2", 3)) <= set().union(
            *(_guilds_of(s) for s in picked)
        )
        assert covered(ShardSet.parse("0-2", 3), picked) == expected
    # Past the longest cycle it walks, the answer is "not covered": a row is only kept longer.
    big = ShardSet(frozenset({0}), MAX_PERIOD + 1)
    assert not covered(big, [ShardSet.whole(), big])


def test_shard_ids_need_a_count_and_a_shared_database() -> None:
    base = {"DISCORD_TOKEN": TOKEN, "DATABASE_URL": POSTGRES}
    settings = load_settings({**base, "SHARD_COUNT": "8", "SHARD_IDS": "4-7"}, env_file=None)
    assert settings.shards == ShardSet(frozenset({4, 5, 6, 7}), 8)
    assert load_settings(base, env_file=None).shards is None
    with pytest.raises(ConfigError, match="SHARD_COUNT"):
        load_settings({**base, "SHARD_IDS": "0"}, env_file=None)
    with pytest.raises(ConfigError, match="outside 0-7"):
        load_settings({**base, "SHARD_COUNT": "8", "SHARD_IDS": "8"}, env_file=None)
    with pytest.raises(ConfigError, match="PostgreSQL") as refused:
        load_settings(
            {**base, "DATABASE_URL": "sqlite+aiosqlite:///data/bot.db", "SHARD_COUNT": "2",
             "SHARD_IDS": "0"},
            env_file=None,
        )  # fmt: skip
    assert refused.value.key == "SHARD_IDS"
