"""Many guilds playing at once, observed through the fake peers only.

Used by the restart tests and by ``bench/restart.py``: each guild plays its own track with a
second one queued behind it, and every check reads what the peers see (which voice channel
the bot is in, what the Lavalink player plays, from where, with which voice credentials).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from peers.catalogue import fleet_track
from peers.fake_discord import FakeDiscord, Guild, sharded_guild
from peers.fake_lavalink import Catalogue, FakeLavalink
from peers.process import BotProcess
from peers.tracks import TrackInfo

__all__ = [
    "RESUME_TIMEOUT_S",
    "Fleet",
    "GuildPlan",
    "fleet_catalogue",
    "fleet_environment",
    "plan_fleet",
    "plays_in_channel",
]


@dataclasses.dataclass(frozen=True)
class GuildPlan:
    """One guild of the fleet and what it plays."""

    guild: Guild
    current: TrackInfo
    queued: TrackInfo

    @property
    def id(self) -> int:
        return self.guild.id

    @property
    def voice_channel(self) -> int:
        return self.guild.voice_channel_ids[0]

    @property
    def text_channel(self) -> int:
        return self.guild.text_channel_ids[0]

    @property
    def user(self) -> int:
        return self.guild.members[0]


def plays_in_channel(discord: FakeDiscord, lavalink: FakeLavalink, plan: GuildPlan) -> bool:
    """Whether the guild's music plays: the bot in its channel, the node running a track."""
    player = lavalink.player(plan.id)
    return (
        discord.bot_voice_channel(plan.id) == plan.voice_channel
        and player is not None
        and player.running
        and player.track is not None
    )


