"""Storage of /settings (revision 0006) and of entries queued at a place of their own (/play
next, the fair queue). Every test taking ``db_url`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import GuildSettings, NewEntry, PlayerRecord, Repository, insert_keys
from bot.storage.edits import MIN_GAP
from tests.storage.schema import migrate
from tests.storage.test_repository import _tables


def entry(n: int, requester: int = 42) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000, False, None, requester)


def _record(statements: list[str]) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        statements.append(str(args[2]).strip())

    return listener


async def test_settings_are_one_row_per_changed_guild_and_go_with_it(db_url: str) -> None:
    repo = await Repository.open(db_url)
    assert await repo.settings.load() == []
    chosen = GuildSettings(
        7, dj_role_id=2**62, default_volume=30, announce=False, announce_channel_id=2**61,
        always_on=True, idle_timeout_s=0, max_queue_length=1, max_track_ms=10**10,
        user_share_percent=5, vote_skip_percent=0, fair_queue=True,
    )  # fmt: skip
    await repo.settings.save(GuildSettings(8))
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    await repo.settings.save(chosen)
    writes = [s for s in statements if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert len(writes) == 1, writes
    await repo.close()

    repo = await Repository.open(db_url)
    assert sorted(await repo.settings.load(), key=lambda s: s.guild_id) == [
        chosen,
        GuildSettings(8),
    ]
    await repo.enqueue(PlayerRecord(guild_id=7), [entry(1)], start=True)
    await repo.delete_guild(7)
    assert await repo.settings.load() == [GuildSettings(8)]
    assert await repo.load_guilds() == []
    await repo.close()


async def test_revision_0006_adds_and_drops_the_settings_table(db_url: str) -> None:
    """From 0005 up: the players stored before keep their queues, and every guild has the
    defaults (no row); down again, the table goes and the rest stays."""
    database = sa.make_url(db_url).database
    if db_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "upgrade", "0005")
        await connection.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, voice_channel_id, current_entry_id, "
                "position_ms, position_at_ms, paused, volume, state, loop_mode) VALUES "
                "(9, 77, NULL, 0, 0, :paused, 60, 'idle', 'off')"
            ),
            {"paused": False},
        )
    assert "guild_settings" not in await _tables(db_url)
    repo = await Repository.open(db_url)  # migrates to the newest revision
    assert await repo.settings.load() == []
    await repo.settings.save(GuildSettings(9, vote_skip_percent=75))
    (stored,) = await repo.load_guilds()
    assert stored.player.volume == 60
    await repo.close()
    async with engine.begin() as connection:
        defaults = await connection.execute(
            sa.text("INSERT INTO guild_settings (guild_id) VALUES (10)")
        )
        assert defaults.rowcount == 1
    repo = await Repository.open(db_url)
    loaded = {s.guild_id: s for s in await repo.settings.load()}
    assert loaded[10] == GuildSettings(10)  # the server defaults are the record's
    assert loaded[9].vote_skip_percent == 75
    await repo.close()
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "downgrade", "0005")
    assert "guild_settings" not in await _tables(db_url)
    assert {"guild_players", "play_history"} <= await _tables(db_url)
    await engine.dispose()


async def test_inserted_entries_land_in_their_gaps_in_one_transaction(db_url: str) -> None:
    """1,000 entries of a fair queue placed among 10,000: inserts, and a few re-keyed rows."""
    repo = await Repository.open(db_url)
    player, queued = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n, requester=n % 50) for n in range(10_000)], start=True
    )
    upcoming = list(queued[1:])
    rng = random.Random(6)
    places = sorted(rng.randrange(len(upcoming) + 1) for _ in range(1_000))
    keys, rekeys = insert_keys([e.sort_key for e in upcoming], places)
    assert len(rekeys) < 200  # only windows after full gaps
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    new = [entry(10_000 + n, requester=999) for n in range(1_000)]
    moved = [(upcoming[i].id, key) for i, key in rekeys]
    _, added = await repo.inserts.insert(player, new, keys, moved, start=False)
    updates = [s for s in statements if s.split()[0] in {"UPDATE", "DELETE"}]
    assert len(updates) <= 1, updates  # the re-keyed rows: one statement
    (stored,) = await repo.load_guilds()
    expected: list[int] = []
    pending = iter(zip(places, added, strict=True))
    nxt = next(pending, None)
    for index, old in enumerate([*upcoming, None]):
        while nxt is not None and nxt[0] == index:
            expected.append(nxt[1].id)
            nxt = next(pending, None)
        if old is not None:
            expected.append(old.id)
    assert [e.id for e in stored.entries if e.id != queued[0].id] == expected
    await repo.close()


@given(
    existing=st.lists(st.integers(min_value=-(10**6), max_value=10**6), unique=True, max_size=30),
    places=st.lists(st.integers(min_value=0, max_value=30), max_size=30),
)
def test_insert_keys_keep_the_merged_order_strict(existing: list[int], places: list[int]) -> None:
    existing.sort()
    places = sorted(min(p, len(existing)) for p in places)
    keys, rekeys = insert_keys(existing, places)
    final = dict(enumerate(existing)) | dict(rekeys)
    merged: list[int] = []
    new = iter(zip(places, keys, strict=True))
    pending = next(new, None)
    for index in range(len(existing) + 1):
        while pending is not None and pending[0] == index:
            merged.append(pending[1])
            pending = next(new, None)
        if index < len(existing):
            merged.append(final[index])
    assert merged == sorted(merged)
    assert len(set(merged)) == len(merged)
    # Re-keyed entries come only after a full gap, and are spaced for the next inserts.
    for index, key in rekeys:
        assert index >= 0
        assert key != existing[index]
    if rekeys:
        spaced = sorted(key for _, key in rekeys)
        assert all(b - a >= MIN_GAP for a, b in itertools.pairwise(spaced))
