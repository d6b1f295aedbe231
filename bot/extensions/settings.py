"""``/settings``: a server's own rules for the music, for members with Manage Server.

Registered with ``default_member_permissions`` Manage Server, so Discord shows the commands to
no one else; the service checks again (:mod:`bot.services.settings`), from the member's
permissions in the interaction (Administrator implies Manage Server). ``show`` answers
privately; a change answers in the channel, so the server sees what its managers chose.
"""

from __future__ import annotations

from collections.abc import Awaitable

import hikari
import lightbulb

from bot.metrics import Metrics
from bot.services import QueueService
from bot.services.admission import MAX_QUEUE_LENGTH
from bot.services.views import SettingsView

from .replies import ACCENT, GUILD_ONLY, guild_of, reply_with, volume_option
from .settings_text import server_settings, setting_changed

__all__ = ["loader", "may_manage", "render_settings"]

loader = lightbulb.Loader()

group = lightbulb.Group(
    "settings",
    "This server's music settings (Manage Server)",
    contexts=GUILD_ONLY,
    default_member_permissions=hikari.Permissions.MANAGE_GUILD,
)
dj = group.subgroup("dj", "Who may control the music freely")
announce = group.subgroup("announce", "Where I post what plays and what went wrong")
loader.command(group)

_ON_OFF = [lightbulb.Choice("on", "on"), lightbulb.Choice("off", "off")]


def may_manage(ctx: lightbulb.Context) -> bool:
    """Whether the caller has Manage Server here (Administrator implies it)."""
    member = ctx.member
    if member is None:
        return False
    permissions = member.permissions
    return bool(permissions & (hikari.Permissions.MANAGE_GUILD | hikari.Permissions.ADMINISTRATOR))


async def _change(
    ctx: lightbulb.Context, metrics: Metrics, work: Awaitable[SettingsView], name: str
) -> None:
    await reply_with(ctx, metrics, work, lambda view: setting_changed(view, name))


def _or_none(text: str, word: str) -> str | None:
    """``None`` when the user typed ``word`` (off, default), else what they typed."""
    return None if text.strip().lower() == word else text


@group.register
class Show(lightbulb.SlashCommand, name="show", description="Show every setting"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = _now(service.settings.show(guild_id, may_manage(ctx)))
            await reply_with(ctx, metrics, work, render_settings, ephemeral=True)


async def _now(view: SettingsView) -> SettingsView:
    return view


@dj.register
class DjSet(lightbulb.SlashCommand, name="set", description="Members with this role are DJs"):
    role = lightbulb.role("role", "The DJ role")

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_dj_role(guild_id, may_manage(ctx), self.role.id)
            await _change(ctx, metrics, work, "DJ role")


@dj.register
class DjOff(lightbulb.SlashCommand, name="off", description="No DJ role: everyone may"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_dj_role(guild_id, may_manage(ctx), None)
            await _change(ctx, metrics, work, "DJ role")


@group.register
class Volume(lightbulb.SlashCommand, name="volume", description="The volume a new queue starts at"):
    level = volume_option()

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_default_volume(guild_id, may_manage(ctx), self.level)
            await _change(ctx, metrics, work, "Default volume")


@announce.register
class AnnounceChannel(lightbulb.SlashCommand, name="channel", description="Post in this channel"):
    channel = lightbulb.channel(
        "channel",
        "A text channel",
        channel_types=[hikari.ChannelType.GUILD_TEXT, hikari.ChannelType.GUILD_NEWS],
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_announce(
                guild_id, may_manage(ctx), enabled=True, channel_id=self.channel.id
            )
            await _change(ctx, metrics, work, "Announcements")


@announce.register
class AnnounceHere(
    lightbulb.SlashCommand, name="here", description="Post where the music was asked for"
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_announce(guild_id, may_manage(ctx), enabled=True)
            await _change(ctx, metrics, work, "Announcements")


@announce.register
class AnnounceOff(lightbulb.SlashCommand, name="off", description="Post nothing on my own"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_announce(guild_id, may_manage(ctx), enabled=False)
            await _change(ctx, metrics, work, "Announcements")


@group.register
class AlwaysOn(
    lightbulb.SlashCommand,
    name="24-7",
    description="Stay in voice when the channel empties or the queue ends",
):
    switch = lightbulb.string("switch", "on or off", choices=_ON_OFF)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            on = self.switch == "on"
            work = service.settings.set_always_on(guild_id, may_manage(ctx), on)
            await _change(ctx, metrics, work, "24/7")


@group.register
class IdleTimeout(
    lightbulb.SlashCommand,
    name="idle-timeout",
    description="How long I wait alone or after the queue ended before leaving",
):
    time = lightbulb.string(
        "time", "90, 1:30 or 1:00:00 (0: leave at once); default: the bot's own", max_length=32
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            text = _or_none(self.time, "default")
            work = service.settings.set_idle_timeout(guild_id, may_manage(ctx), text)
            await _change(ctx, metrics, work, "Idle timeout")


@group.register
class QueueLimit(lightbulb.SlashCommand, name="queue-limit", description="The most songs queued"):
    length = lightbulb.integer(
        "length", f"1 to {MAX_QUEUE_LENGTH} songs", min_value=1, max_value=MAX_QUEUE_LENGTH
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_queue_limit(guild_id, may_manage(ctx), self.length)
            await _change(ctx, metrics, work, "Queue limit")


@group.register
class TrackLimit(
    lightbulb.SlashCommand, name="track-limit", description="The longest song that may be queued"
):
    length = lightbulb.string(
        "length", "90, 4:30 or 1:00:00 (at least 10 s), or off", max_length=32
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            text = _or_none(self.length, "off")
            work = service.settings.set_track_limit(guild_id, may_manage(ctx), text)
            await _change(ctx, metrics, work, "Song length limit")


@group.register
class UserShare(
    lightbulb.SlashCommand,
    name="user-share",
    description="The most of the queue one member's songs may fill",
):
    percent = lightbulb.integer(
        "percent", "1 to 100 % of the queue limit; leave out for no limit", min_value=1,
        max_value=100, default=None,
    )  # fmt: skip

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_user_share(guild_id, may_manage(ctx), self.percent)
            await _change(ctx, metrics, work, "Share per member")


@group.register
class VoteSkip(
    lightbulb.SlashCommand, name="vote-skip", description="The share of listeners a vote skip needs"
):
    percent = lightbulb.integer(
        "percent", "Passes with votes from more than this % of the listeners", min_value=0,
        max_value=100,
    )  # fmt: skip

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.settings.set_vote_skip(guild_id, may_manage(ctx), self.percent)
            await _change(ctx, metrics, work, "Vote skip")


@group.register
class FairQueue(
    lightbulb.SlashCommand,
    name="fair-queue",
    description="Take songs in turn by who asked for them",
):
    switch = lightbulb.string("switch", "on or off", choices=_ON_OFF)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            on = self.switch == "on"
            work = service.settings.set_fair_queue(guild_id, may_manage(ctx), on)
            await _change(ctx, metrics, work, "Fair queue")


def render_settings(view: SettingsView) -> hikari.Embed:
    """Every setting in one embed, one field each."""
    embed = hikari.Embed(title="Settings", color=ACCENT)
    for name, value in server_settings(view).items():
        embed.add_field(name, value)
    return embed