def plan_fleet(
    count: int, listeners: list[int] | None = None, *, shards: int = 1
) -> list[GuildPlan]:
    """``count`` guilds; guild ``i`` has ``listeners[i]`` people in voice (default 1 + i % 4).

    With ``shards``, guild ``i`` sits on shard ``(i + i // 4) % shards``: the shards take turns,
    so each holds as many guilds, and the turn shifts every four guilds, so that the default
    listener counts do not follow the shard. Discord's ids spread guilds evenly over shards;
    the numbered ids alone would put nearly all on a few.
    """
    counts = listeners or [1 + i % 4 for i in range(count)]
    return [
        GuildPlan(
            sharded_guild(i + 1, (i + i // 4) % shards, shards, counts[i]),
            fleet_track("first", i),
            fleet_track("second", i),
        )
        for i in range(count)
    ]


def fleet_catalogue(plans: list[GuildPlan], catalogue: Catalogue | None = None) -> Catalogue:
    cat = catalogue or Catalogue()
    for plan in plans:
        cat.add_track(plan.current)
        cat.add_track(plan.queued)
    return cat


RESUME_TIMEOUT_S = 60
"""The bot's ``LAVALINK_RESUME_TIMEOUT`` in a fleet: how long a node keeps a dead bot's
players, so how far a rebuild follows their anchors past the bot's last sign of life."""


def fleet_environment(discord: FakeDiscord, lavalink: FakeLavalink, db: Path) -> dict[str, str]:
    """``python -m bot``'s environment for a fleet: leaves voice 1 s after losing Lavalink."""
    return {
        "DISCORD_TOKEN": discord.token,
        "DISCORD_API_URL": discord.rest_url,
        "LAVALINK_URL": lavalink.url,
        "LAVALINK_PASSWORD": lavalink.password,
        "LAVALINK_NODE_LOSS_GRACE": "1",
        "LAVALINK_RESUME_TIMEOUT": str(RESUME_TIMEOUT_S),
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "GUILD_IDS": "",
        "LOG_LEVEL": "INFO",
    }


@dataclasses.dataclass
class Fleet:
    discord: FakeDiscord
    lavalink: FakeLavalink
    plans: list[GuildPlan]

    async def start_playing(self, bot: BotProcess, warm_up_ms: int) -> None:
        """Start ``bot``, wait until it is ready, play everywhere for ``warm_up_ms``."""
        await bot.start()
        await self.discord.wait_until_ready(timeout=60)
        await self.lavalink.wait_for(
            lambda: any(not s.paused for s in self.lavalink.sessions.values()), timeout=60
        )
        await self.play_everywhere()
        await self.wait_positions_above(warm_up_ms, timeout=60)

    async def play_everywhere(self, concurrency: int = 8) -> None:
        """/play the current track, then the queued one, in every guild."""
        gate = asyncio.Semaphore(concurrency)

        async def play(plan: GuildPlan) -> None:
            async with gate:
                for track, expect in ((plan.current, "Now playing"), (plan.queued, "position")):
                    interaction = await self.discord.invoke(
                        "play",
                        {"query": track.uri},
                        guild_id=plan.id,
                        user_id=plan.user,
                        channel_id=plan.text_channel,
                    )
                    reply = await interaction.reply(timeout=30)
                    assert expect in reply.text, reply.text

        await asyncio.gather(*(play(plan) for plan in self.plans))

    def positions(self) -> dict[int, int]:
        """Each guild's Lavalink position now (ms); -1 for a guild with no player."""
        return {
            plan.id: p.position if (p := self.lavalink.player(plan.id)) is not None else -1
            for plan in self.plans
        }

    def voice_sessions(self) -> dict[int, str | None]:
        """The bot's voice session per guild now (see ``wait_all_back``'s ``not_before``)."""
        return {plan.id: self.discord.bot_voice_session(plan.id) for plan in self.plans}

    def playing_again(
        self, plan: GuildPlan, stale: str | None = None, *, own_track: bool = True
    ) -> bool:
        """The bot is in the guild's channel and its player plays the guild's track there
        (any track if not ``own_track``: a queue seeded elsewhere, tracks ending meanwhile),
        over the voice credentials Discord handed out for the bot's current voice session
        (which must not be ``stale``)."""
        if self.discord.bot_voice_channel(plan.id) != plan.voice_channel:
            return False
        if stale is not None and self.discord.bot_voice_session(plan.id) == stale:
            return False
        player = self.lavalink.player(plan.id)
        return (
            player is not None
            and player.track is not None
            and (not own_track or player.track.title == plan.current.title)
            and player.running
            and player.voice is not None
            and player.voice["channelId"] == str(plan.voice_channel)
            and player.voice["sessionId"] == self.discord.bot_voice_session(plan.id)
        )

    async def wait_all_back(
        self,
        timeout: float,
        not_before: dict[int, str | None] | None = None,
        *,
        own_track: bool = True,
    ) -> dict[int, tuple[float, int]]:
        """Until every guild plays again; each guild's (monotonic time back, position then).

        ``not_before`` (from :meth:`voice_sessions` before a restart) makes a guild count only
        once it is on a voice session newer than the one it had then; ``own_track`` as for
        :meth:`playing_again`.
        """
        stale = not_before or {}
        back: dict[int, tuple[float, int]] = {}
        deadline = time.monotonic() + timeout
        while len(back) < len(self.plans):
            for plan in self.plans:
                if plan.id not in back and self.playing_again(
                    plan, stale.get(plan.id), own_track=own_track
                ):
                    player = self.lavalink.player(plan.id)
                    assert player is not None
                    back[plan.id] = (time.monotonic(), player.position)
            if len(back) == len(self.plans):
                break
            if time.monotonic() > deadline:
                missing = [p.id for p in self.plans if p.id not in back]
                raise AssertionError(f"{len(missing)} guild(s) not playing again: {missing[:5]}")
            await asyncio.sleep(0.01)
        return back

    async def wait_positions_above(self, ms: int, timeout: float = 20.0) -> None:
        await self.lavalink.wait_for(
            lambda: min(self.positions().values()) > ms, timeout=timeout, what=f"{ms} ms played"
        )

    async def queue_texts(self) -> dict[int, str]:
        """What /queue shows in each guild."""
        texts = {}
        for plan in self.plans:
            interaction = await self.discord.invoke(
                "queue", guild_id=plan.id, user_id=plan.user, channel_id=plan.text_channel
            )
            texts[plan.id] = (await interaction.reply()).text
        return texts
