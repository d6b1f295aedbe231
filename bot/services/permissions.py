"""Who may do what: the listener rule, the DJ role, and vote skip.

The rules, in order (a server's choices are its :class:`~bot.storage.GuildSettings`):

1. While the bot is in a voice channel, only people in that channel may change what it plays
   (:class:`~.errors.NotInBotChannel`). Out of voice there is nobody to disturb.
2. Without a DJ role (``dj_role_id`` is ``None``) every such listener may do everything.
3. With one, DJs act freely: members with the role, the guild's owner, members holding Manage
   Server or Administrator, and whoever is the only person listening with the bot (nobody is
   there to object). Everyone else may ``/play``, pause and resume, skip and remove their OWN
   tracks; a skip of someone else's track is a vote (below), and everything in
   :data:`DJ_ONLY` is refused with :class:`~.errors.NotDJ`, changing nothing.

A vote skip passes with votes from more than ``vote_skip_percent`` % of the people listening
in the bot's channel, at most all of them (:func:`votes_needed`); bots do not count, each
person votes once. Only votes of people still in the channel count: every vote and every voice
change in the guild recounts, dropping voters who left, so a departure can make the remaining
votes enough (:meth:`QueueService.voice_changed <.queue.QueueService.voice_changed>` then
skips).

Votes live in memory only, one ballot per guild, keyed to the current entry's id AND sort key:
when the track changes the old ballot no longer matches and the count starts from nothing (a
track that comes round again with loop ``the whole queue`` is re-keyed, so it starts afresh
too). A restart loses the votes: they were about a moment of listening, worth a click to cast
again, and not worth a table.

Every command and button reaches these rules through one hook, :meth:`Permissions.require`,
which the service, :class:`~.editing.QueueEdits` and :class:`~.controls.Controls` call before
they change anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from bot.storage import QueueEntry

from .errors import Action, NotDJ, NotInBotChannel
from .guild import GuildState
from .ports import DiscordView, VoiceTruth
from .views import VoteCounted

__all__ = ["DJ_ONLY", "Permissions", "Require", "Standing", "votes_needed"]

DJ_ONLY = frozenset(
    {
        Action.STOP,
        Action.LEAVE,
        Action.CLEAR,
        Action.SHUFFLE,
        Action.MOVE,
        Action.VOLUME,
        Action.FILTER,
        Action.SEEK,
        Action.LOOP,
        Action.SKIP_TO,
        Action.PREVIOUS,
        Action.PLAY_NEXT,
    }
)
"""What only DJs may do while a DJ role is set. Pause and resume stay open to listeners;
skip and remove are open for one's own tracks (:meth:`Standing.require_own`)."""


Require = Callable[[int, int, Action], "Standing"]
"""The one hook's shape (:meth:`Permissions.require`), as the service's nouns receive it."""


