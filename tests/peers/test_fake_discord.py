"""The fake Discord against the real hikari ``GatewayBot`` and lightbulb client, in process.

Why: the e2e suite trusts this fake; these tests prove that hikari and lightbulb accept every
payload it sends (hikari swallows what it cannot parse, so every test fails on a loop exception,
a ``hikari.ExceptionEvent`` or an ERROR log) and that it behaves as Discord does on the paths the
bot depends on: start-up and command sync (and its failures), replies, voice (strict op 4, voice
dropped with the session), resume after 4000/4002/op 7/1006 and re-identify after op 9.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import hikari
import lightbulb
import pytest

from peers.discord_payloads import ALL_PERMISSIONS, EVERY_PERMISSION
from peers.fake_discord import (
    ALICE,
    BOT_ID,
    BOT_ROLE,
    GUILD,
    MODERATOR_ROLE,
    OTHER_VOICE_CHANNEL,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    FakeDiscord,
    Role,
    default_guild,
)

pytestmark = pytest.mark.timeout(30)


def make_loader(seen: dict[str, Any]) -> lightbulb.Loader:
    """Tiny commands covering each way of answering an interaction."""
    loader = lightbulb.Loader()

    @loader.command
    class Echo(lightbulb.SlashCommand, name="echo", description="Say it back"):
        text = lightbulb.string("text", "What to say")
        times = lightbulb.integer("times", "How often", default=1)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(" ".join([self.text] * self.times))

    @loader.command
    class Secret(lightbulb.SlashCommand, name="secret", description="Only you see it"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond("psst", ephemeral=True)

    @loader.command
    class Slow(lightbulb.SlashCommand, name="slow", description="Defer then answer"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.defer()
            await asyncio.sleep(0.1)
            await ctx.respond(embed=hikari.Embed(title="Done", description="slowly"))

    @loader.command
    class Oops(lightbulb.SlashCommand, name="oops", description="Defer, then a private error"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.defer()
            await ctx.delete_response(-1)
            await ctx.respond("that went wrong", ephemeral=True)

    @loader.command
    class Quiet(lightbulb.SlashCommand, name="quiet", description="Private defer, then answer"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.defer(ephemeral=True)
            await ctx.respond("shh")  # Discord: the defer decided who sees it

    @loader.command
    class Edit(lightbulb.SlashCommand, name="edit", description="Defer, then edit the original"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.defer()
            await ctx.edit_response(-1, "edited")

    @loader.command
    class Late(lightbulb.SlashCommand, name="late", description="Answer too late"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await asyncio.sleep(0.3)
            try:
                await ctx.respond("too late")
            except hikari.NotFoundError as exc:
                seen["late"] = exc.code

    @loader.command
    class Twice(lightbulb.SlashCommand, name="twice", description="Acknowledge twice"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond("first")
            try:
                await ctx.interaction.create_initial_response(
                    hikari.ResponseType.MESSAGE_CREATE, "second"
                )
            except hikari.BadRequestError as exc:
                seen["twice"] = exc.code

    @loader.command
    class Manage(
        lightbulb.SlashCommand,
        name="manage",
        description="Server managers only",
        default_member_permissions=hikari.Permissions.MANAGE_GUILD,
    ):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            member = ctx.member
            assert member is not None
            seen["manage"] = (
                member.permissions,
                ctx.interaction.app_permissions,
                sorted(int(r) for r in member.role_ids),
            )
            await ctx.respond("managed")

    async def songs(ctx: lightbulb.AutocompleteContext[str]) -> None:
        typed = ctx.focused.value
        assert isinstance(typed, str)
        count = 30 if typed == "many" else 3
        try:
            await ctx.respond([(f"{typed} song {i}", f"id{i}") for i in range(count)])
        except hikari.BadRequestError as exc:
            seen["autocomplete refused"] = exc.code

    @loader.command
    class Pick(lightbulb.SlashCommand, name="pick", description="Autocompleted"):
        song = lightbulb.string("song", "Type to search", autocomplete=songs)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"picked {self.song}")

    admin = lightbulb.Group(
        "admin", "A group for managers", default_member_permissions=hikari.Permissions.MANAGE_GUILD
    )
    picks = admin.subgroup("pick", "Pick something")
    loader.command(admin)

    @admin.register
    class Level(lightbulb.SlashCommand, name="level", description="A subcommand"):
        value = lightbulb.integer("value", "A number", min_value=0, max_value=10)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"level {self.value}")

    @picks.register
    class PickRole(lightbulb.SlashCommand, name="role", description="Pick a role"):
        role = lightbulb.role("role", "A role")

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            seen["role"] = (self.role.id, self.role.name, self.role.permissions)
            await ctx.respond(f"role {self.role.name}")

    @picks.register
    class PickChannel(lightbulb.SlashCommand, name="channel", description="Pick a channel"):
        channel = lightbulb.channel(
            "channel", "A text channel", channel_types=[hikari.ChannelType.GUILD_TEXT]
        )

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            picked = self.channel
            seen["channel"] = (picked.id, picked.type, picked.permissions)
            await ctx.respond(f"channel {picked.name}")

    @loader.command
    class Pager(lightbulb.SlashCommand, name="pager", description="An embed with page buttons"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            row = hikari.impl.MessageActionRowBuilder()
            row.add_interactive_button(hikari.ButtonStyle.SECONDARY, "page:2", label="Next")
            row.add_interactive_button(hikari.ButtonStyle.SECONDARY, "page:huge", label="Huge")
            await ctx.respond(embed=hikari.Embed(title="Page 1"), components=[row])

    @loader.command
    class Where(lightbulb.SlashCommand, name="where", description="Who the cache says I am"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            state = ctx.client.app.cache.get_voice_state(GUILD, ctx.user.id)  # type: ignore[attr-defined]
            await ctx.respond(f"you are in {state.channel_id if state else None}")

    return loader


@dataclass
class Harness:
    """A running bot against a running fake, and every error anybody tried to swallow."""

    fake: FakeDiscord
    bot: hikari.GatewayBot
    client: lightbulb.Client
    seen: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    voice_states: list[hikari.VoiceStateUpdateEvent] = field(default_factory=list)
    voice_servers: list[hikari.VoiceServerUpdateEvent] = field(default_factory=list)
    guilds_available: list[int] = field(default_factory=list)


class _ErrorLogs(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"log {record.name}: {record.getMessage()}")


async def start_bot(
    fake: FakeDiscord, errors: list[str], *, sync: bool = True, max_retries: int = 3
) -> Harness:
    """Build the bot the way the project does and wait until it can take commands.

    ``sync=False``: the client is not started (the test starts it), so this waits only for the
    guilds; ``max_retries`` is hikari's per-request 5xx retry count (its default is 3).
    """
    bot = hikari.GatewayBot(
        fake.token,
        rest_url=fake.rest_url,
        banner=None,
        logs=None,
        intents=hikari.Intents.ALL_UNPRIVILEGED,
        max_retries=max_retries,
    )
    client = lightbulb.client_from_app(bot, default_enabled_guilds=[GUILD])
    h = Harness(fake, bot, client, {}, errors)

    async def on_started(_: hikari.StartedEvent) -> None:
        await client.start()

    async def on_exception(event: hikari.ExceptionEvent[hikari.Event]) -> None:
        errors.append(f"hikari ExceptionEvent: {event.exception!r}")

    async def on_voice_state(event: hikari.VoiceStateUpdateEvent) -> None:
        h.voice_states.append(event)

    async def on_voice_server(event: hikari.VoiceServerUpdateEvent) -> None:
        h.voice_servers.append(event)

    async def on_guild(event: hikari.GuildAvailableEvent) -> None:
        h.guilds_available.append(event.guild_id)

    if sync:
        bot.subscribe(hikari.StartedEvent, on_started)
    bot.subscribe(hikari.ExceptionEvent, on_exception)
    bot.subscribe(hikari.VoiceStateUpdateEvent, on_voice_state)
    bot.subscribe(hikari.VoiceServerUpdateEvent, on_voice_server)
    bot.subscribe(hikari.GuildAvailableEvent, on_guild)
    await make_loader(h.seen).add_to_client(client)
    await bot.start(check_for_updates=False)
    if sync:
        await fake.wait_until_ready()
    else:
        await fake.wait_for(lambda: bool(h.guilds_available), what="GUILD_CREATE")
    return h


@pytest.fixture
async def errors() -> AsyncIterator[list[str]]:
    found: list[str] = []
    handler = _ErrorLogs(found)
    logging.getLogger().addHandler(handler)
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, ctx: found.append(f"loop: {ctx.get('message')} {ctx.get('exception')!r}")
    )
    yield found
    logging.getLogger().removeHandler(handler)
    assert not found, "swallowed errors:\n" + "\n".join(found)


@pytest.fixture
async def fake(errors: list[str]) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server
        assert not server.unhandled, server.unhandled


@pytest.fixture
async def h(fake: FakeDiscord, errors: list[str]) -> AsyncIterator[Harness]:
    harness = await start_bot(fake, errors)
    try:
        yield harness
    finally:
        await harness.bot.close()


# ---------------------------------------------------------------------------------- start-up


async def test_identify_ready_guild_create_and_command_sync(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    assert fake.identify_count == 1
    assert fake.gateway_queries[0]["compress"] == "zlib-stream"  # hikari's default transport
    assert fake.gateway_queries[0]["v"] == "10"
    assert h.guilds_available == [GUILD]
    me = bot.get_me()
    assert me is not None
    assert me.id == BOT_ID
    guild = bot.cache.get_guild(GUILD)
    assert guild is not None
    assert guild.name == "Fake Guild"
    voice = bot.cache.get_guild_channel(VOICE_CHANNEL)
    assert isinstance(voice, hikari.GuildVoiceChannel)
    assert isinstance(bot.cache.get_guild_channel(TEXT_CHANNEL), hikari.GuildTextChannel)
    alice = bot.cache.get_voice_state(GUILD, ALICE)
    assert alice is not None
    assert alice.channel_id == VOICE_CHANNEL
    assert bot.cache.get_voice_state(GUILD, BOT_ID) is None
    assert set(fake.registered_commands) == {
        *(
            "echo",
            "secret",
            "slow",
            "oops",
            "quiet",
            "edit",
            "late",
            "twice",
            "manage",
            "where",
            "pick",
            "pager",
            "admin",
        )
    }
    echo = fake.registered_commands["echo"]
    assert echo["guild_id"] == str(GUILD)
    assert [o["name"] for o in echo["options"]] == ["text", "times"]
    assert 2 in [op for _, op in fake.gateway_ops]
    heartbeats = [op for _, op in fake.gateway_ops if op == 1]
    assert heartbeats, "hikari heartbeats at once"


async def test_a_restarted_bot_identifies_again_and_finds_its_commands(
    fake: FakeDiscord, errors: list[str]
) -> None:
    first = await start_bot(fake, errors)
    await first.bot.close()
    puts = [c for c in fake.rest_calls if c.startswith("PUT")]
    assert len(puts) == 1
    second = await start_bot(fake, errors)
    try:
        assert fake.identify_count == 2
        # The stored commands round-trip: lightbulb finds nothing to change.
        assert [c for c in fake.rest_calls if c.startswith("PUT")] == puts
        reply = await (await fake.invoke("echo", {"text": "again"})).reply()
        assert reply.content == "again"
    finally:
        await second.bot.close()


# ---------------------------------------------------------------------------------- replies


async def test_an_interaction_records_when_it_went_out_and_when_the_callback_came(
    h: Harness,
) -> None:
    fake = h.fake
    loop = asyncio.get_running_loop()
    before = loop.time()
    echo = await fake.invoke("echo", {"text": "hi"})
    assert echo.sent_at is not None
    assert before <= echo.sent_at
    await echo.reply()
    assert echo.callback_at is not None
    assert echo.sent_at <= echo.callback_at <= loop.time()
    # A defer is the callback: the time is its arrival, not the follow-up's.
    slow = await fake.invoke("slow")
    await fake.wait_for(lambda: slow.callback_at is not None, what="the defer")
    deferred_at = slow.callback_at
    await slow.reply()
    assert slow.callback_at == deferred_at
    assert [kind for kind, _ in slow.responses] == ["callback", "followup"]


async def test_plain_ephemeral_deferred_and_deleted_defer_replies(h: Harness) -> None:
    fake = h.fake
    echo = await fake.invoke("echo", {"text": "hi", "times": 2})
    reply = await echo.reply()
    assert (reply.content, reply.ephemeral, reply.text) == ("hi hi", False, "hi hi")
    assert [kind for kind, _ in echo.responses] == ["callback"]

    reply = await (await fake.invoke("secret")).reply()
    assert reply.ephemeral
    assert reply.text == "psst"

    slow = await fake.invoke("slow")
    reply = await slow.reply()
    assert not reply.ephemeral
    assert reply.text == "Done\nslowly"
    assert [kind for kind, _ in slow.responses] == ["callback", "followup"]
    assert slow.responses[0][1]["type"] == 5

    oops = await fake.invoke("oops")
    reply = await oops.reply()
    assert reply.ephemeral
    assert reply.text == "that went wrong"
    assert [kind for kind, _ in oops.responses] == ["callback", "delete", "followup"]


async def test_private_defer_and_edited_defer(h: Harness) -> None:
    quiet = await h.fake.invoke("quiet")
    reply = await quiet.reply()
    assert (reply.content, reply.ephemeral) == ("shh", True)
    edit = await h.fake.invoke("edit")
    reply = await edit.reply()
    assert (reply.content, reply.ephemeral) == ("edited", False)
    assert [kind for kind, _ in edit.responses] == ["callback", "edit"]


async def test_an_answer_after_the_ack_deadline_is_unknown(h: Harness) -> None:
    h.fake.interaction_ack_timeout = 0.2  # Discord: 3 s
    late = await h.fake.invoke("late")
    await h.fake.wait_for(lambda: "late" in h.seen, what="the bot to see the 404")
    assert h.seen["late"] == 10062
    assert late.acknowledged is False
    assert h.fake.rest_errors == [
        f"POST /api/v10/interactions/{late.id}/{late.token}/callback"
        " -> 404 10062 Unknown interaction"
    ]
    h.fake.rest_errors.clear()


async def test_rest_objects_the_bot_fetches_and_posts(h: Harness) -> None:
    me = await h.bot.rest.fetch_my_user()
    assert me.id == BOT_ID
    channel = await h.bot.rest.fetch_channel(TEXT_CHANNEL)
    assert isinstance(channel, hikari.GuildTextChannel)
    assert channel.guild_id == GUILD
    voice = await h.bot.rest.fetch_channel(VOICE_CHANNEL)
    assert isinstance(voice, hikari.GuildVoiceChannel)
    embed = hikari.Embed(title="Now playing", description="a song").add_field("By", "someone")
    embed.set_footer("3:32")
    message = await h.bot.rest.create_message(TEXT_CHANNEL, "notice", embed=embed)
    assert message.channel_id == TEXT_CHANNEL
    assert message.embeds[0].title == "Now playing"
    sent = await h.fake.wait_for_message("a song")
    assert sent.channel_id == TEXT_CHANNEL
    assert sent.text == "notice\nNow playing\na song\nBy\nsomeone\n3:32"
    with pytest.raises(hikari.NotFoundError):
        await h.bot.rest.create_message(VOICE_CHANNEL + 100, "nowhere")
    h.fake.rest_errors.clear()


async def test_second_acknowledgement_is_refused_like_discord(h: Harness) -> None:
    reply = await (await h.fake.invoke("twice")).reply()
    assert reply.content == "first"
    await h.fake.wait_for(lambda: "twice" in h.seen, what="the bot to see the 400")
    assert h.seen["twice"] == 40060
    h.fake.rest_errors.clear()


async def test_invoke_refuses_unknown_commands_and_options(h: Harness) -> None:
    with pytest.raises(AssertionError, match="not registered"):
        await h.fake.invoke("nope")
    with pytest.raises(AssertionError, match="no option"):
        await h.fake.invoke("echo", {"text": "x", "loud": True})
    with pytest.raises(AssertionError, match="needs option"):
        await h.fake.invoke("echo")


async def test_subcommands_arrive_nested_with_roles_and_channels_resolved(h: Harness) -> None:
    """Discord sends a subcommand inside its group (types 2, 1) and a picked role or channel
    as its id, with the object in ``data.resolved``; hikari and lightbulb take them."""
    fake = h.fake
    reply = await (await fake.invoke("admin level", {"value": 7})).reply()
    assert reply.content == "level 7"
    reply = await (await fake.invoke("admin pick role", {"role": MODERATOR_ROLE})).reply()
    assert reply.content == "role Moderator"
    assert h.seen["role"] == (MODERATOR_ROLE, "Moderator", P.MANAGE_GUILD)
    reply = await (await fake.invoke("admin pick channel", {"channel": TEXT_CHANNEL})).reply()
    assert reply.content.startswith("channel text-")
    assert h.seen["channel"][:2] == (TEXT_CHANNEL, hikari.ChannelType.GUILD_TEXT)
    assert h.seen["channel"][2] == fake.permissions(GUILD, ALICE, TEXT_CHANNEL)
    with pytest.raises(AssertionError, match="needs a subcommand"):
        await fake.invoke("admin")
    with pytest.raises(AssertionError, match="needs a subcommand"):
        await fake.invoke("admin pick")
    with pytest.raises(AssertionError, match="no subcommand 'nope'"):
        await fake.invoke("admin nope")
    with pytest.raises(AssertionError, match="no role"):
        await fake.invoke("admin pick role", {"role": 12345})
    with pytest.raises(AssertionError, match="no channel of that type"):
        await fake.invoke("admin pick channel", {"channel": VOICE_CHANNEL})


async def test_a_group_for_managers_is_refused_to_others_in_each_subcommand(h: Harness) -> None:
    """``default_member_permissions`` sits on the group: every subcommand needs it."""
    fake = h.fake
    await fake.set_member_roles(GUILD, ALICE, [])
    with pytest.raises(AssertionError, match="may not use /admin"):
        await fake.invoke("admin level", {"value": 1})
    with pytest.raises(AssertionError, match="may not use /admin"):
        await fake.invoke("admin pick role", {"role": MODERATOR_ROLE})
    assert fake.registered_commands["admin"]["default_member_permissions"] == "32"


# ---------------------------------------------------------------------------------- permissions

P = hikari.Permissions


def _overwrites(bot: hikari.GatewayBot, channel_id: int) -> dict[int, hikari.PermissionOverwrite]:
    channel = bot.cache.get_guild_channel(channel_id)
    assert channel is not None
    return {int(k): v for k, v in channel.permission_overwrites.items()}


async def test_roles_member_roles_and_overwrites_reach_the_cache(h: Harness) -> None:
    cache = h.bot.cache
    roles = cache.get_roles_view_for_guild(GUILD)
    assert set(roles) == {GUILD, BOT_ROLE, MODERATOR_ROLE}
    assert roles[GUILD].name == "@everyone"
    assert roles[GUILD].permissions == P(int(ALL_PERMISSIONS))
    assert P.ADMINISTRATOR not in roles[GUILD].permissions
    bot_role = roles[BOT_ROLE]
    assert bot_role.is_managed
    assert bot_role.bot_id == BOT_ID
    assert bot_role.permissions == (
        P.VIEW_CHANNEL
        | P.SEND_MESSAGES
        | P.EMBED_LINKS
        | P.READ_MESSAGE_HISTORY
        | P.CONNECT
        | P.SPEAK
    )
    assert roles[MODERATOR_ROLE].permissions == P.MANAGE_GUILD
    me = cache.get_member(GUILD, BOT_ID)
    assert me is not None
    assert set(me.role_ids) == {GUILD, BOT_ROLE}  # hikari adds @everyone
    alice = cache.get_member(GUILD, ALICE)  # listed because she is in voice
    assert alice is not None
    assert set(alice.role_ids) == {GUILD, MODERATOR_ROLE}
    assert _overwrites(h.bot, TEXT_CHANNEL) == {}
    # Default: nothing is forbidden.
    for channel_id in (TEXT_CHANNEL, VOICE_CHANNEL):
        assert h.fake.permissions(GUILD, BOT_ID, channel_id) == int(ALL_PERMISSIONS)


async def test_a_channel_overwrite_is_a_channel_update(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    await fake.set_channel_overwrite(GUILD, VOICE_CHANNEL, GUILD, deny=int(P.SPEAK))
    await fake.set_channel_overwrite(GUILD, VOICE_CHANNEL, BOT_ID, allow=int(P.SPEAK))
    await fake.wait_for(lambda: len(_overwrites(bot, VOICE_CHANNEL)) == 2, what="CHANNEL_UPDATE")
    everyone, mine = _overwrites(bot, VOICE_CHANNEL)[GUILD], _overwrites(bot, VOICE_CHANNEL)[BOT_ID]
    assert (everyone.type, everyone.allow, everyone.deny) == (
        hikari.PermissionOverwriteType.ROLE,
        P.NONE,
        P.SPEAK,
    )
    assert (mine.type, mine.allow, mine.deny) == (
        hikari.PermissionOverwriteType.MEMBER,
        P.SPEAK,
        P.NONE,
    )
    # The member's own overwrite comes last: the bot may speak, Alice may not.
    assert fake.permissions(GUILD, BOT_ID, VOICE_CHANNEL) & int(P.SPEAK)
    assert not fake.permissions(GUILD, ALICE, VOICE_CHANNEL) & int(P.SPEAK)
    assert fake.permissions(GUILD, ALICE, OTHER_VOICE_CHANNEL) & int(P.SPEAK)

    await fake.remove_channel_overwrite(GUILD, VOICE_CHANNEL, BOT_ID)
    await fake.wait_for(lambda: set(_overwrites(bot, VOICE_CHANNEL)) == {GUILD}, what="removal")
    assert not fake.permissions(GUILD, BOT_ID, VOICE_CHANNEL) & int(P.SPEAK)
    with pytest.raises(ValueError, match="neither a role nor a member"):
        await fake.set_channel_overwrite(GUILD, VOICE_CHANNEL, 42, deny=1)
    with pytest.raises(ValueError, match="no overwrite"):
        await fake.remove_channel_overwrite(GUILD, VOICE_CHANNEL, BOT_ID)


async def test_role_allows_beat_role_denies_and_administrator_beats_overwrites(
    errors: list[str],
) -> None:
    dj = 777777777777777779
    guild = default_guild()
    guild.roles.append(Role(dj, "DJ", 0, position=3))
    guild.member_roles[ALICE] = [MODERATOR_ROLE, dj]
    view_send = int(P.VIEW_CHANNEL | P.SEND_MESSAGES)
    async with FakeDiscord(guilds=[guild]) as fake:
        await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, GUILD, deny=view_send)
        assert not fake.permissions(GUILD, ALICE, TEXT_CHANNEL) & view_send
        assert fake.permissions(GUILD, ALICE) & view_send == view_send  # guild-wide: untouched
        # One role's allow wins over another role's deny...
        await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, MODERATOR_ROLE, deny=view_send)
        await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, dj, allow=view_send)
        assert fake.permissions(GUILD, ALICE, TEXT_CHANNEL) & view_send == view_send
        # ...and the member's own overwrite over both.
        await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, ALICE, deny=int(P.SEND_MESSAGES))
        assert fake.permissions(GUILD, ALICE, TEXT_CHANNEL) & view_send == int(P.VIEW_CHANNEL)
        # An administrator and the owner hold everything, whatever the overwrites say.
        await fake.set_role_permissions(GUILD, dj, int(P.ADMINISTRATOR))
        assert fake.permissions(GUILD, ALICE, TEXT_CHANNEL) == EVERY_PERMISSION
        assert fake.permissions(GUILD, guild.owner_id, TEXT_CHANNEL) == EVERY_PERMISSION
        with pytest.raises(ValueError, match="managed role"):
            await fake.set_member_roles(GUILD, ALICE, [BOT_ROLE])


async def test_role_and_member_updates_reach_the_cache(h: Harness) -> None:
    fake, cache = h.fake, h.bot.cache

    def role_permissions(role_id: int) -> P | None:
        role = cache.get_role(role_id)
        return None if role is None else role.permissions

    await fake.set_role_permissions(GUILD, BOT_ROLE, int(P.VIEW_CHANNEL))
    await fake.set_role_permissions(GUILD, GUILD, int(P.CONNECT))
    await fake.wait_for(lambda: role_permissions(GUILD) == P.CONNECT, what="GUILD_ROLE_UPDATE")
    assert role_permissions(BOT_ROLE) == P.VIEW_CHANNEL
    assert fake.permissions(GUILD, BOT_ID, TEXT_CHANNEL) == int(P.VIEW_CHANNEL | P.CONNECT)

    # About the bot itself, GUILD_MEMBER_UPDATE comes without the GUILD_MEMBERS intent...
    await fake.set_member_roles(GUILD, BOT_ID, [])
    await fake.wait_for(
        lambda: (m := cache.get_member(GUILD, BOT_ID)) is not None and list(m.role_ids) == [GUILD],
        what="GUILD_MEMBER_UPDATE about the bot",
    )
    # ...about anyone else only with it (this bot has not asked for it).
    session = fake._session
    assert session is not None
    sent = len(session.sent)
    await fake.set_member_roles(GUILD, ALICE, [])
    assert len(session.sent) == sent
    assert fake.guilds[GUILD].member_roles[ALICE] == []
    with pytest.raises(ValueError, match="not a role"):
        await fake.set_role_permissions(GUILD, 42, 0)


async def test_interactions_carry_the_members_and_the_bots_permissions(h: Harness) -> None:
    fake = h.fake
    deny = int(P.SEND_MESSAGES)
    await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, BOT_ROLE, deny=deny)
    reply = await (await fake.invoke("manage")).reply()
    assert reply.content == "managed"
    member, app, roles = h.seen["manage"]
    assert member == P(fake.permissions(GUILD, ALICE, TEXT_CHANNEL))
    assert P.MANAGE_GUILD in member
    assert app == P(fake.permissions(GUILD, BOT_ID, TEXT_CHANNEL))
    assert P.SEND_MESSAGES not in app
    assert P.VIEW_CHANNEL in app
    assert roles == sorted([GUILD, MODERATOR_ROLE])
    assert fake.registered_commands["manage"]["default_member_permissions"] == "32"
    assert fake.registered_commands["echo"]["default_member_permissions"] is None


async def test_a_command_for_managers_is_refused_to_others_like_discord(h: Harness) -> None:
    fake = h.fake
    await fake.set_member_roles(GUILD, ALICE, [])
    with pytest.raises(AssertionError, match="may not use /manage"):
        await fake.invoke("manage")
    assert (await (await fake.invoke("echo", {"text": "hi"})).reply()).content == "hi"
    # An administrator may use every command.
    await fake.set_role_permissions(GUILD, GUILD, int(ALL_PERMISSIONS) | int(P.ADMINISTRATOR))
    assert (await (await fake.invoke("manage")).reply()).content == "managed"


async def test_posting_needs_view_channel_and_send_messages(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, BOT_ROLE, deny=int(P.SEND_MESSAGES))
    with pytest.raises(hikari.ForbiddenError) as refused:
        await bot.rest.create_message(TEXT_CHANNEL, "hello")
    assert refused.value.code == 50013
    assert (await bot.rest.fetch_channel(TEXT_CHANNEL)).id == TEXT_CHANNEL
    await fake.set_channel_overwrite(GUILD, TEXT_CHANNEL, BOT_ID, deny=int(P.VIEW_CHANNEL))
    with pytest.raises(hikari.ForbiddenError) as refused:
        await bot.rest.create_message(TEXT_CHANNEL, "hello")
    assert refused.value.code == 50001
    with pytest.raises(hikari.ForbiddenError):
        await bot.rest.fetch_channel(TEXT_CHANNEL)
    assert fake.messages == []
    assert len(fake.rest_errors) == 3
    fake.rest_errors.clear()


# ---------------------------------------------------------------------------------- voice


async def test_join_and_leave_voice(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    op = await fake.wait_for_voice_op(GUILD, VOICE_CHANNEL)
    assert (op.self_deaf, op.self_mute) == (True, False)
    await h.fake.wait_for(
        lambda: bool(h.voice_servers), what="VOICE_SERVER_UPDATE to reach the bot"
    )
    server = h.voice_servers[-1]
    assert server.raw_endpoint is not None
    assert server.raw_endpoint.startswith("fake-voice-")
    assert server.raw_endpoint.endswith(".discord.media:443")
    assert server.endpoint == f"wss://{server.raw_endpoint}"
    assert server.token
    state = bot.cache.get_voice_state(GUILD, BOT_ID)
    assert state is not None
    assert state.channel_id == VOICE_CHANNEL
    assert state.is_self_deafened
    assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL
    first_session = state.session_id

    # Joining the same channel again is answered again, with a new voice session.
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await h.fake.wait_for(lambda: len(h.voice_servers) == 2, what="a second VOICE_SERVER_UPDATE")
    state = bot.cache.get_voice_state(GUILD, BOT_ID)
    assert state is not None
    assert state.session_id != first_session

    await bot.update_voice_state(GUILD, None, self_mute=False, self_deaf=False)
    await fake.wait_for_voice_op(GUILD, None)
    await h.fake.wait_for(
        lambda: h.voice_states[-1].state.channel_id is None, what="the leave state update"
    )
    assert bot.cache.get_voice_state(GUILD, BOT_ID) is None
    assert fake.bot_voice_channel(GUILD) is None
    assert len(h.voice_servers) == 2  # no server update for a leave


async def test_voice_credentials_record_what_the_bot_was_handed(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    for joins in (1, 2):
        await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
        await fake.wait_for(
            lambda n=joins: len(h.voice_servers) == n == len(fake.voice_credentials),  # type: ignore[misc]
            what="the server update",
        )
        await fake.wait_for(
            lambda: (
                (s := bot.cache.get_voice_state(GUILD, BOT_ID)) is not None
                and s.session_id == fake.voice_credentials[-1].session_id
            ),
            what="the bot's voice state",
        )
        creds, server = fake.voice_credentials[-1], h.voice_servers[-1]
        assert (creds.guild_id, creds.channel_id) == (GUILD, VOICE_CHANNEL)
        assert (creds.token, creds.endpoint) == (server.token, server.raw_endpoint)
    first, second = fake.voice_credentials
    assert first.session_id != second.session_id
    assert first.token != second.token
    await bot.update_voice_state(GUILD, None, self_mute=False, self_deaf=False)
    await fake.wait_for_voice_op(GUILD, None)
    assert len(fake.voice_credentials) == 2  # a leave hands out nothing


async def test_voice_server_update_can_lag_behind_the_state_update(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    fake.voice_server_delay = 0.3
    loop = asyncio.get_running_loop()
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_states), what="the state update")
    state_at = loop.time()
    assert not h.voice_servers  # the server update is still on its way
    await fake.wait_for(lambda: bool(h.voice_servers), what="the server update")
    assert loop.time() - state_at >= 0.2
    assert h.voice_servers[-1].token == fake.voice_credentials[-1].token


async def test_move_and_kick_by_a_moderator(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=False)
    await h.fake.wait_for(lambda: bool(h.voice_servers), what="joined")
    session = fake._bot_voice[GUILD].session_id

    await fake.move_bot(GUILD, OTHER_VOICE_CHANNEL)
    await h.fake.wait_for(
        lambda: (
            (s := bot.cache.get_voice_state(GUILD, BOT_ID)) is not None
            and s.channel_id == OTHER_VOICE_CHANNEL
        ),
        what="the move to reach the cache",
    )
    moved = h.voice_states[-1]
    assert moved.old_state is not None
    assert moved.old_state.channel_id == VOICE_CHANNEL
    assert moved.state.session_id == session
    assert len(h.voice_servers) == 1

    await fake.kick_bot(GUILD)
    await h.fake.wait_for(lambda: h.voice_states[-1].state.channel_id is None, what="the kick")
    assert bot.cache.get_voice_state(GUILD, BOT_ID) is None
    assert fake.bot_voice_channel(GUILD) is None


async def test_user_voice_changes_reach_the_cache(h: Harness) -> None:
    fake = h.fake
    await fake.set_user_voice(GUILD, ALICE, OTHER_VOICE_CHANNEL)
    reply = await (await fake.invoke("where")).reply()
    assert reply.content == f"you are in {OTHER_VOICE_CHANNEL}"
    await fake.set_user_voice(GUILD, ALICE, None)
    reply = await (await fake.invoke("where")).reply()
    assert reply.content == "you are in None"


async def test_op_4_for_an_unknown_channel_is_recorded_and_ignored(h: Harness) -> None:
    await h.bot.update_voice_state(GUILD, TEXT_CHANNEL, self_mute=False, self_deaf=False)
    await h.fake.wait_for_voice_op(GUILD, TEXT_CHANNEL)
    await asyncio.sleep(0.1)
    assert h.fake.bot_voice_channel(GUILD) is None
    assert not h.voice_servers


async def test_op_4_without_self_mute_is_closed_4002_and_hikari_resumes(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake, bot = h.fake, h.bot
    caplog.set_level(logging.INFO, logger="hikari.gateway")
    # hikari leaves out the flags it is not given; Discord documents both as required.
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_deaf=True)
    await fake.wait_for(lambda: fake.resume_count == 1, what="hikari to RESUME after the 4002")
    assert fake.gateway_errors == ["op 4 without self_mute"]
    assert "[code:4002, reason:self_mute is required]" in caplog.text
    assert fake.identify_count == 1  # 4002 leaves the session resumable
    assert not fake.voice_ops
    assert fake.bot_voice_channel(GUILD) is None
    await fake.wait_for(lambda: bot.shards[0].is_connected, what="hikari to take RESUMED")
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_servers), what="the join")
    assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL
    assert fake.gateway_errors == ["op 4 without self_mute"]


async def test_op_4_needs_all_four_fields(fake: FakeDiscord) -> None:
    join = {"guild_id": str(GUILD), "channel_id": str(VOICE_CHANNEL)}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**join, "self_mute": False}, "self_deaf is required", "op 4 without self_deaf"),
        (
            {"guild_id": str(GUILD), "self_mute": False, "self_deaf": False},
            "channel_id is required",
            "op 4 without channel_id",
        ),
        (
            {**join, "self_mute": 0, "self_deaf": True},
            "self_mute must be a boolean",
            "op 4 with self_mute=0 (not a boolean)",
        ),
        (
            {**join, "guild_id": "fake", "self_mute": False, "self_deaf": True},
            "guild_id must be a snowflake",
            "op 4 with guild_id='fake' (not a snowflake)",
        ),
    ]
    async with aiohttp.ClientSession() as session:
        for d, reason, _ in cases:
            ws = await _raw_identify(session, fake)
            await ws.send_str(json.dumps({"op": 4, "d": d}))
            close = await _close_frame(ws)
            assert (close.data, close.extra) == (4002, reason)
    assert fake.gateway_errors == [error for _, _, error in cases]
    assert not fake.voice_ops


async def test_removed_from_a_guild_is_a_guild_leave_and_a_smaller_ready(
    fake: FakeDiscord, errors: list[str]
) -> None:
    h = await start_bot(fake, errors)
    left: list[hikari.GuildLeaveEvent] = []
    outages: list[hikari.GuildUnavailableEvent] = []
    h.bot.subscribe(hikari.GuildLeaveEvent, _recorder(left))
    h.bot.subscribe(hikari.GuildUnavailableEvent, _recorder(outages))
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    try:
        await h.bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=False)
        await fake.wait_for(lambda: bool(h.voice_servers), what="joined")
        await fake.remove_bot(GUILD)
        assert dropped == [(GUILD, VOICE_CHANNEL)]  # out of voice, with no voice state
        await fake.wait_for(lambda: bool(left), what="GuildLeaveEvent")
        assert left[0].guild_id == GUILD
        assert not outages  # no ``unavailable``: removed, not an outage
        assert h.bot.cache.get_guild(GUILD) is None
        assert h.bot.cache.get_voice_state(GUILD, ALICE) is None
        assert fake.bot_voice_channel(GUILD) is None
    finally:
        await h.bot.close()
    # The next login no longer lists the guild (and sends no GUILD_CREATE for it).
    async with aiohttp.ClientSession() as session:
        ws = await _raw_connect(session, fake, "")
        await ws.receive()
        identify = {"token": fake.token, "intents": 1 | 128, "properties": {}}
        await ws.send_str(json.dumps({"op": 2, "d": identify}))
        ready = json.loads((await ws.receive()).data)
        assert ready["t"] == "READY"
        assert ready["d"]["guilds"] == []
        await ws.close()


def _recorder(seen: list[Any]) -> Any:
    async def record(event: Any) -> None:
        seen.append(event)

    return record


async def test_deleting_the_voice_channel_drops_everyone_in_it(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    deleted: list[hikari.GuildChannelDeleteEvent] = []
    bot.subscribe(hikari.GuildChannelDeleteEvent, _recorder(deleted))
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=False)
    await fake.wait_for(lambda: bool(h.voice_servers), what="joined")

    await fake.delete_channel(GUILD, VOICE_CHANNEL)
    await fake.wait_for(lambda: bool(deleted), what="GuildChannelDeleteEvent")
    event = deleted[0]
    assert event.channel.id == VOICE_CHANNEL
    assert event.guild_id == GUILD
    assert isinstance(event.channel, hikari.GuildVoiceChannel)
    await fake.wait_for(
        lambda: bot.cache.get_voice_state(GUILD, BOT_ID) is None, what="the bot's voice state"
    )
    assert bot.cache.get_guild_channel(VOICE_CHANNEL) is None
    assert bot.cache.get_voice_state(GUILD, ALICE) is None
    assert fake.bot_voice_channel(GUILD) is None
    # The deletion comes before the voice states it causes.
    assert fake._session is not None
    tail = [(p["t"], p["d"].get("user_id")) for p in fake._session.sent][-3:]
    assert tail == [
        ("CHANNEL_DELETE", None),
        ("VOICE_STATE_UPDATE", str(ALICE)),
        ("VOICE_STATE_UPDATE", str(BOT_ID)),
    ]
    # A join to the deleted channel is ignored, like any non-voice channel.
    before = len(h.voice_servers)
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=False)
    await fake.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=1)
    await asyncio.sleep(0.1)
    assert len(h.voice_servers) == before
    # Deleting a text channel: the event only; nobody was in it.
    await fake.delete_channel(GUILD, TEXT_CHANNEL)
    await fake.wait_for(lambda: len(deleted) == 2, what="second GuildChannelDeleteEvent")
    assert isinstance(deleted[1].channel, hikari.GuildTextChannel)


async def test_busiest_window_counts_payloads_per_connection(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        for count in (5, 3):
            ws = await _raw_connect(session, fake, "")
            await ws.receive()
            for _ in range(count):
                await ws.send_str(json.dumps({"op": 1, "d": None}))
                await ws.receive()
            await ws.close()
    assert [len(ops) for ops in fake.connection_ops] == [5, 3]
    assert fake.busiest_window() == 5
    assert fake.busiest_window(connection=-1) == 3
    assert fake.busiest_window(window=0.0) == 0


# ---------------------------------------------------------------------------------- reconnects


async def test_resumable_drop_resumes_and_replays_missed_events(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    await fake.drop_gateway(resumable=True)
    # Sent while the bot is away: kept for the RESUME.
    await fake.set_user_voice(GUILD, ALICE, OTHER_VOICE_CHANNEL)
    await h.fake.wait_for(lambda: fake.resume_count == 1, what="hikari to RESUME", timeout=10)
    await h.fake.wait_for(
        lambda: (
            (s := bot.cache.get_voice_state(GUILD, ALICE)) is not None
            and s.channel_id == OTHER_VOICE_CHANNEL
        ),
        what="the missed VOICE_STATE_UPDATE to be replayed",
    )
    assert fake.identify_count == 1
    await fake.wait_until_ready()
    reply = await (await fake.invoke("echo", {"text": "back"})).reply()
    assert reply.content == "back"


async def test_invalid_session_drops_voice_silently_and_hikari_identifies_again(
    h: Harness,
) -> None:
    fake, bot = h.fake, h.bot
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_servers), what="joined")
    states = len(h.voice_states)
    await fake.drop_gateway(resumable=False)
    # Discord ends the session (and its voice connections) with the op 9, not at the IDENTIFY.
    assert dropped == [(GUILD, VOICE_CHANNEL)]
    assert fake.bot_voice_channel(GUILD) is None
    await fake.wait_for(
        lambda: fake.identify_count == 2, what="hikari to IDENTIFY again", timeout=10
    )
    assert fake.resume_count == 0
    await fake.wait_until_ready()
    await fake.wait_for(lambda: h.guilds_available.count(GUILD) == 2, what="GUILD_CREATE again")
    # No VOICE_STATE_UPDATE says so: the new session's GUILD_CREATE just lists none for the bot.
    assert len(h.voice_states) == states
    assert fake._session is not None
    assert "VOICE_STATE_UPDATE" not in [p["t"] for p in fake._session.sent]
    assert bot.cache.get_voice_state(GUILD, BOT_ID) is None
    assert dropped == [(GUILD, VOICE_CHANNEL)]  # once, not again at the IDENTIFY
    reply = await (await fake.invoke("echo", {"text": "fresh"})).reply()
    assert reply.content == "fresh"


async def test_drop_bot_voice_is_silent_and_awaits_the_hooks(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    dropped: list[tuple[int, int]] = []
    awaited: list[tuple[int, int]] = []

    async def closes_the_voice_socket(guild_id: int, channel_id: int) -> None:
        await asyncio.sleep(0.01)
        awaited.append((guild_id, channel_id))

    fake.voice_dropped_hooks += [lambda g, c: dropped.append((g, c)), closes_the_voice_socket]
    with pytest.raises(ValueError, match="not in voice"):
        fake.drop_bot_voice(GUILD)
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_servers), what="joined")
    states = len(h.voice_states)
    hooks_done = fake.drop_bot_voice(GUILD)  # a plain call: the drop is immediate
    assert fake.bot_voice_channel(GUILD) is None
    assert dropped == [(GUILD, VOICE_CHANNEL)]
    await hooks_done  # and the async hooks have finished
    assert awaited == [(GUILD, VOICE_CHANNEL)]
    await asyncio.sleep(0.1)
    assert len(h.voice_states) == states  # the gateway is told nothing...
    state = bot.cache.get_voice_state(GUILD, BOT_ID)
    assert state is not None  # ...so hikari still has the bot in the channel
    assert state.channel_id == VOICE_CHANNEL


async def test_a_replacing_identify_or_a_1000_close_ends_the_session_and_its_voice(
    fake: FakeDiscord,
) -> None:
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    join: dict[str, Any] = {"guild_id": str(GUILD), "channel_id": str(VOICE_CHANNEL)}
    join |= {"self_mute": False, "self_deaf": True}
    async with aiohttp.ClientSession() as session:
        first = await _raw_identify(session, fake)
        await first.send_str(json.dumps({"op": 4, "d": join}))
        await fake.wait_for(lambda: fake.bot_voice_channel(GUILD) == VOICE_CHANNEL, what="join")
        second = await _raw_identify(session, fake)  # while the first session is live
        assert dropped == [(GUILD, VOICE_CHANNEL)]
        assert fake.bot_voice_channel(GUILD) is None
        await second.send_str(json.dumps({"op": 4, "d": join}))
        await fake.wait_for(lambda: fake.bot_voice_channel(GUILD) == VOICE_CHANNEL, what="join")
        await second.close()  # 1000: Discord ends the session
        await fake.wait_for(lambda: len(dropped) == 2, what="the second drop")
        assert fake.bot_voice_channel(GUILD) is None
        await first.close()  # its session already ended: nothing more to drop
        await asyncio.sleep(0.05)
    assert dropped == [(GUILD, VOICE_CHANNEL)] * 2


async def test_a_failing_hook_is_logged_and_the_gateway_goes_on(
    fake: FakeDiscord, errors: list[str]
) -> None:
    def broken(_guild: int, _channel: int) -> None:
        raise RuntimeError("hook bug")

    fake.voice_dropped_hooks.append(broken)
    join = {"guild_id": str(GUILD), "channel_id": str(VOICE_CHANNEL)}
    async with aiohttp.ClientSession() as session:
        first = await _raw_identify(session, fake)
        await first.send_str(
            json.dumps({"op": 4, "d": {**join, "self_mute": False, "self_deaf": True}})
        )
        await fake.wait_for(lambda: fake.bot_voice_channel(GUILD) == VOICE_CHANNEL, what="join")
        second = await _raw_identify(session, fake)  # replaces it: the hook runs, and fails
        await second.send_str(json.dumps({"op": 1, "d": None}))
        while json.loads((await second.receive()).data)["op"] != 11:
            pass  # GUILD_CREATE, then the heartbeat ACK: the gateway still serves
        await second.close()
        await first.close()
    assert fake.bot_voice_channel(GUILD) is None
    assert [e for e in errors if "a voice_dropped hook failed" in e]
    errors.clear()


async def test_op_7_reconnect_resumes_and_keeps_voice(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_servers), what="joined")
    await fake.request_reconnect()
    await fake.set_user_voice(GUILD, ALICE, OTHER_VOICE_CHANNEL)  # while it reconnects
    await fake.wait_for(lambda: fake.resume_count == 1, what="hikari to RESUME")
    assert fake.identify_count == 1
    await fake.wait_for(
        lambda: (
            (s := bot.cache.get_voice_state(GUILD, ALICE)) is not None
            and s.channel_id == OTHER_VOICE_CHANNEL
        ),
        what="the VOICE_STATE_UPDATE sent meanwhile",
    )
    assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL
    state = bot.cache.get_voice_state(GUILD, BOT_ID)
    assert state is not None
    assert state.channel_id == VOICE_CHANNEL
    assert not dropped
    await fake.wait_until_ready()


async def test_a_cut_connection_1006_resumes_and_keeps_voice(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    dropped: list[tuple[int, int]] = []
    fake.voice_dropped_hooks.append(lambda guild, channel: dropped.append((guild, channel)))
    await bot.update_voice_state(GUILD, VOICE_CHANNEL, self_mute=False, self_deaf=True)
    await fake.wait_for(lambda: bool(h.voice_servers), what="joined")
    with pytest.raises(ValueError, match="resumable"):
        await fake.drop_gateway(resumable=False, abnormal=True)
    await fake.drop_gateway(abnormal=True)
    await fake.wait_for(lambda: fake.resume_count == 1, what="hikari to RESUME")
    assert fake.identify_count == 1
    assert fake.bot_voice_channel(GUILD) == VOICE_CHANNEL
    state = bot.cache.get_voice_state(GUILD, BOT_ID)
    assert state is not None
    assert state.channel_id == VOICE_CHANNEL
    assert not dropped
    reply = await (await fake.invoke("echo", {"text": "still here"})).reply()
    assert reply.content == "still here"


# ---------------------------------------------------------------------------------- command sync


async def test_a_failed_command_sync_raises_and_does_not_count(
    fake: FakeDiscord, errors: list[str]
) -> None:
    # No hikari retries, so the first 500 reaches lightbulb (hikari's default is 3 retries).
    h = await start_bot(fake, errors, sync=False, max_retries=0)
    try:
        fake.fail_command_sync(1)
        with pytest.raises(hikari.InternalServerError) as failed:
            await h.client.start()
        assert failed.value.status == 500
        route = f"/api/v10/applications/{BOT_ID}/commands"
        assert fake.rest_errors == [f"GET {route} -> 500 0 500: Internal Server Error"]
        with pytest.raises(TimeoutError, match=f"last attempt failed: GET {route} -> 500"):
            await fake.wait_until_ready(timeout=0.3)
        assert not fake.registered_commands
        await h.client.start()
        await fake.wait_until_ready()
        assert "echo" in fake.registered_commands
        reply = await (await fake.invoke("echo", {"text": "synced"})).reply()
        assert reply.content == "synced"
    finally:
        await h.bot.close()
    fake.rest_errors.clear()


async def test_hikari_retries_a_rate_limited_or_unavailable_sync_by_itself(h: Harness) -> None:
    fake, client = h.fake, h.client
    route = f"/api/v10/applications/{BOT_ID}/commands"
    fake.fail_command_sync(2, 429, retry_after=0.05)
    await client.sync_application_commands()
    assert fake.rest_errors == [f"GET {route} -> 429 0 You are being rate limited."] * 2
    await fake.wait_until_ready()
    fake.rest_errors.clear()
    fake.fail_command_sync(1, 503)
    await client.sync_application_commands()  # after hikari's first back-off, 1-2 s
    assert fake.rest_errors == [f"GET {route} -> 503 0 503: Service Unavailable"]
    await fake.wait_until_ready()
    with pytest.raises(ValueError, match="status"):
        fake.fail_command_sync(1, 404)
    fake.rest_errors.clear()


# ---------------------------------------------------------------------------------- raw protocol


async def _raw_connect(
    session: aiohttp.ClientSession, fake: FakeDiscord, query: str
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json{query}")


async def _raw_identify(
    session: aiohttp.ClientSession, fake: FakeDiscord
) -> aiohttp.ClientWebSocketResponse:
    """A bare client that identified (GUILDS | GUILD_VOICE_STATES) and got its READY."""
    ws = await _raw_connect(session, fake, "")
    await ws.receive()  # HELLO
    identify = {"token": fake.token, "intents": 1 | 128, "properties": {}}
    await ws.send_str(json.dumps({"op": 2, "d": identify}))
    ready = json.loads((await ws.receive()).data)
    assert ready["t"] == "READY"
    return ws


async def _close_frame(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Read past any dispatches to the server's close frame."""
    while True:
        msg = await ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return msg


