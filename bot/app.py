"""The composition root: builds the bot from :class:`Settings` and runs it.

Start order matters: the database is migrated and loaded before anything can send an event,
the Lavalink client connects only once the gateway is up (it needs the bot's user id and must
be able to send op 4), and commands are synced last so no interaction arrives half-wired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
import hikari
import lightbulb

from bot import __version__, collector, lavalink
from bot.config import Settings
from bot.discord_view import HikariDiscordView
from bot.doctor import Doctor
from bot.gateway import gateway_bot
from bot.health import HealthServer
from bot.lavalink import hikari_glue
from bot.metrics import Metrics
from bot.services import QueueService, Suggester, in_turn, own_sessions, session_keeper
from bot.services.reconciler import PASS_INTERVAL
from bot.shards import shard_of
from bot.storage import Repository, StorageError

__all__ = ["EXTENSIONS", "INVITE_PERMISSIONS", "MusicBot", "StartupError", "invite_url", "run"]

_log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.extensions.music",
    "bot.extensions.search",
    "bot.extensions.queue_edits",
    "bot.extensions.controls",
    "bot.extensions.history",
    "bot.extensions.settings",
    "bot.extensions.controller",
    "bot.extensions.doctor",
)
SHUTDOWN_TIMEOUT = 8.0
GUILDS_TIMEOUT = 10.0
"""How long start-up waits for READY's guilds to arrive before restoring playback anyway."""
COMMAND_SYNC_FIRST_RETRY = 2.0
COMMAND_SYNC_MAX_RETRY = 60.0
"""Seconds between attempts to register the slash commands: doubling up to this."""
INVITE_PERMISSIONS = 3230720
"""View Channel, Send Messages, Embed Links, Read Message History, Connect, Speak."""


