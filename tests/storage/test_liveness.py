"""The liveness rows (revision 0010) and the stored session ids as the layouts rule reads and
forgets them, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import Repository
from bot.storage.repository import now_ms
from tests.storage.schema import migrate, tables


async def test_the_last_beat_outlives_a_reopen_and_each_process_has_its_own(db_url: str) -> None:
    repo = await Repository.open(db_url)
    assert await repo.liveness.last_alive("bot") is None  # a new database: never alive
    await repo.liveness.beat("bot", 1_000)
    await repo.liveness.beat("bot", 2_000)  # rewritten, not added
    await repo.liveness.beat("shards 0-3", 5_000)
    await repo.close()
    repo = await Repository.open(db_url)
    assert await repo.liveness.last_alive("bot") == 2_000
    assert await repo.liveness.last_alive("shards 0-3") == 5_000
    await repo.close()


async def test_revision_0010_adds_the_table_and_its_downgrade_removes_it(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.liveness.beat("bot", 1_000)
    await repo.close()
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        assert "liveness" in await connection.run_sync(tables)
        await connection.run_sync(migrate, "downgrade", "0009")
        assert "liveness" not in await connection.run_sync(tables)
        await connection.run_sync(migrate, "upgrade", "head")
    await engine.dispose()
    repo = await Repository.open(db_url)
    assert await repo.liveness.last_alive("bot") is None
    await repo.close()


async def test_every_row_is_read_and_only_rows_still_old_are_forgotten(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.liveness.beat("bot", 1_000)
    await repo.liveness.beat("bot 0/2", 5_000)
    await repo.liveness.beat("bot 1/2", 9_000)
    assert await repo.liveness.all() == {"bot": 1_000, "bot 0/2": 5_000, "bot 1/2": 9_000}
    assert await repo.liveness.forget([], 10_000) == 0
    # "bot 0/2" beat again after it was judged: its row stays.
    assert await repo.liveness.forget(["bot", "bot 0/2"], 2_000) == 1
    assert await repo.liveness.all() == {"bot 0/2": 5_000, "bot 1/2": 9_000}
    await repo.close()


async def test_session_ids_are_read_with_their_age_and_forgotten_unless_stored_again(
    db_url: str,
) -> None:
    repo = await Repository.open(db_url)
    await repo.save_session("lava:2333", "single")
    await repo.save_session("lava:2333 0/2", "first")
    stored = {s.key: s for s in await repo.sessions.all()}
    assert {key: s.session_id for key, s in stored.items()} == {
        "lava:2333": "single",
        "lava:2333 0/2": "first",
    }
    assert all(abs(s.updated_at_ms - now_ms()) < 5_000 for s in stored.values())
    judged = now_ms() + 1
    assert await repo.sessions.forget([], judged) == 0
    assert await repo.sessions.forget(["lava:2333"], stored["lava:2333"].updated_at_ms) == 0
    assert await repo.sessions.forget(["lava:2333", "lava:2333 1/2"], judged) == 1
    assert await repo.session_ids() == {"lava:2333 0/2": "first"}
    await repo.close()