async def test_uncompressed_text_frames_and_rate_limit(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _raw_connect(session, fake, "")
        hello = await ws.receive()
        assert hello.type == aiohttp.WSMsgType.TEXT
        assert json.loads(hello.data) == {
            "op": 10,
            "d": {"heartbeat_interval": 41250, "_trace": ["fake"]},
            "s": None,
            "t": None,
        }
        for _ in range(121):
            await ws.send_str(json.dumps({"op": 1, "d": None}))
        codes = []
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                assert json.loads(msg.data)["op"] == 11
        codes.append(ws.close_code)
        assert codes == [4008]
    assert fake.rate_limited == 1


async def test_zlib_stream_and_identify_checks(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _raw_connect(session, fake, "&compress=zlib-stream")
        inflate = zlib.decompressobj()
        hello = await ws.receive()
        assert hello.type == aiohttp.WSMsgType.BINARY
        assert hello.data.endswith(b"\x00\x00\xff\xff")
        assert json.loads(inflate.decompress(hello.data))["op"] == 10
        await ws.send_bytes(json.dumps({"op": 2, "d": {"token": "wrong"}}).encode())
        await ws.receive()
        assert ws.close_code == 4004

        ws = await _raw_connect(session, fake, "")
        await ws.receive()
        await ws.send_str(json.dumps({"op": 4, "d": {"guild_id": str(GUILD)}}))
        await ws.receive()
        assert ws.close_code == 4003

        ws = await _raw_connect(session, fake, "&compress=zstd-stream")
        await ws.receive()
        assert ws.close_code == 4002
    assert fake.gateway_errors == ["compress=zstd-stream is not implemented by the fake"]


async def test_op_7_frame_and_an_abnormal_cut_without_a_close_frame(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _raw_identify(session, fake)
        await fake.request_reconnect()
        while (payload := json.loads((await ws.receive()).data))["op"] != 7:
            assert payload["op"] == 0  # the GUILD_CREATE before it
        assert payload == {"op": 7, "d": None, "s": None, "t": None}
        await fake.drop_gateway(abnormal=True)
        msg = await _close_frame(ws)
        assert msg.type == aiohttp.WSMsgType.CLOSED  # the TCP connection ended, no CLOSE frame
        assert ws.close_code == 1006
    assert fake._session is not None
    assert fake._session.live  # resumable


async def test_embeds_over_discords_limits_are_an_invalid_form_body(fake: FakeDiscord) -> None:
    url = f"{fake.rest_url}/channels/{TEXT_CHANNEL}/messages"
    auth = {"Authorization": f"Bot {fake.token}"}
    ok = {
        "title": "t" * 256,
        "description": "d" * 4096,
        "url": "https://example.com/",
        "fields": [{"name": "n" * 256, "value": "v" * 1024}],
        "thumbnail": {"url": "https://example.com/a.jpg"},
    }
    too_long = {"title": "t" * 257, "fields": [{"name": "n", "value": "v" * 1025}]}
    empty_and_file = {"fields": [{"name": "n", "value": ""}], "thumbnail": {"url": "file:///x"}}
    too_big = {"description": "d" * 4096, "fields": [{"name": "n", "value": "v" * 1000}] * 2}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(url, json={"embeds": [ok]}) as resp:
            assert resp.status == 200
        async with session.post(url, json={"embeds": [ok, too_long]}) as resp:
            assert resp.status == 400
            body = await resp.json()
        assert (body["code"], body["message"]) == (50035, "Invalid Form Body")
        (problems,) = body["errors"]["embeds"].values()
        assert list(body["errors"]["embeds"]) == ["1"]
        assert problems["title"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        value = problems["fields"]["0"]["value"]["_errors"][0]
        assert value == {
            "code": "BASE_TYPE_MAX_LENGTH",
            "message": "Must be 1024 or fewer in length.",
        }
        async with session.post(url, json={"embeds": [empty_and_file]}) as resp:
            errors = (await resp.json())["errors"]["embeds"]["0"]
        assert errors["fields"]["0"]["value"]["_errors"][0]["code"] == "BASE_TYPE_REQUIRED"
        assert errors["thumbnail"]["url"]["_errors"][0]["code"] == "URL_TYPE_INVALID_SCHEME"
        async with session.post(url, json={"embeds": [too_big]}) as resp:
            errors = (await resp.json())["errors"]["embeds"]["0"]
        assert errors["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    assert len(fake.messages) == 1  # only the embed within every limit was posted
    fake.rest_errors.clear()


async def test_rest_auth_errors_and_unknown_routes(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.rest_url}/users/@me") as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        auth = {"Authorization": f"Bot {fake.token}"}
        async with session.get(f"{fake.rest_url}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
        async with session.post(f"{fake.rest_url}/webhooks/{BOT_ID}/nope", json={}) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 10015
        async with session.get(f"{fake.rest_url}/guilds/{GUILD}/roles", headers=auth) as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
    assert fake.unhandled == [f"GET /api/v10/guilds/{GUILD}/roles"]
    fake.unhandled.clear()


# ------------------------------------------------------------------ components, autocomplete


def _controls(bot: hikari.GatewayBot, *, disabled: str = "") -> hikari.api.MessageActionRowBuilder:
    row = bot.rest.build_message_action_row()
    for custom_id in ("play", "skip", "stop"):
        row.add_interactive_button(
            hikari.ButtonStyle.PRIMARY,
            custom_id,
            label=custom_id,
            is_disabled=custom_id == disabled,
        )
    return row


def _answer_components(h: Harness, presses: list[tuple[str, int, int]]) -> None:
    """A raw listener, as a bot's persistent buttons are handled: the custom id says it all."""

    async def on_interaction(event: hikari.InteractionCreateEvent) -> None:
        interaction = event.interaction
        if not isinstance(interaction, hikari.ComponentInteraction):
            return
        presses.append((interaction.custom_id, interaction.user.id, interaction.message.id))
        if interaction.custom_id == "skip":  # acknowledge now, edit the message afterwards
            await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_UPDATE)
            await interaction.edit_initial_response(f"skipped by {interaction.user.id}")
        elif interaction.custom_id == "pick":
            await interaction.create_initial_response(
                hikari.ResponseType.MESSAGE_CREATE,
                f"you picked {interaction.values}",
                flags=hikari.MessageFlag.EPHEMERAL,
            )
        else:
            await interaction.create_initial_response(
                hikari.ResponseType.MESSAGE_UPDATE, f"{interaction.custom_id} pressed"
            )

    h.bot.subscribe(hikari.InteractionCreateEvent, on_interaction)


async def test_buttons_on_a_channel_message_update_it_in_place(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    presses: list[tuple[str, int, int]] = []
    _answer_components(h, presses)
    sent = await bot.rest.create_message(TEXT_CHANNEL, "controller", component=_controls(bot))
    assert [c["custom_id"] for c in fake.messages[-1].components[0]["components"]] == [
        "play",
        "skip",
        "stop",
    ]

    reply = await (await fake.press(int(sent.id), "play")).reply()
    assert reply.content == "play pressed"
    assert presses == [("play", ALICE, int(sent.id))]
    assert fake.channel_messages[int(sent.id)]["content"] == "play pressed"

    # Deferred update (type 6), then an edit of "@original": the button's own message.
    reply = await (await fake.press(int(sent.id), "skip")).reply()
    assert reply.content == f"skipped by {ALICE}"
    assert fake.channel_messages[int(sent.id)]["content"] == f"skipped by {ALICE}"
    assert [edit["content"] for _, edit in fake.message_edits] == [
        "play pressed",
        f"skipped by {ALICE}",
    ]


async def test_a_disabled_or_deleted_button_cannot_be_pressed(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    sent = await bot.rest.create_message(
        TEXT_CHANNEL, "c", component=_controls(bot, disabled="stop")
    )
    with pytest.raises(AssertionError, match="no usable component"):
        await fake.press(int(sent.id), "stop")
    with pytest.raises(AssertionError, match="no usable component"):
        await fake.press(int(sent.id), "rewind")
    await bot.rest.edit_message(TEXT_CHANNEL, sent.id, "edited")
    assert fake.channel_messages[int(sent.id)]["content"] == "edited"
    await bot.rest.delete_message(TEXT_CHANNEL, sent.id)
    assert fake.deleted_messages == [int(sent.id)]
    with pytest.raises(AssertionError, match="sent no message"):
        await fake.press(int(sent.id), "play")
    with pytest.raises(hikari.NotFoundError):
        await bot.rest.edit_message(TEXT_CHANNEL, sent.id, "gone")


async def test_a_select_menu_sends_the_picked_values(h: Harness) -> None:
    fake, bot = h.fake, h.bot
    presses: list[tuple[str, int, int]] = []
    _answer_components(h, presses)
    row = bot.rest.build_message_action_row()
    menu = row.add_text_menu("pick", placeholder="Pick a song", min_values=1, max_values=1)
    for value in ("a", "b", "c"):
        menu.add_option(f"Song {value}", value)
    sent = await bot.rest.create_message(TEXT_CHANNEL, "search results", component=row)
    with pytest.raises(AssertionError, match="cannot be picked"):
        await fake.press(int(sent.id), "pick", values=["z"])
    reply = await (await fake.press(int(sent.id), "pick", values=["b"])).reply()
    assert reply.ephemeral
    assert reply.content == "you picked ['b']"


async def test_autocomplete_answers_choices_within_discords_limits(h: Harness) -> None:
    fake = h.fake
    choices = await (await fake.autocomplete("pick", "song", "rick")).choices()
    assert choices == [{"name": f"rick song {i}", "value": f"id{i}"} for i in range(3)]
    # 30 choices are refused, as Discord refuses more than 25: nothing is shown.
    interaction = await fake.autocomplete("pick", "song", "many")
    await fake.wait_for(lambda: "autocomplete refused" in h.seen, what="the refusal")
    assert h.seen["autocomplete refused"] == 50035
    assert not interaction.acknowledged
    with pytest.raises(AssertionError, match="no autocomplete option"):
        await fake.autocomplete("echo", "text", "x")
    # The command itself still runs with the value picked.
    reply = await (await fake.invoke("pick", {"song": "id1"})).reply()
    assert reply.content == "picked id1"


async def test_messages_over_discords_limits_are_refused(h: Harness) -> None:
    bot = h.bot
    crowded = bot.rest.build_message_action_row()
    for i in range(6):
        crowded.add_interactive_button(hikari.ButtonStyle.SECONDARY, f"b{i}", label=str(i))
    with pytest.raises(hikari.BadRequestError) as refused:
        await bot.rest.create_message(TEXT_CHANNEL, "too many", component=crowded)
    assert refused.value.code == 50035
    with pytest.raises(hikari.BadRequestError):
        await bot.rest.create_message(TEXT_CHANNEL, embed=hikari.Embed(title="x" * 257))
    long_field = hikari.Embed(title="ok").add_field("name", "v" * 1025)
    with pytest.raises(hikari.BadRequestError):
        await bot.rest.create_message(TEXT_CHANNEL, embed=long_field)
    assert not h.fake.channel_messages


async def test_update_message_edits_the_command_reply_a_button_is_on(h: Harness) -> None:
    """Type 7 on a button of a command's reply (not a channel message): Discord replaces that
    message's embeds and components in place, and refuses an update over the embed limits
    (the message stays as it was)."""
    fake, bot = h.fake, h.bot

    async def on_interaction(event: hikari.InteractionCreateEvent) -> None:
        interaction = event.interaction
        if not isinstance(interaction, hikari.ComponentInteraction):
            return
        description = "x" * 4097 if interaction.custom_id == "page:huge" else "second"
        try:
            await interaction.create_initial_response(
                hikari.ResponseType.MESSAGE_UPDATE,
                embed=hikari.Embed(title="Page 2", description=description),
                components=[],
            )
        except hikari.BadRequestError as exc:
            h.seen["update refused"] = exc.code

    bot.subscribe(hikari.InteractionCreateEvent, on_interaction)
    asked = await fake.invoke("pager")
    reply = await asked.reply()
    assert reply.embeds[0]["title"] == "Page 1"
    assert asked.original is not None
    message_id = int(asked.original["id"])

    huge = await fake.press(message_id, "page:huge")
    await fake.wait_for(lambda: "update refused" in h.seen, what="the refusal")
    assert h.seen["update refused"] == 50035
    assert not huge.acknowledged
    assert fake.message(message_id)["embeds"][0]["title"] == "Page 1"
    assert fake.message_edits == []

    paged = await (await fake.press(message_id, "page:2")).reply()
    assert paged.embeds[0]["description"] == "second"
    assert fake.message(message_id)["embeds"][0]["title"] == "Page 2"
    assert fake.message(message_id)["components"] == []
    assert [edited for edited, _ in fake.message_edits] == [message_id]
    with pytest.raises(AssertionError, match="no usable component"):
        await fake.press(message_id, "page:2")  # the buttons went with the update
