"""The fake Discord's shards, against a raw websocket client and the real hikari ``GatewayBot``.

Why: a bot outgrowing one gateway session is run as several shards; these tests prove the fake
shards as Discord documents it (each shard its own session and READY, guilds routed by
``(guild_id >> 22) % num_shards``, 4010 / 4011, op 9 over ``max_concurrency``, the 120-a-minute
limit per connection, op 4 on the wrong shard ignored) and that hikari, started with
``shard_count`` / ``shard_ids``, takes what it sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import hikari
import lightbulb
import pytest

from peers.fake_discord import (
    GUILD,
    VOICE_CHANNEL,
    FakeDiscord,
    Guild,
    Interaction,
    default_guild,
    shard_of,
    sharded_guild,
)
from tests.peers.test_fake_discord import errors as errors  # noqa: PLC0414 - the fixture

pytestmark = pytest.mark.timeout(40)

WAIT = 5.0
"""Seconds any single network wait may take."""
ONE = sharded_guild(1, 1, 2)
"""A guild on shard 1 of 2 (:data:`GUILD` is on shard 0 of 2)."""
TWO = sharded_guild(2, 1, 2)
THREE = sharded_guild(3, 0, 2)


def two_shard_guilds() -> list[Guild]:
    assert shard_of(GUILD, 2) == 0
    return [default_guild(), sharded_guild(1, 1, 2), sharded_guild(2, 1, 2), sharded_guild(3, 0, 2)]


# ---------------------------------------------------------------------------------- raw client


async def _read(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=WAIT)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
    payload: dict[str, Any] = json.loads(msg.data)
    return payload


async def _connect(
    session: aiohttp.ClientSession, fake: FakeDiscord
) -> aiohttp.ClientWebSocketResponse:
    async with asyncio.timeout(WAIT):
        ws = await session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
    assert (await _read(ws))["op"] == 10
    return ws


async def _identify(ws: aiohttp.ClientWebSocketResponse, fake: FakeDiscord, shard: object) -> None:
    identify: dict[str, Any] = {"token": fake.token, "intents": 1 | 128, "properties": {}}
    if shard is not None:
        identify["shard"] = shard
    await ws.send_str(json.dumps({"op": 2, "d": identify}))


async def _shard(
    session: aiohttp.ClientSession, fake: FakeDiscord, shard: list[int] | None
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any], list[int]]:
    """A raw client identified as ``shard``: its socket, READY's ``d`` and the ids of the
    GUILD_CREATEs that followed (as many as READY listed)."""
    ws = await _connect(session, fake)
    await _identify(ws, fake, shard)
    ready = await _read(ws)
    assert ready["t"] == "READY", ready
    created = [int((await _read(ws))["d"]["id"]) for _ in ready["d"]["guilds"]]
    return ws, ready["d"], created


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    async with asyncio.timeout(WAIT):
        async for msg in ws:
            assert msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data)["op"] in (0, 11)
    return ws.close_code


@pytest.fixture
async def fake(errors: list[str]) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=two_shard_guilds(), max_concurrency=2) as server:
        yield server
        assert not server.unhandled, server.unhandled


async def test_each_shard_is_its_own_session_with_its_own_guilds(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws0, ready0, created0 = await _shard(session, fake, [0, 2])
        ws1, ready1, created1 = await _shard(session, fake, [1, 2])
        assert ready0["shard"] == [0, 2]
        assert ready1["shard"] == [1, 2]
        assert ready0["session_id"] != ready1["session_id"]
        assert [int(g["id"]) for g in ready0["guilds"]] == created0 == [GUILD, THREE.id]
        assert [int(g["id"]) for g in ready1["guilds"]] == created1 == [ONE.id, TWO.id]
        assert all(g["unavailable"] for g in ready0["guilds"] + ready1["guilds"])
        assert fake.num_shards == 2
        assert fake.connected
        # Each session counts its own sequence: READY and two GUILD_CREATEs.
        for shard in (0, 1):
            session_ = fake.shard_session(shard)
            assert session_ is not None
            assert [p["s"] for p in session_.sent] == [1, 2, 3]
        # A guild's events go to its shard; an event of no guild (a DM) to shard 0 only.
        await fake.dispatch("GUILD_UPDATE", {"id": str(ONE.id)})
        await fake.dispatch("MESSAGE_CREATE", {"content": "a DM"})
        assert (await _read(ws1))["t"] == "GUILD_UPDATE"
        assert (await _read(ws0))["t"] == "MESSAGE_CREATE"
        await ws1.send_str(json.dumps({"op": 1, "d": None}))
        assert (await _read(ws1))["op"] == 11  # nothing else came to shard 1 before it
        await ws0.close()
        await ws1.close()


async def test_a_shard_without_guilds_still_gets_ready(errors: list[str]) -> None:
    async with FakeDiscord(guilds=[default_guild()]) as fake, aiohttp.ClientSession() as session:
        ws, ready, created = await _shard(session, fake, [1, 2])
        assert ready["shard"] == [1, 2]
        assert ready["guilds"] == created == []
        await ws.close()


async def test_op_4_on_the_wrong_shard_is_ignored_and_recorded(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws0, _, _ = await _shard(session, fake, [0, 2])
        join = {"channel_id": None, "self_mute": False, "self_deaf": True}
        wrong = {**join, "guild_id": str(ONE.id), "channel_id": str(ONE.voice_channel_ids[0])}
        right = {**join, "guild_id": str(GUILD), "channel_id": str(VOICE_CHANNEL)}
        await ws0.send_str(json.dumps({"op": 4, "d": wrong}))
        await ws0.send_str(json.dumps({"op": 4, "d": right}))
        # Dispatches are in order: the first ones after the wrong op 4 are the right one's.
        state, server = await _read(ws0), await _read(ws0)
        assert (state["t"], state["d"]["guild_id"]) == ("VOICE_STATE_UPDATE", str(GUILD))
        assert (server["t"], server["d"]["guild_id"]) == ("VOICE_SERVER_UPDATE", str(GUILD))
        assert [(op.guild_id, op.shard) for op in fake.wrong_shard_voice_ops] == [(ONE.id, 0)]
        assert [(op.guild_id, op.shard) for op in fake.voice_ops] == [(GUILD, 0)]
        assert fake.bot_voice_channel(ONE.id) is None
        assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL
        await ws0.close()


@pytest.mark.parametrize(
    "shard", [[2, 2], [0, 0], [-1, 2], [0], [0, 1, 2], "0,1", [0.0, 1], [True, 2]]
)
async def test_an_invalid_shard_is_closed_4010(errors: list[str], shard: object) -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        ws = await _connect(session, fake)
        await _identify(ws, fake, shard)
        assert await _close_code(ws) == 4010
        assert fake.identify_count == 0
        assert fake.gateway_errors == [f"IDENTIFY with shard={shard!r}"]


async def test_too_many_guilds_for_one_session_is_closed_4011(errors: list[str]) -> None:
    guilds = [sharded_guild(i, i % 2, 2) for i in range(1, 6)]  # 3 on shard 0, 2 on shard 1
    async with (
        FakeDiscord(guilds=guilds, max_guilds_per_shard=3) as fake,
        aiohttp.ClientSession() as session,
    ):
        for shard in (None, [0, 1]):  # unsharded, left out or said
            ws = await _connect(session, fake)
            await _identify(ws, fake, shard)
            assert await _close_code(ws) == 4011
        assert fake.identify_count == 0
        ws0, _, created0 = await _shard(session, fake, [0, 2])
        ws1, _, created1 = await _shard(session, fake, [1, 2])
        assert sorted(created0 + created1) == sorted(g.id for g in guilds)
        assert len(created1) == 3  # as many as a session may hold
        await ws0.close()
        await ws1.close()


async def test_gateway_bot_recommends_a_shard_per_thousand_guilds(errors: list[str]) -> None:
    for count, shards in ((1, 1), (1000, 1), (1001, 2), (2001, 3)):
        guilds = [numbered(i) for i in range(1, count + 1)]
        async with (
            FakeDiscord(guilds=guilds, max_concurrency=16) as fake,
            aiohttp.ClientSession() as session,
        ):
            headers = {"Authorization": f"Bot {fake.token}"}
            url = f"{fake.rest_url}/gateway/bot"
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(WAIT)) as r:
                body = await r.json()
            assert body["shards"] == shards, count
            assert body["session_start_limit"]["max_concurrency"] == 16


def numbered(index: int) -> Guild:
    return Guild(id=600_000_000_000_000_000 + index, name=f"Guild {index}")


async def test_identifies_over_max_concurrency_get_op_9(errors: list[str]) -> None:
    guilds = two_shard_guilds()
    async with (
        FakeDiscord(guilds=guilds, max_concurrency=2) as fake,
        aiohttp.ClientSession() as session,
    ):
        fake.identify_window = 5.0  # Discord's
        # Buckets shard_id % 2: shards 0 and 1 may start together, shard 2 of 3 may not.
        ws0, _, _ = await _shard(session, fake, [0, 3])
        ws1, _, _ = await _shard(session, fake, [1, 3])
        ws2 = await _connect(session, fake)
        await _identify(ws2, fake, [2, 3])
        assert await _read(ws2) == {"op": 9, "d": False, "s": None, "t": None}
        assert fake.identify_refusals == [(2, 3)]
        assert fake.identify_count == 2
        for ws in (ws0, ws1, ws2):
            await ws.close()


async def test_the_rate_limit_is_per_connection_so_per_shard(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws0, _, _ = await _shard(session, fake, [0, 2])
        ws1, _, _ = await _shard(session, fake, [1, 2])
        # Shard 0: IDENTIFY + 119 heartbeats, the 120 Discord takes; shard 1: one fewer.
        for ws, beats in ((ws0, 119), (ws1, 118)):
            for _ in range(beats):
                await ws.send_str(json.dumps({"op": 1, "d": None}))
            for _ in range(beats):
                assert (await _read(ws))["op"] == 11
        await ws0.send_str(json.dumps({"op": 1, "d": None}))  # the 121st on shard 0
        assert await _close_code(ws0) == 4008
        await ws1.send_str(json.dumps({"op": 1, "d": None}))  # the 120th on shard 1
        assert (await _read(ws1))["op"] == 11  # still served: 240 a minute across the two
        assert fake.rate_limited == 1
        assert fake.busiest_window(shard=0) == 121
        assert fake.busiest_window(shard=1) == 120
        assert fake.connection_shards == [0, 1]
        await ws1.close()


async def test_a_new_shard_count_ends_the_old_sessions(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws, _, created = await _shard(session, fake, None)
        assert len(created) == 4
        old = fake.shard_session(0)
        ws0, _, created0 = await _shard(session, fake, [0, 2])
        assert old is not None
        assert not old.live
        assert created0 == [GUILD, THREE.id]
        assert fake.num_shards == 2
        # GUILD's events now go to shard 0 of 2, none to the old session's socket.
        await fake.dispatch("GUILD_UPDATE", {"id": str(GUILD)})
        assert (await _read(ws0))["t"] == "GUILD_UPDATE"
        await ws.send_str(json.dumps({"op": 1, "d": None}))
        assert (await _read(ws))["op"] == 11
        await ws.close()
        await ws0.close()


# ---------------------------------------------------------------------------------- hikari


async def _invoke_in(fake: FakeDiscord, guild: Guild, text: str) -> Interaction:
    return await fake.invoke(
        "echo",
        {"text": text},
        guild_id=guild.id,
        user_id=guild.members[0],
        channel_id=guild.text_channel_ids[0],
    )


def _sent_on(fake: FakeDiscord, interaction_id: int) -> list[int]:
    """The shards whose sessions were sent that INTERACTION_CREATE."""
    return [
        shard
        for shard in range(fake.num_shards)
        if (session := fake.shard_session(shard)) is not None
        and any(
            p["t"] == "INTERACTION_CREATE" and p["d"]["id"] == str(interaction_id)
            for p in session.sent
        )
    ]


class _Bot:
    """A real GatewayBot with lightbulb (one /echo command) and what it received."""

    def __init__(self, fake: FakeDiscord, guild_ids: list[int]) -> None:
        self.fake = fake
        self.bot = hikari.GatewayBot(
            fake.token,
            rest_url=fake.rest_url,
            banner=None,
            logs=None,
            intents=hikari.Intents.ALL_UNPRIVILEGED,
        )
        self.client = lightbulb.client_from_app(self.bot, default_enabled_guilds=guild_ids)
        self.available: list[int] = []
        self.ready: dict[int, list[int]] = {}
        self.voice: list[tuple[str, int]] = []
        self.errors: list[str] = []
        bot = self.bot
        bot.subscribe(hikari.StartedEvent, self._started)
        bot.subscribe(hikari.GuildAvailableEvent, self._available)
        bot.subscribe(hikari.ShardReadyEvent, self._ready)
        bot.subscribe(hikari.VoiceStateUpdateEvent, self._voice_state)
        bot.subscribe(hikari.VoiceServerUpdateEvent, self._voice_server)
        bot.subscribe(hikari.ExceptionEvent, self._exception)

        @self.client.register
        class Echo(lightbulb.SlashCommand, name="echo", description="Say it back"):
            text = lightbulb.string("text", "What to say")

            @lightbulb.invoke
            async def invoke(self, ctx: lightbulb.Context) -> None:
                await ctx.respond(self.text)

    async def _started(self, _: hikari.StartedEvent) -> None:
        await self.client.start()

    async def _available(self, event: hikari.GuildAvailableEvent) -> None:
        self.available.append(int(event.guild_id))

    async def _ready(self, event: hikari.ShardReadyEvent) -> None:
        self.ready[event.shard.id] = sorted(int(g) for g in event.unavailable_guilds)

    async def _voice_state(self, event: hikari.VoiceStateUpdateEvent) -> None:
        self.voice.append(("state", int(event.guild_id)))

    async def _voice_server(self, event: hikari.VoiceServerUpdateEvent) -> None:
        self.voice.append(("server", int(event.guild_id)))

    async def _exception(self, event: hikari.ExceptionEvent[hikari.Event]) -> None:
        self.errors.append(repr(event.exception))

    async def start(self, **kwargs: Any) -> None:
        await self.bot.start(check_for_updates=False, **kwargs)

    async def close(self) -> None:
        await self.bot.close()
        assert not self.errors, self.errors


async def test_hikari_with_two_shards_sees_every_guild_once(fake: FakeDiscord) -> None:
    guilds = sorted(fake.guilds)
    bot = _Bot(fake, [GUILD, ONE.id])
    await bot.start(shard_count=2, shard_ids=[0, 1])
    try:
        await fake.wait_until_ready()
        assert sorted(bot.bot.shards) == [0, 1]
        assert bot.ready == {0: sorted([GUILD, THREE.id]), 1: sorted([ONE.id, TWO.id])}
        assert sorted(bot.available) == guilds  # each exactly once, across the shards
        for shard in (0, 1):
            session = fake.shard_session(shard)
            assert session is not None
            assert session.sent[0]["d"]["shard"] == [shard, 2]
        # A command in a guild of shard 1 comes on shard 1, one in GUILD on shard 0.
        one = await _invoke_in(fake, ONE, "hi")
        assert (await one.reply()).content == "hi"
        assert _sent_on(fake, one.id) == [1]
        zero = await fake.invoke("echo", {"text": "ho"})
        assert (await zero.reply()).content == "ho"
        assert _sent_on(fake, zero.id) == [0]
        # hikari sends a guild's op 4 on the guild's shard; the answers come there.
        channel = ONE.voice_channel_ids[0]
        await bot.bot.update_voice_state(ONE.id, channel, self_mute=False, self_deaf=True)
        await fake.wait_for(lambda: len(bot.voice) == 2, timeout=WAIT, what="voice events")
        assert bot.voice == [("state", ONE.id), ("server", ONE.id)]
        assert [(op.guild_id, op.shard) for op in fake.voice_ops] == [(ONE.id, 1)]
        assert fake.wrong_shard_voice_ops == []
        one = fake.shard_session(1)
        assert one is not None
        assert [p["t"] for p in one.sent[-2:]] == ["VOICE_STATE_UPDATE", "VOICE_SERVER_UPDATE"]
    finally:
        await bot.close()


async def test_op_9_on_one_shard_ends_only_that_shards_session(fake: FakeDiscord) -> None:
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    bot = _Bot(fake, [GUILD])
    await bot.start(shard_count=2)  # hikari asks GET /gateway/bot for max_concurrency
    try:
        await fake.wait_until_ready()
        for guild in (default_guild(), ONE):
            channel = guild.voice_channel_ids[0]
            await bot.bot.update_voice_state(guild.id, channel, self_mute=False, self_deaf=True)
        await fake.wait_for(lambda: len(bot.voice) == 4, timeout=WAIT, what="both joins")
        identified = fake.identify_count
        await fake.drop_gateway(resumable=False, shard=1)
        assert dropped == [(ONE.id, ONE.voice_channel_ids[0])]
        assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL  # shard 0's session lives on
        await fake.wait_for(
            lambda: fake.identify_count == identified + 1 and fake.connected,
            timeout=10,
            what="shard 1 to IDENTIFY again",
        )
        await fake.wait_until_ready()
        assert sorted(bot.available).count(ONE.id) == 2  # GUILD_CREATE again, shard 1 only
        assert bot.available.count(GUILD) == 1
    finally:
        await bot.close()


async def test_hikari_honours_max_concurrency_between_its_shards(errors: list[str]) -> None:
    async with FakeDiscord(guilds=two_shard_guilds(), max_concurrency=1) as fake:
        fake.identify_window = 5.0  # Discord's, the least startup window hikari takes
        bot = _Bot(fake, [GUILD])
        await bot.start(shard_count=2)  # one bucket at a time, 5 s apart
        try:
            await fake.wait_until_ready()
            assert fake.identify_refusals == []
            assert fake.identify_count == 2
        finally:
            await bot.close()


async def test_a_process_running_shard_1_of_2_sees_only_its_guilds(fake: FakeDiscord) -> None:
    bot = _Bot(fake, [ONE.id])
    await bot.start(shard_count=2, shard_ids=[1])
    try:
        await fake.wait_until_ready(shards=[1])
        with pytest.raises(TimeoutError, match="shard 0 of 2"):
            await fake.wait_until_ready(timeout=0.1)  # nobody runs shard 0
        assert sorted(bot.available) == sorted([ONE.id, TWO.id])
        assert bot.bot.cache.get_guild(GUILD) is None
        assert fake.shard_session(0) is None
        interaction = await _invoke_in(fake, ONE, "yo")
        assert (await interaction.reply()).content == "yo"
        assert _sent_on(fake, interaction.id) == [1]
        # An event of shard 0's guild reaches no one, as on Discord with shard 0 not running.
        await fake.set_user_voice(GUILD, default_guild().members[0], None)
        one = fake.shard_session(1)
        assert one is not None
        assert "VOICE_STATE_UPDATE" not in [p["t"] for p in one.sent]
    finally:
        await bot.close()
