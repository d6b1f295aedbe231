"""The liveness row (revision 0010), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import Repository
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