def invite_url(application_id: int) -> str:
    """The link that adds the bot to a server, with its commands and the permissions it uses."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )


class StartupError(Exception):
    """The bot cannot start; the message is one line for the operator."""


def _node_configs(settings: Settings) -> list[lavalink.NodeConfig]:
    return [
        lavalink.NodeConfig(
            n.name,
            n.url,
            n.password,
            request_timeout=settings.lavalink_request_timeout,
            voice_timeout=2 * settings.lavalink_request_timeout,
        )
        for n in settings.lavalink_nodes
    ]


class MusicBot:
    """Everything the bot is made of, wired together."""

    def __init__(
        self,
        settings: Settings,
        *,
        reconcile_interval: float = PASS_INTERVAL,
        pacing: lavalink.Pacing | None = None,
    ) -> None:
        """``reconcile_interval`` and ``pacing`` are production values unless a test
        shortens them."""
        self.settings = settings
        self._reconcile_interval = reconcile_interval
        self.bot = gateway_bot(settings)
        self._nodes = _node_configs(settings)
        self.lavalink = lavalink.LavalinkClient(
            self._nodes,
            hikari_glue.HikariVoiceGateway(self.bot),
            client_name=f"musicbot/{__version__}",
            resume_timeout=settings.lavalink_resume_timeout,
            node_loss_grace=settings.lavalink_node_loss_grace,
            pacing=pacing,
        )
        hikari_glue.attach(self.bot, self.lavalink)
        self.discord_view = HikariDiscordView(self.bot)
        # Before lightbulb's listener: the caller's roles are known before any command runs.
        self.bot.subscribe(hikari.InteractionCreateEvent, self._on_interaction)
        self.commands = lightbulb.client_from_app(
            self.bot, default_enabled_guilds=settings.guild_ids
        )
        self.repository: Repository | None = None
        self.health: HealthServer | None = None
        self.metrics = Metrics()
        self.service: QueueService | None = None
        self._session_ids: dict[str, str] = {}
        self._pending_guilds: set[int] = set()
        self._guilds_arrived = asyncio.Event()
        self._starting: asyncio.Task[object] | None = None
        # For the start-up summary: who Discord says the bot is, in how many servers (per
        # shard), and what each Lavalink node said it is when last described.
        self._me: hikari.OwnUser | None = None
        self._application_id: int | None = None
        self._guild_counts: dict[int, int] = {}
        self._described_nodes: dict[str, lavalink.NodeInfo] = {}
        self._commands_synced = False
        self._ready_said = False
        self.lavalink.on_node_connected(self._on_lavalink_connected)
        self.bot.subscribe(hikari.ShardReadyEvent, self._on_shard_ready)
        self.bot.subscribe(hikari.ShardResumedEvent, self._on_shard_resumed)
        self.bot.subscribe(hikari.GuildAvailableEvent, self._on_guild_available)
        self.bot.subscribe(hikari.StartedEvent, self._on_started)
        self.bot.subscribe(hikari.GuildLeaveEvent, self._on_guild_leave)
        self.bot.subscribe(hikari.GuildChannelDeleteEvent, self._on_channel_delete)
        self.bot.subscribe(hikari.VoiceStateUpdateEvent, self._on_member_voice)

    async def start(self) -> None:
        """Open storage, load state, wire commands and connect to Discord."""
        try:
            self.repository = await Repository.open(self.settings.database_url)
        except StorageError as exc:
            # The message names the database (never its password) and the likely fix.
            raise StartupError(f"DATABASE_URL: {exc}") from None
        discord_view = self.discord_view
        self.service = QueueService(
            self.repository,
            self.lavalink,
            discord_view,
            reconcile_interval=self._reconcile_interval,
            idle_timeout=self.settings.idle_timeout,
            shards=self.settings.shards,
        )
        # The session id is stored before the service restores playback for the same event.
        self.lavalink.set_listener(
            in_turn(
                session_keeper(self.repository, self.settings.shards), self.service.handle_event
            )
        )
        self.lavalink.on_position(self.service.position_reported)
        doctor = Doctor(
            nodes=self._nodes,
            client=self.lavalink,
            repository=self.repository,
            service=self.service,
            discord=discord_view,
            secrets=self.settings.secrets,
        )
        await self._load_state(self.service, self.repository)
        self.repository.write_observer = self.metrics.write_done
        self.metrics.watch(self.service.stats, self.lavalink.node_statuses)
        self.metrics.start_lag_probe()
        await self._start_health(self.repository)
        registry = self.commands.di.registry_for(lightbulb.di.Contexts.DEFAULT)
        registry.register_value(QueueService, self.service)
        registry.register_value(Suggester, Suggester(self.lavalink))
        registry.register_value(Metrics, self.metrics)
        registry.register_value(Doctor, doctor)
        await self.commands.load_extensions(*EXTENSIONS)
        # load_extensions logs and carries on when an extension fails to import.
        if not self.commands.registered_commands:
            raise StartupError("no slash commands were loaded; see the log above")
        try:
            shards = self.settings.shards
            await self.bot.start(
                check_for_updates=False,
                shard_count=self.settings.shard_count,
                shard_ids=None if shards is None else sorted(shards.ids),
            )
        except hikari.UnauthorizedError:
            raise StartupError("Discord rejected DISCORD_TOKEN") from None
        except (hikari.HikariError, OSError) as exc:
            raise StartupError(f"cannot connect to Discord: {exc}") from None

    async def _load_state(self, service: QueueService, repository: Repository) -> None:
        """The stored guilds of this process, and its Lavalink session ids to resume."""
        try:
            await service.load()
            self._session_ids = own_sessions(
                await repository.session_ids(),
                [node.name for node in self._nodes],
                self.settings.shards,
            )
        except StorageError as exc:
            raise StartupError(f"DATABASE_URL: {repository.description}: {exc}") from None

    async def _start_health(self, repository: Repository) -> None:
        """Serve /health and /metrics on HEALTH_PORT (if set)."""
        if self.settings.health_port is None:
            return
        self.health = HealthServer(
            self.settings.health_host,
            self.settings.health_port,
            {
                "gateway": self._gateway_health,
                "lavalink": self._lavalink_health,
                "database": repository.check_writable,
            },
            metrics=self.metrics.render,
        )
        try:
            await self.health.start()
        except OSError as exc:
            raise StartupError(
                f"HEALTH_PORT: cannot listen on {self.settings.health_host}:"
                f"{self.settings.health_port} ({exc.strerror or exc})"
            ) from None

    async def _on_shard_ready(self, event: hikari.ShardReadyEvent) -> None:
        """READY lists every guild the bot is in (on this shard); drop the ones it left."""
        listed = {int(guild_id) for guild_id in event.unavailable_guilds}
        self._me, self._application_id = event.my_user, int(event.application_id)
        self._guild_counts[event.shard.id] = len(listed)
        available = set(self.bot.cache.get_available_guilds_view())
        self._pending_guilds = listed - available
        if not self._pending_guilds:
            self._guilds_arrived.set()
        if self.service is None:
            return
        shard, count = event.shard.id, event.shard.shard_count
        mine = {g for g in self.service.guild_ids() if shard_of(g, count) == shard}
        # A new session starts in no voice channel (Discord ended the old session's voice
        # connections and says nothing of it): what the client holds for them is dead.
        self.lavalink.voice_session_ended(mine)
        for guild_id in mine - listed:
            # Removed while the bot was offline: Discord sends no GUILD_DELETE for that.
            await self.service.guild_removed(guild_id)
        self.service.reconcile_now()

    async def _on_shard_resumed(self, _: hikari.ShardResumedEvent) -> None:
        # Voice survives a resume, but whatever went wrong while the gateway was away did not
        # reach the bot as it happened: compare promises with the truth now.
        if self.service is not None:
            self.service.reconcile_now()

    async def _on_guild_available(self, event: hikari.GuildAvailableEvent) -> None:
        self._pending_guilds.discard(int(event.guild_id))
        if not self._pending_guilds:
            self._guilds_arrived.set()

    async def _on_started(self, _: hikari.StartedEvent) -> None:
        self._starting = asyncio.current_task()
        # Restoring playback orders guilds by who is listening, which the cache only knows
        # once each guild's GUILD_CREATE (with its voice states) has arrived.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GUILDS_TIMEOUT):
                await self._guilds_arrived.wait()
        self._log_summary()
        if self.service is not None:  # an earlier layout's players go before any guild starts
            await self.service.layouts.clear_old_sessions(self.settings.bot_user_id)
        await self.lavalink.start(self.settings.bot_user_id, self._session_ids)
        if self.service is not None:
            self.service.start_reconciling()
        await self._sync_commands()
        self._commands_synced = True
        if self.lavalink.available:
            self._say_ready()
        else:
            # Not ready: /play would only say the music server is unreachable. The node's own
            # warning said why; "ready" follows the moment a node connects.
            _log.info(
                "commands synced; waiting for a Lavalink node (%s) before the bot is ready",
                ", ".join(node.url for node in self.settings.lavalink_nodes),
            )

    def _say_ready(self) -> None:
        if self._ready_said:
            return
        self._ready_said = True
        nodes = [node.name for node in self.lavalink.node_statuses() if node.up]
        _log.info("ready: commands synced, Lavalink node(s) %s connected", ", ".join(nodes))

    def _log_summary(self) -> None:
        """One line per connection made so far (Lavalink nodes say theirs as they connect),
        and the invite link: what a first run needs to see, none of it secret."""
        _log.info(
            "musicbot %s: settings from the environment and %s",
            __version__,
            self.settings.env_file or "no .env file",
        )
        if self._me is not None:
            servers = sum(self._guild_counts.values())
            _log.info(
                "Discord: logged in as %s (user id %s, application id %s), in %d server%s",
                self._me.username,
                self._me.id,
                self._application_id,
                servers,
                "" if servers == 1 else "s",
            )
        if self.repository is not None:
            _log.info("database: %s", self.repository.description)
        if self._application_id is not None:
            _log.info("invite link: %s", invite_url(self._application_id))

    def _on_lavalink_connected(self, event: lavalink.NodeConnected) -> None:
        """Say what a node is when it first connects, and again only if that changed (an
        upgraded Lavalink, a plugin added); reconnects have their own line in the client."""
        if self._commands_synced:
            self._say_ready()  # the node is available by the time this is called
        if self._described_nodes.get(event.node) == event.info:
            return
        self._described_nodes[event.node] = event.info
        info = event.info
        plugins = ", ".join(f"{p.name} {p.version}".strip() for p in info.plugins) or "none"
        _log.info(
            "Lavalink node %s at %s: Lavalink %s; sources: %s; plugins: %s",
            event.node,
            event.url,
            info.version.semver,
            ", ".join(info.source_managers) or "none",
            plugins,
        )

    async def _sync_commands(self) -> None:
        """Register the slash commands with Discord, retrying until Discord takes them.

        Without them nobody can use the bot, yet nothing else would say so: every failed
        attempt is a warning naming the cause and the next try, and "ready" comes only after.
        hikari already retries a 5xx three times within one attempt.
        """
        delay = COMMAND_SYNC_FIRST_RETRY
        while True:
            try:
                await self.commands.start()
                return
            except (hikari.HikariError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                _log.warning(
                    "could not register the slash commands with Discord (%s); the commands "
                    "will not work until this succeeds; trying again in %.0f s",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, COMMAND_SYNC_MAX_RETRY)

    async def _on_guild_leave(self, event: hikari.GuildLeaveEvent) -> None:
        if self.service is not None:
            await self.service.guild_removed(int(event.guild_id))

    async def _on_member_voice(self, event: hikari.VoiceStateUpdateEvent) -> None:
        """Someone joined, left or moved voice: the bot may now be alone, or not any more."""
        if self.service is not None and event.state.user_id != self.settings.bot_user_id:
            await self.service.voice_changed(int(event.guild_id))

    async def _on_interaction(self, event: hikari.InteractionCreateEvent) -> None:
        """Every command and button carries its member's roles as they are now (the gateway
        sends no role changes without the privileged GUILD_MEMBERS intent)."""
        member = getattr(event.interaction, "member", None)
        if isinstance(member, hikari.Member):
            self.discord_view.saw_member(member)

    async def _on_channel_delete(self, event: hikari.GuildChannelDeleteEvent) -> None:
        if self.service is not None:
            await self.service.channel_deleted(int(event.guild_id), int(event.channel_id))

    async def _gateway_health(self) -> str | None:
        shards = list(self.bot.shards.values())
        if not shards:
            return "not connected to Discord yet"
        down = [shard.id for shard in shards if not shard.is_connected]
        return f"shard(s) {down} not connected to Discord" if down else None

    async def _lavalink_health(self) -> str | None:
        if self.lavalink.available:
            return None
        names = ", ".join(self.lavalink.node_names)
        return f"no Lavalink node is connected ({names})"

    async def join(self) -> None:
        await self.bot.join()

    async def close(self) -> None:
        """Persist positions, keep the Lavalink session resumable, leave cleanly."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # e.g. still retrying the command sync
            await asyncio.gather(self._starting, return_exceptions=True)
        if self.service is not None:
            await self.service.shutdown()
        await self.lavalink.close()
        with contextlib.suppress(hikari.ComponentStateConflictError):
            await self.commands.stop()
        if self.bot.is_alive:
            await self.bot.close()
        await self.metrics.close()
        if self.health is not None:
            await self.health.close()
        if self.repository is not None:
            await self.repository.close()


async def run(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM or until the gateway stops; then shut down within limits."""
    app = MusicBot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        # A stop during start-up (Discord or the database slow to answer) must not wait for
        # start-up to give up first: `docker compose stop` allows 10 s.
        starting = asyncio.ensure_future(app.start())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            _log.info("stopped during start-up")
            return
        await starting  # a StartupError or StorageError goes to the caller
        collector.settle()
        joining = asyncio.ensure_future(app.join())
        await asyncio.wait({stopping, joining}, return_when=asyncio.FIRST_COMPLETED)
        joining.cancel()
        _log.info("shutting down")
    finally:
        collector.release()
        stopping.cancel()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await app.close()
        except TimeoutError:
            _log.warning("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_TIMEOUT)
