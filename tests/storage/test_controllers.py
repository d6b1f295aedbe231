"""Storage of the now-playing controller's message (revision 0007), on SQLite and PostgreSQL.

Every test taking ``db_url`` runs on each backend (see ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import ControllerMessage, PlayerRecord, Repository
from tests.storage.schema import migrate, tables


async def test_a_controller_message_survives_a_reopen_and_is_forgotten_by_its_id(
    db_url: str,
) -> None:
    repo = await Repository.open(db_url)
    for guild_id in (1, 2):
        await repo.save_player(PlayerRecord(guild_id=guild_id))
    await repo.controllers.save(ControllerMessage(1, 10, 100))
    await repo.controllers.save(ControllerMessage(2, 20, 200))
    await repo.controllers.save(ControllerMessage(1, 11, 101))  # a newer one replaces it
    await repo.close()

    repo = await Repository.open(db_url)
    assert sorted(await repo.controllers.load(), key=lambda m: m.guild_id) == [
        ControllerMessage(1, 11, 101),
        ControllerMessage(2, 20, 200),
    ]
    await repo.controllers.forget(1, 100)  # the older message: the newer one stays
    assert ControllerMessage(1, 11, 101) in await repo.controllers.load()
    await repo.controllers.forget(1, 101)
    assert await repo.controllers.load() == [ControllerMessage(2, 20, 200)]
    await repo.close()


async def test_a_removed_guild_takes_its_controller_row_along(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.save_player(PlayerRecord(guild_id=1))
    await repo.controllers.save(ControllerMessage(1, 10, 100))
    await repo.delete_guild(1)
    assert await repo.controllers.load() == []
    await repo.close()


async def test_a_controller_posted_after_its_guild_was_removed_is_not_stored(
    db_url: str,
) -> None:
    # The bot is removed from the server while its controller is being posted: nothing to
    # remember (and no error): the worker's next pass deletes the message.
    repo = await Repository.open(db_url)
    await repo.save_player(PlayerRecord(guild_id=1))
    await repo.delete_guild(1)
    assert await repo.controllers.save(ControllerMessage(1, 10, 100)) is False
    assert await repo.controllers.load() == []
    await repo.close()


async def test_revision_0007_adds_the_table_and_its_downgrade_removes_only_it(
    db_url: str,
) -> None:
    database = sa.make_url(db_url).database
    if db_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "upgrade", "0006")
        assert "controller_messages" not in await connection.run_sync(tables)
        await connection.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, voice_channel_id, position_ms, "
                "position_at_ms, paused, volume, state, loop_mode) VALUES "
                "(9, 77, 0, 0, :paused, 60, 'idle', 'off')"
            ),
            {"paused": False},
        )
    repo = await Repository.open(db_url)  # migrates to the newest revision
    assert await repo.controllers.load() == []
    await repo.controllers.save(ControllerMessage(9, 5, 6))
    assert await repo.controllers.load() == [ControllerMessage(9, 5, 6)]
    await repo.close()
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "downgrade", "0006")
        assert "controller_messages" not in await connection.run_sync(tables)
        rows = await connection.execute(sa.text("SELECT guild_id, volume FROM guild_players"))
        assert rows.all() == [(9, 60)]
        await connection.run_sync(migrate, "upgrade", "head")
        assert "controller_messages" in await connection.run_sync(tables)
    await engine.dispose()
