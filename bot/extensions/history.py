"""``/history`` and ``/previous``: thin wrappers around :class:`bot.services.history.History`.

``/history`` lists the last tracks that played, newest first, in one embed that stays inside
Discord's limits however long the titles and links are; ``/previous`` plays the newest of them
again (the service's rules; the sentences in :mod:`.sentences`).
"""

from __future__ import annotations

import hikari
import lightbulb
import msgspec

from bot.metrics import Metrics
from bot.services import QueueService
from bot.services.views import HistoryView, PreviousOutcome
from bot.storage import PlayedTrack

from .replies import ACCENT, GUILD_ONLY, entry_line, guild_of, reply_with
from .sentences import HISTORY_EARLIER, HISTORY_TITLE, played_line, previous_text

__all__ = ["DESCRIPTION_LIMIT", "loader", "render_history", "render_previous"]

loader = lightbulb.Loader()

DESCRIPTION_LIMIT = 4096
FIELD_LIMIT = 1024
"""Discord's limits: an embed's description, a field's value; 6000 characters in all."""
LINE_LIMIT = 230
"""Longest line: 25 of them (the most /history shows) stay under 6000 characters in all. A
longer line loses its link, then has its title and artist cut."""
_CUTS = ((80, 40), (40, 20))
"""(title, artist) lengths tried in turn for a line that is too long with its link."""


@loader.command
class History(
    lightbulb.SlashCommand,
    name="history",
    description="Show the songs that played last",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, metrics, service.history.recent(guild_id), render_history)


@loader.command
class Previous(
    lightbulb.SlashCommand,
    name="previous",
    description="Play the song before this one again",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.previous(guild_id, ctx.user.id, ctx.channel_id)
            await reply_with(ctx, metrics, work, render_previous)


def render_history(view: HistoryView) -> hikari.Embed:
    """The lines in the description while they fit, the older ones in fields after it."""
    embed = hikari.Embed(title=HISTORY_TITLE, color=ACCENT)
    chunks: list[list[str]] = [[]]
    used, limit = 0, DESCRIPTION_LIMIT
    for place, track in enumerate(view.tracks, 1):
        line = _line(place, track)
        if used + len(line) + 1 > limit:
            chunks.append([])
            used, limit = 0, FIELD_LIMIT
        chunks[-1].append(line)
        used += len(line) + 1
    embed.description = "\n".join(chunks[0])
    for chunk in chunks[1:]:
        embed.add_field(HISTORY_EARLIER, "\n".join(chunk))
    return embed


def _line(place: int, track: PlayedTrack) -> str:
    line = played_line(place, entry_line(track), track.requester_id, track.played_at_ms)
    for title, author in _CUTS:
        if len(line) <= LINE_LIMIT:
            break
        unlinked = msgspec.structs.replace(
            track, title=track.title[:title], author=track.author[:author], uri=None
        )
        line = played_line(place, entry_line(unlinked), track.requester_id, track.played_at_ms)
    return line


def render_previous(outcome: PreviousOutcome) -> str:
    return previous_text(outcome, entry_line(outcome.track))