def votes_needed(listeners: int, percent: int) -> int:
    """Votes that make a skip: more than ``percent`` % of ``listeners``, but never more than
    all of them, and at least one (``percent`` 50 of 3 is 2, of 4 is 3; 100 of 3 is 3)."""
    return max(1, min(listeners, listeners * percent // 100 + 1))


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """What the rules made of one member for one command."""

    user_id: int
    dj: bool
    """May do anything a listener may (no DJ role set, or a DJ)."""
    role_id: int | None
    """The guild's DJ role (``None``: none set)."""

    def owns(self, entries: Iterable[QueueEntry]) -> bool:
        return all(entry.requester_id == self.user_id for entry in entries)

    def require_own(self, entries: Iterable[QueueEntry], action: Action) -> None:
        """Raise :class:`~.errors.NotDJ` unless a DJ, or every entry is the member's own."""
        if not self.dj and not self.owns(entries):
            assert self.role_id is not None  # not a DJ only where a role is set
            raise NotDJ(self.role_id, action)


@dataclasses.dataclass(slots=True)
class _Ballot:
    key: tuple[int, int]
    """The entry voted on: its id and sort key."""
    voters: set[int]


class Permissions:
    """The rules above over the service's guilds; the ballots are held here."""

    def __init__(
        self, guilds: dict[int, GuildState], voice: VoiceTruth, discord: DiscordView
    ) -> None:
        self._guilds = guilds
        self._voice = voice
        self._discord = discord
        self._ballots: dict[int, _Ballot] = {}

    def require(self, guild_id: int, user_id: int, action: Action) -> Standing:
        """The one hook: may ``user_id`` try ``action`` at all? Raises what stops them.

        Raises:
            NotInBotChannel: the bot is in voice and the member is not with it.
            NotDJ: ``action`` is in :data:`DJ_ONLY` and the member is not a DJ.
        """
        channel = self.bot_channel(guild_id)
        if channel is not None and self._discord.voice_channel_of(guild_id, user_id) != channel:
            raise NotInBotChannel(channel, action)
        standing = self._standing(guild_id, user_id, channel)
        if action in DJ_ONLY and not standing.dj:
            assert standing.role_id is not None
            raise NotDJ(standing.role_id, action)
        return standing

    def bot_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel as Discord last reported it."""
        live = self._voice.snapshot(guild_id)
        return live.voice_channel_id if live is not None else None

    def _standing(self, guild_id: int, user_id: int, channel: int | None) -> Standing:
        guild = self._guilds.get(guild_id)
        role_id = guild.settings.dj_role_id if guild is not None else None
        if role_id is None:
            return Standing(user_id, True, None)
        discord = self._discord
        dj = (
            (channel is not None and discord.humans_in(guild_id, channel) == {user_id})
            or role_id in (discord.member_roles(guild_id, user_id) or ())
            or discord.manages_guild(guild_id, user_id)
        )
        return Standing(user_id, dj, role_id)

    # --- vote skip (call under the guild's lock) ---------------------------------------------

    def vote(self, guild: GuildState, standing: Standing) -> VoteCounted:
        """``standing``'s member votes to skip the current entry; the count, recounted.

        Raises:
            NotDJ: the bot is in no voice channel, so there is nobody to vote with.
        """
        entry = guild.current
        assert entry is not None
        assert standing.role_id is not None
        channel = self.bot_channel(guild.guild_id)
        if channel is None:
            raise NotDJ(standing.role_id, Action.SKIP)
        key = (entry.id, entry.sort_key)
        ballot = self._ballots.get(guild.guild_id)
        if ballot is None or ballot.key != key:
            ballot = self._ballots[guild.guild_id] = _Ballot(key, set())
        again = standing.user_id in ballot.voters
        ballot.voters.add(standing.user_id)
        return self._count(guild, entry, ballot, channel, again=again)

    def recount(self, guild: GuildState) -> VoteCounted | None:
        """After a voice change: the current entry's votes of those still listening (voters
        who left are dropped); ``None`` when no vote on the current entry is open."""
        ballot = self._ballots.get(guild.guild_id)
        entry = guild.current
        if ballot is None or entry is None or ballot.key != (entry.id, entry.sort_key):
            self._ballots.pop(guild.guild_id, None)
            return None
        channel = self.bot_channel(guild.guild_id)
        if channel is None or guild.settings.dj_role_id is None:
            self._ballots.pop(guild.guild_id, None)
            return None
        return self._count(guild, entry, ballot, channel)

    def voting(self, guild_id: int) -> bool:
        """A ballot is open in the guild (cheap: no lock, no cache)."""
        return guild_id in self._ballots

    def close_vote(self, guild_id: int) -> None:
        """The track was skipped: its ballot is done with."""
        self._ballots.pop(guild_id, None)

    def _count(
        self,
        guild: GuildState,
        entry: QueueEntry,
        ballot: _Ballot,
        channel: int,
        *,
        again: bool = False,
    ) -> VoteCounted:
        humans = self._discord.humans_in(guild.guild_id, channel)
        ballot.voters &= humans
        needed = votes_needed(len(humans), guild.settings.vote_skip_percent)
        return VoteCounted(entry, len(ballot.voters), needed, again=again)
