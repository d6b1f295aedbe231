"""Random sessions with crashes and failing writes: the database never disagrees with memory.

A hypothesis state machine drives the queue service over the real repository on a SQLite file,
with an in-memory Lavalink stand-in. Its rules are what users and Lavalink do (play by two
members, at the back, first in line (``next``) or in the fair queue's round-robin; skip,
skip to, remove, move, shuffle, clear, seek, stop, /previous, a track ending by itself, pause,
volume, loop mode, filters, the server's fair queue and default volume, the voice channel
deleted, the bot removed from the server), plus a crash (the process dies without shutting
down; a new one loads the same file and rebuilds the player) and a write that fails.

After every step the queue stored in the database (order, current entry, loop mode, volume,
paused, the server's settings) must equal the one in memory, and both must equal a plain model
of what the user was told: an operation whose write failed changed nothing. The same holds for
the play history: what is stored is what the users saw play, newest first, at most 25.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import shutil
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot import lavalink
from bot.services import FILTER_PRESETS, ServiceError
from bot.storage import HISTORY_LIMIT, GuildSettings, LoopMode, PlayerStatus, Repository
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot

OTHER = LISTENER + 1
"""A second member queueing in the same channel (the fair queue interleaves the two)."""

_T = TypeVar("_T")


@functools.cache
def _migrated_template() -> Path:
    """An empty database at the newest schema, made once per process.

    Each example starts from a copy of it: running every migration on a new file was about
    half the test's time. The copy is still opened by ``Repository.open`` (which finds the
    schema current), the start-up path of a restarted bot; the migrations have tests of
    their own (tests/storage).
    """
    folder = Path(tempfile.mkdtemp(prefix="queue-props-template-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "bot.db"

    async def migrate() -> None:
        repo = await Repository.open(f"sqlite+aiosqlite:///{path}")
        await repo.close()

    asyncio.run(migrate())
    # Closed cleanly: everything is in the main file, no write-ahead log left to copy.
    assert not path.with_name("bot.db-wal").exists()
    return path


write_fails = st.integers(min_value=0, max_value=4).map(lambda n: n == 0)
"""About one command in five meets a failing database write."""


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="queue-props-")
        shutil.copyfile(_migrated_template(), f"{self.folder}/bot.db")
        self.url = f"sqlite+aiosqlite:///{self.folder}/bot.db"
        self.loop = asyncio.new_event_loop()
        self.bot: Bot | None = None
        self.batches = itertools.count(1)
        # The model: what users were told.
        self.titles: list[str] = []
        self.owners: dict[str, int] = {}
        """Who queued each title."""
        self.fair = False
        self.default_volume = 100
        self.loop_mode = LoopMode.OFF
        self.volume = 100
        self.paused = False
        self.filter = "off"
        self.stopped = False
        """The voice channel was deleted: the queue waits for a /play to join again."""
        self.history: list[str] = []
        """The titles that played, oldest first."""

    def run(self, work: Awaitable[_T]) -> _T:
        return self.loop.run_until_complete(work)

    @property
    def app(self) -> Bot:
        assert self.bot is not None
        return self.bot

    @initialize(fair=st.booleans())
    def start(self, fair: bool) -> None:
        """Half the sessions run in a server with the fair queue on from the start."""
        self.bot = self.run(Bot.start(self.url))
        if fair:
            self.run(self.app.service.settings.set_fair_queue(GUILD, True, True))
            self.fair = True

    def teardown(self) -> None:
        try:
            if self.bot is not None:
                self.run(self.bot.repo.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def attempt(self, work: Awaitable[Any], fail: bool) -> bool:
        """Run a command; ``True`` when it changed something (no refusal, no failed write).

        With ``fail`` the command's first write fails. A command refused before writing
        leaves that failure armed for whatever writes next, as a flaky disk would.
        """
        if fail:
            self.app.failures.arm()
        fired = self.app.failures.fired
        try:
            self.run(work)
        except ServiceError:
            return False
        return self.app.failures.fired == fired

    # --- rules ----------------------------------------------------------------------------

    @rule(
        count=st.integers(min_value=1, max_value=4),
        user=st.sampled_from([LISTENER, OTHER]),
        first=st.booleans(),
        fail=write_fails,
    )
    def play(self, count: int, user: int, first: bool, fail: bool) -> None:
        self.queue_songs(count, user, first, fail)

    # /play is what members do most: two more rules make ordering sessions likely.
    @rule(count=st.integers(min_value=1, max_value=3), fail=write_fails)
    def play_as_the_other_member(self, count: int, fail: bool) -> None:
        self.queue_songs(count, OTHER, False, fail)

    @rule(count=st.integers(min_value=1, max_value=3), user=st.sampled_from([LISTENER, OTHER]))
    def play_in_turn(self, count: int, user: int) -> None:
        self.queue_songs(count, user, False, False)

    def queue_songs(self, count: int, user: int, first: bool, fail: bool) -> None:
        query = f"batch{next(self.batches)} {count} songs"
        was_idle = not self.titles or self.stopped
        work = self.app.service.play(GUILD, user, TEXT, query, play_next=first)
        if self.attempt(work, fail):
            new = [f"{query} #{i}" for i in range(count)]
            self.owners.update(dict.fromkeys(new, user))
            if not self.titles:
                self.titles = new
                self.volume = self.default_volume  # a new queue starts at the server's volume
            elif first:
                self.titles[1:1] = new
            elif self.fair:
                for title in new:
                    self.insert_fairly(title)
            else:
                self.titles += new
            assert self.app.lava.voice_channel(GUILD) == VOICE, "/play did not join the channel"
            if was_idle:
                self.paused = False  # /play that starts the music unpauses
                self.stopped = False

    @rule(on=st.booleans(), fail=write_fails)
    def set_fair_queue(self, on: bool, fail: bool) -> None:
        if self.attempt(self.app.service.settings.set_fair_queue(GUILD, True, on), fail):
            self.fair = on

    @rule(level=st.integers(min_value=0, max_value=200), fail=write_fails)
    def set_default_volume(self, level: int, fail: bool) -> None:
        work = self.app.service.settings.set_default_volume(GUILD, True, level)
        if self.attempt(work, fail):
            self.default_volume = level

    @rule(fail=write_fails)
    def skip(self, fail: bool) -> None:
        heard = self.heard()
        if self.attempt(self.app.service.skip(GUILD, LISTENER), fail) and self.titles:
            self.move_on(heard)

    @precondition(lambda self: self.bot is not None and not self.paused and self.live_track())
    @rule(fail=write_fails)
    def track_ends(self, fail: bool) -> None:
        if fail:
            self.app.failures.arm()
        fired = self.app.failures.fired
        self.run(self.app.end_track())
        if self.loop_mode is LoopMode.TRACK or self.app.failures.fired != fired:
            return  # the same song again, or a failed write that changed nothing
        self.move_on(heard=True)

    @rule(mode=st.sampled_from(LoopMode), fail=write_fails)
    def set_loop(self, mode: LoopMode, fail: bool) -> None:
        if self.attempt(self.app.service.set_loop(GUILD, LISTENER, mode), fail):
            self.loop_mode = mode

    @rule(level=st.integers(min_value=0, max_value=200), fail=write_fails)
    def set_volume(self, level: int, fail: bool) -> None:
        if self.attempt(self.app.service.set_volume(GUILD, LISTENER, level), fail):
            self.volume = level

    @rule(pause=st.booleans(), fail=write_fails)
    def pause_or_resume(self, pause: bool, fail: bool) -> None:
        service = self.app.service
        work = service.pause(GUILD, LISTENER) if pause else service.resume(GUILD, LISTENER)
        if self.attempt(work, fail):
            self.paused = pause

    @rule(preset=st.sampled_from(sorted(FILTER_PRESETS)), fail=write_fails)
    def set_filter(self, preset: str, fail: bool) -> None:
        if self.attempt(self.app.service.set_filter(GUILD, LISTENER, preset), fail):
            self.filter = preset

    @rule(to=st.integers(min_value=1, max_value=4), fail=write_fails)
    def skip_to(self, to: int, fail: bool) -> None:
        heard = self.heard()
        if self.attempt(self.app.service.edits.skip_to(GUILD, LISTENER, to), fail):
            if heard:
                self.played(self.titles[0])
            passed, self.titles = self.titles[:to], self.titles[to:]
            if self.loop_mode is LoopMode.QUEUE:
                self.titles += passed

    @rule(
        first=st.integers(min_value=1, max_value=4),
        more=st.none() | st.integers(min_value=-1, max_value=3),
        fail=write_fails,
    )
    def remove(self, first: int, more: int | None, fail: bool) -> None:
        last = None if more is None else first + more
        if self.attempt(self.app.service.edits.remove(GUILD, LISTENER, first, last), fail):
            del self.titles[first : (last if last is not None else first) + 1]

    @rule(
        source=st.integers(min_value=1, max_value=4),
        place=st.integers(min_value=1, max_value=4),
        fail=write_fails,
    )
    def move(self, source: int, place: int, fail: bool) -> None:
        if self.attempt(self.app.service.edits.move(GUILD, LISTENER, source, place), fail):
            self.titles.insert(place, self.titles.pop(source))

    @rule(fail=write_fails)
    def shuffle(self, fail: bool) -> None:
        if self.attempt(self.app.service.edits.shuffle(GUILD, LISTENER), fail):
            shuffled = self.app.titles()
            assert shuffled[0] == self.titles[0], "the current track was shuffled"
            assert sorted(shuffled) == sorted(self.titles), "shuffling lost or made tracks"
            self.titles = shuffled

    @rule(fail=write_fails)
    def clear(self, fail: bool) -> None:
        if self.attempt(self.app.service.edits.clear(GUILD, LISTENER), fail):
            self.titles = self.titles[:1]

    @rule(to=st.sampled_from(["0", "1:00", "+10", "-10", "9:59:59", "nonsense"]), fail=write_fails)
    def seek(self, to: str, fail: bool) -> None:
        self.attempt(self.app.service.controls.seek(GUILD, LISTENER, to), fail)

    @rule(fail=write_fails)
    def stop(self, fail: bool) -> None:
        heard = self.heard()
        if self.attempt(self.app.service.controls.stop(GUILD, LISTENER), fail):
            if self.titles and heard:
                self.played(self.titles[0])
            self.titles, self.paused = [], False

    @rule(fail=write_fails)
    def previous(self, fail: bool) -> None:
        joining = not self.titles or self.stopped
        if self.attempt(self.app.service.previous(GUILD, LISTENER), fail):
            event("previous played a track again" + (" after joining" if joining else ""))
            self.titles.insert(0, self.history.pop())
            assert self.app.lava.voice_channel(GUILD) == VOICE, "/previous did not join"
            if joining:
                self.paused = False  # like /play: starting the music again unpauses
                self.stopped = False

    @rule()
    def voice_channel_deleted(self) -> None:
        # Stopping is stored best-effort (the music stopped whatever the disk says; a restart
        # that finds the channel gone leaves it again), so no write fails here.
        self.app.failures.arm(0)
        self.run(self.app.service.channel_deleted(GUILD, VOICE))
        if self.titles:
            self.stopped = True

    @rule(fail=write_fails)
    def removed_from_the_server(self, fail: bool) -> None:
        if fail:
            self.app.failures.arm()
        fired = self.app.failures.fired
        self.run(self.app.service.guild_removed(GUILD))
        if self.app.failures.fired == fired:
            self.titles = []
            self.loop_mode, self.volume, self.paused = LoopMode.OFF, 100, False
            self.filter, self.stopped = "off", False
            self.history = []
            self.fair, self.default_volume = False, 100

    @rule(fail=write_fails)
    def crash(self, fail: bool) -> None:
        """The process dies mid-session; a new one loads the file and rebuilds the player.

        With ``fail`` a write during the rebuild fails (the session id or the player state):
        neither may change the queue.
        """
        self.bot = self.run(self.app.crash(self.url))
        if fail:
            self.app.failures.arm()
        if self.stopped:
            # No voice channel to go back to: nothing is rebuilt until a /play.
            event = lavalink.SessionReady(self.app.lava.node, "fresh", False)
            self.run(self.app.service.handle_event(event))
            assert GUILD not in self.app.lava.players
            return
        self.run(self.app.rebuild())
        if not self.titles:
            return
        view = self.app.service.queue(GUILD)
        assert view.current is not None
        player = self.app.lava.players.get(GUILD)
        assert player is not None, "the player was not rebuilt"
        assert player.encoded == view.current.encoded
        assert (player.paused, player.volume) == (self.paused, self.volume)
        assert (player.filters or lavalink.Filters()) == FILTER_PRESETS[self.filter]

    # --- checks ---------------------------------------------------------------------------

    @invariant()
    def storage_equals_memory_equals_model(self) -> None:
        if self.bot is None:
            return
        view = self.app.service.queue(GUILD, limit=10**6)
        memory = (
            view.current.id if view.current else None,
            [e.id for e in view.upcoming],
            view.loop_mode,
            view.volume,
            view.paused,
            view.filter_name,
        )
        stored_guilds = {g.player.guild_id: g for g in self.run(self.app.repo.load_guilds())}
        if (stored := stored_guilds.get(GUILD)) is None:
            stored_state: tuple[Any, ...] = (None, [], LoopMode.OFF, 100, False, "off")
        else:
            current = stored.player.current_entry_id
            stored_state = (
                current,
                [e.id for e in stored.entries if e.id != current],
                stored.player.loop_mode,
                stored.player.volume,
                stored.player.paused,
                _preset_of(stored.player.filters),
            )
            # Every stored entry is either the current one or upcoming: none is left behind.
            assert len(stored.entries) == len(stored_state[1]) + (current is not None)
        assert stored_state == memory
        titles = ([view.current.title] if view.current else []) + [e.title for e in view.upcoming]
        assert titles == self.titles
        assert (view.loop_mode, view.volume, view.paused, view.filter_name) == (
            self.loop_mode,
            self.volume,
            self.paused,
            self.filter,
        )
        stored_history = [t.title for t in self.run(self.app.repo.history(GUILD))]
        assert stored_history == self.history[::-1]
        settings = self.app.service.settings.show(GUILD, True).settings
        stored_settings = {s.guild_id: s for s in self.run(self.app.repo.settings.load())}
        assert stored_settings.get(GUILD, GuildSettings(GUILD)) == settings
        assert (settings.fair_queue, settings.default_volume) == (self.fair, self.default_volume)

    # --- helpers --------------------------------------------------------------------------

    def live_track(self) -> bool:
        player = self.app.lava.players.get(GUILD)
        return player is not None and player.encoded is not None

    def played(self, title: str) -> None:
        self.history = [*self.history, title][-HISTORY_LIMIT:]

    def heard(self) -> bool:
        """Whether the current track was heard, as users were told: it plays, or it stopped
        part-way (positions here move only by /seek). Read before a command moves past it."""
        guild = self.app.service._guilds.get(GUILD)
        if guild is None or guild.current is None:
            return False
        player = guild.player
        return player.status is PlayerStatus.PLAYING or player.position_ms > 0

    def insert_fairly(self, title: str) -> None:
        """The fair queue as specified: a member's k-th upcoming track goes right after the
        last upcoming track that is some member's k-th or earlier."""
        upcoming = self.titles[1:]
        seen: dict[int, int] = {}
        rounds = []
        for queued in upcoming:
            owner = self.owners[queued]
            seen[owner] = seen.get(owner, 0) + 1
            rounds.append(seen[owner])
        mine = seen.get(self.owners[title], 0) + 1
        after = max((i for i, r in enumerate(rounds) if r <= mine), default=-1)
        self.titles.insert(after + 2, title)  # + 1 past it, + 1 for the current track

    def move_on(self, heard: bool) -> None:
        finished = self.titles.pop(0)
        if heard:
            self.played(finished)
        if self.loop_mode is LoopMode.QUEUE:
            self.titles.append(finished)


def _preset_of(stored: str | None) -> str:
    if stored is None:
        return "off"
    filters = msgspec.json.decode(stored, type=lavalink.Filters)
    return next(name for name, preset in FILTER_PRESETS.items() if preset == filters)


QueueMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueProperties = QueueMachine.TestCase
