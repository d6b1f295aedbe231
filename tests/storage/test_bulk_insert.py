"""Bulk writes (issue 14): a playlist in one batch, many players in one transaction; on
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from bot.storage import NewEntry, PlayerRecord, PlayerStatus, Repository


def _entries(count: int, prefix: str) -> list[NewEntry]:
    return [NewEntry(f"enc{n}", f"{prefix} {n}", "A", 1000, False, None, 1) for n in range(count)]


async def test_a_playlist_is_a_few_statements_whatever_its_length(db_url: str) -> None:
    repo = await Repository.open(db_url)
    statements: list[str] = []
    sa.event.listen(
        repo._engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    player, first = await repo.enqueue(PlayerRecord(guild_id=1), _entries(500, "a"), start=True)
    per_playlist = len(statements)
    assert per_playlist <= 10  # not one INSERT per track
    # The ids are the rows' ids, in the playlist's order, and the next playlist follows on.
    _, second = await repo.enqueue(player, _entries(300, "b"), start=True)
    assert len(statements) - per_playlist <= 10
    ids = [e.id for e in (*first, *second)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 800
    (stored,) = await repo.load_guilds()
    assert [(e.id, e.title) for e in stored.entries] == [(e.id, e.title) for e in (*first, *second)]
    assert stored.player.current_entry_id == first[0].id
    await repo.close()


async def test_ids_are_not_handed_out_twice_after_the_newest_rows_were_deleted(
    db_url: str,
) -> None:
    repo = await Repository.open(db_url)
    player, first = await repo.enqueue(PlayerRecord(guild_id=1), _entries(3, "a"), start=False)
    await repo.enqueue(PlayerRecord(guild_id=2), _entries(2, "b"), start=False)
    await repo.remove_entries(1, [first[-1].id])
    _, again = await repo.enqueue(player, _entries(2, "c"), start=False)
    (one, two) = sorted(await repo.load_guilds(), key=lambda g: g.player.guild_id)
    every = [e.id for e in (*one.entries, *two.entries)]
    assert len(every) == len(set(every)) == 6
    assert [e.title for e in one.entries] == ["a 0", "a 1", "c 0", "c 1"]
    assert [e.id for e in one.entries[2:]] == [e.id for e in again]
    await repo.close()


async def test_many_players_are_updated_in_one_statement_and_missing_ones_left_out(
    db_url: str,
) -> None:
    repo = await Repository.open(db_url)
    players = []
    for guild_id in (1, 2, 3):
        empty = PlayerRecord(guild_id=guild_id)
        player, _ = await repo.enqueue(empty, _entries(2, "a"), start=True)
        players.append(player)
    statements: list[str] = []
    sa.event.listen(
        repo._engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    lost = [
        dataclasses.replace(p, status=PlayerStatus.INTERRUPTED, position_ms=n * 1000)
        for n, p in enumerate(players)
    ]
    await repo.save_players([*lost, PlayerRecord(guild_id=99)])  # 99 has no row
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    stored = sorted((g.player for g in await repo.load_guilds()), key=lambda p: p.guild_id)
    assert stored == lost
    await repo.close()
