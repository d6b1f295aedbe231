"""Several processes share one bot: which guilds are whose, and what each keeps as its own."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.services import own_sessions
from bot.services.heartbeat import process_key
from bot.services.sessions import session_key
from bot.shards import ShardSet, shard_of
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
