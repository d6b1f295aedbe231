"""Every sentence the service's typed outcomes become: what users read, in one place.

The service says *what* happened (:mod:`bot.services.errors`, :mod:`bot.services.notices`);
this module says it in English. :func:`error_text` is the ephemeral reply to a refused command
(and the tail of a skip Lavalink did not follow); :func:`announcement_text` is what the bot
posts in a guild's text channel on its own.
"""

from __future__ import annotations

from typing import assert_never

from bot.services import errors as e
from bot.services import notices as n
from bot.services.suggest import Suggestion
from bot.services.views import LeftOut, PreviousOutcome, VoteCounted
from bot.storage import LoopMode

__all__ = [
    "HISTORY_EARLIER",
    "HISTORY_TITLE",
    "PAGE_BUTTONS",
    "announcement_text",
    "clip",
    "controller_status",
    "duration",
    "error_text",
    "left_out_text",
    "length_text",
    "page_text",
    "plain",
    "played_line",
    "previous_text",
    "settings_text",
    "songs",
    "suggestion_choice",
    "title_text",
    "vote_text",
]

_ACTIONS = {
    e.Action.SKIP: "skip",
    e.Action.SKIP_TO: "skip ahead in the queue",
    e.Action.PREVIOUS: "play the previous song",
    e.Action.PLAY_NEXT: "put songs first in the queue",
    e.Action.PAUSE: "pause",
    e.Action.RESUME: "resume",
    e.Action.VOLUME: "change the volume",
    e.Action.LOOP: "change the loop mode",
    e.Action.FILTER: "change the filters",
    e.Action.SEEK: "seek",
    e.Action.STOP: "stop the music",
    e.Action.LEAVE: "make me leave",
    e.Action.REMOVE: "remove songs",
    e.Action.MOVE: "move songs",
    e.Action.SHUFFLE: "shuffle the queue",
    e.Action.CLEAR: "clear the queue",
}

_DJ_ACTIONS = {
    **_ACTIONS,
    e.Action.SKIP: "skip other people's songs while I'm not in a voice channel",
    e.Action.REMOVE: "remove songs other people asked for",
}
"""What a :class:`~bot.services.errors.NotDJ` names; skipping and removing one's own songs
is open to everyone, so the refusal says whose."""

_UNSAVED = {
    e.Unsaved.ADD: "I couldn't save the queue just now, so nothing was added.",
    e.Unsaved.SKIP: "I couldn't save the queue just now, so nothing was skipped.",
    e.Unsaved.CHANGE: "I couldn't save that just now, so nothing was changed.",
    e.Unsaved.SEEK: "I couldn't save the new position just now, so the song stays where it was.",
    e.Unsaved.STOP: "I couldn't save the queue just now, so nothing was stopped or cleared.",
    e.Unsaved.LEAVE: "I couldn't save the queue just now, so I stayed and nothing was cleared.",
    e.Unsaved.REMOVE: "I couldn't save the queue just now, so nothing was removed.",
    e.Unsaved.MOVE: "I couldn't save the queue just now, so nothing was moved.",
    e.Unsaved.SHUFFLE: "I couldn't save the queue just now, so it wasn't shuffled.",
    e.Unsaved.CLEAR: "I couldn't save the queue just now, so nothing was cleared.",
    e.Unsaved.PREVIOUS: (
        "I couldn't reach the list of played songs just now, so nothing was changed."
    ),
}

_FIXED: dict[type[e.ServiceError], str] = {
    e.EmptyQuery: "Tell me what to play: a song name or a link.",
    e.EmptySearch: "Tell me what to search for after the prefix.",
    e.NotALink: "I can only play songs by name or from http(s) links.",
    e.BadLink: "That link doesn't look right. Check it and try again.",
    e.LinkWithCredentials: "Links with a user name or password in them aren't allowed.",
    e.PrivateAddress: "I can't play links to private addresses.",
    e.NoVoiceChannel: "Join a voice channel first, then ask me again.",
    e.GuildGone: "I'm no longer in this server.",
    e.NothingFound: "I found nothing for that. Try other words or a link.",
    e.SearchFailed: "The music server had a problem finding that. Try again in a moment.",
    e.NothingPlaying: "Nothing is playing right now.",
    e.AlreadyPaused: "It's already paused.",
    e.NotPaused: "It isn't paused.",
    e.WaitingForServer: (
        "The music server is unreachable right now. Your song is kept in the queue "
        "and will play when the server is back."
    ),
    e.StopRefused: "The music server didn't stop the song, so I left the voice channel.",
    e.LiveStream: "This is a live stream: there is no position to jump to.",
    e.NotSeekable: "This song's source doesn't allow jumping to another position.",
    e.SeekRefused: "The music server didn't take the new position, so the song stays where it was.",
    e.NotInVoice: "I'm not in a voice channel, and the queue is empty.",
    e.NothingQueued: "Nothing is queued after the current song.",
    e.TooFewToShuffle: "Only one song is queued, so there is nothing to shuffle.",
    e.NotManager: "Only members with the Manage Server permission can see or change my settings.",
    e.PlayerEnded: (
        "This player has ended, so its buttons do nothing any more. Use /play to start the "
        "music again."
    ),
}

_SETTING_RANGES = {
    e.Setting.VOLUME: "The default volume goes from {low} to {high} (100 is the song as recorded).",
    e.Setting.IDLE_TIMEOUT: "The idle timeout goes from {low} to {high}.",
    e.Setting.QUEUE_LENGTH: "The queue limit goes from {low} to {high} songs.",
    e.Setting.TRACK_LENGTH: "The song length limit must be at least {low}.",
    e.Setting.USER_SHARE: "Each member's share goes from {low} to {high} % of the queue.",
    e.Setting.VOTE_SKIP: "The vote-skip share goes from {low} to {high} % of the listeners.",
}


def error_text(error: e.ServiceError) -> str:
    """The reply for a command the service refused or could not carry out."""
    if (fixed := _FIXED.get(type(error)) or _limit_text(error)) is not None:
        return fixed
    match error:
        case e.QueryTooLong(limit=limit):
            return f"That's too long. Keep it under {limit} characters."
        case e.UnknownHost(host=host):
            return f"I couldn't find the website `{host}`."
        case e.PlayingElsewhere(channel_id=channel_id):
            return f"I'm already playing in <#{channel_id}>. Join me there."
        case e.NotInBotChannel() | e.NotDJ():
            return _not_allowed(error)
        case e.QueueFull(limit=limit):
            return f"The queue is full: this server allows {limit} songs in it. Skip some first."
        case e.LoadFailed(message=message):
            return f"I couldn't load that: {message or 'unknown error'}."
        case e.ServerUnreachable(nothing_added=nothing_added):
            return _unreachable(nothing_added=nothing_added)
        case e.VoiceJoinFailed(lavalink_refused=lavalink_refused):
            return _join_failed(lavalink_refused=lavalink_refused)
        case e.SaveFailed(not_done=not_done):
            return _UNSAVED[not_done]
        case e.VolumeOutOfRange(maximum=maximum):
            return (
                f"Volume goes from 0 to {maximum} (100 is the song as recorded); "
                "louder than that only distorts."
            )
        case e.UnknownFilter(name=name, choices=choices):
            return f"I don't know the filter {name[:50]!r}. Pick one of: {', '.join(choices)}."
        case e.BadTimecode(text=text):
            return (
                f"I can't read {_quoted(text)} as a time. Use seconds (`83`), minutes and "
                "seconds (`1:23`) or hours too (`1:02:03`); put `+` or `-` in front to jump "
                "forward or back from where the song is (`+10`, `-1:00`)."
            )
        case e.PastTheEnd(length_ms=length_ms):
            return (
                f"The song is {duration(length_ms)} long: pick a time before its end, "
                "or use /skip to move on."
            )
        case e.PlaybackRefused(title=title):
            return (
                f"The music server couldn't play **{title}**. It stays in the queue: "
                "use /play to try again, or /skip it."
            )
        case e.NoSuchPosition(position=position, last=last):
            places = "only one song, at position 1" if last == 1 else f"songs 1 to {last}"
            return f"There's no song at position {position}: the queue has {places}."
        case e.BackwardRange(start=start, end=end):
            return f"That range runs backwards ({start} to {end}). Put the smaller number first."
        case e.NoHistory(going_back=going_back):
            return _NO_HISTORY[going_back]
        case e.SamePosition(position=position):
            return f"That song is at position {position} already."
    raise TypeError(f"no sentence for {error!r}")


def _not_allowed(error: e.NotInBotChannel | e.NotDJ) -> str:
    """Who may do it: people in the bot's channel; with a DJ role set, DJs."""
    if isinstance(error, e.NotInBotChannel):
        return f"Join my voice channel <#{error.channel_id}> to {_ACTIONS[error.action]}."
    need = f"You need the DJ role <@&{error.role_id}> (or Manage Server)"
    return f"{need} to {_DJ_ACTIONS[error.action]}."


def _limit_text(error: e.ServiceError) -> str | None:
    """The refusals of the server's limits and of ``/settings``; ``None``: not one of them."""
    match error:
        case e.TrackTooLong(limit_ms=limit_ms, length_ms=length_ms):
            return (
                f"That song is {duration(length_ms)} long: this server allows songs of up to "
                f"{duration(limit_ms)}."
            )
        case e.ShareFull(percent=percent, limit=limit):
            return (
                f"You've filled your share of the queue: each member may have at most {limit} "
                f"{songs(limit)} waiting here ({percent}% of the queue). Wait until some play."
            )
        case e.SettingOutOfRange(setting=setting, minimum=low, maximum=high):
            timed = setting in (e.Setting.IDLE_TIMEOUT, e.Setting.TRACK_LENGTH)
            unit = 1000 if setting is e.Setting.IDLE_TIMEOUT else 1
            shown = (
                (duration(low * unit), duration(high * unit) if high is not None else "")
                if timed
                else (str(low), str(high))
            )
            return _SETTING_RANGES[setting].format(low=shown[0], high=shown[1])
        case e.BadLength(text=text):
            return (
                f"I can't read {_quoted(text)} as a length. Use seconds (`90`), minutes and "
                "seconds (`1:30`) or hours too (`1:00:00`)."
            )
    return None


def songs(count: int) -> str:
    return "song" if count == 1 else "songs"


def left_out_text(left_out: LeftOut) -> str:
    """Why some of a playlist's songs were not queued."""
    count, why = left_out.count, left_out.why
    were = f"{count} {songs(count)} {'was' if count == 1 else 'were'} left out"
    match why:
        case e.TrackTooLong(limit_ms=limit_ms):
            return f"{were}: longer than this server's limit of {duration(limit_ms)}."
        case e.ShareFull(percent=percent, limit=limit):
            return (
                f"{were}: each member may fill at most {percent}% of the queue here "
                f"({limit} {songs(limit)})."
            )
        case e.QueueFull(limit=limit):
            return f"{were}: the queue is full (this server allows {limit} songs)."
        case _:
            assert_never(why)


def _quoted(text: str) -> str:
    """What a user typed, shown as code and kept short (it is theirs, not ours)."""
    shown = text.strip().replace("`", "'")[:20]
    return f"`{shown}`" if shown else "that"


_NO_HISTORY = {
    True: "No song has played here yet, so there is nothing to go back to.",
    False: "No song has played here yet. Songs show up here once they have played.",
}
"""/previous (going back) and /history with nothing played."""


def _unreachable(*, nothing_added: bool) -> str:
    if nothing_added:
        return (
            "The music server is unreachable right now, so nothing was added. "
            "Try again in a moment."
        )
    return "The music server is unreachable right now. Try again in a moment."


def _join_failed(*, lavalink_refused: bool) -> str:
    if lavalink_refused:
        # Discord sent the credentials: not a permissions problem.
        return (
            "The music server couldn't take my voice connection just now, so nothing "
            "was added. Try again in a moment."
        )
    return (
        "I couldn't join your voice channel, so nothing was added. "
        "Check that I may connect and speak there."
    )


def announcement_text(announcement: n.Announcement) -> str:
    """What the bot posts in the guild's text channel."""
    match announcement:
        case n.QueueFinished():
            return "The queue is finished."
        case n.TrackFailed(title=title, message=message):
            return f"Couldn't play **{title}**: {message or 'unknown error'}."
        case n.StoppedUnsaved(title=title):
            return f"I couldn't save the queue, so I stopped after **{title}**. Use /skip to go on."
        case n.StuckSkipped(title=title, problem=problem):
            tail = "" if problem is None else " " + error_text(problem)
            return f"**{title}** got stuck, so I skipped it.{tail}"
        case n.StuckUnsaved(title=title):
            return f"**{title}** got stuck, and I couldn't save the queue to skip it."
        case n.PlaybackTrouble(problem=problem):
            return error_text(problem)
        case n.NodeLostNotice():
            return "I lost the music server. The queue is kept; I'll be back when it returns."
        case n.BackPlaying(title=title):
            return f"I'm back. Playing **{title}** again."
        case n.VoiceLost():
            return "I was disconnected from voice. The queue is kept: use /play to bring me back."
        case n.VoiceUnstable(channel_id=channel_id):
            return (
                f"I couldn't keep a voice connection in <#{channel_id}>. "
                "The queue is kept: use /play to try again."
            )
        case n.RejoinFailed(channel_id=channel_id):
            return (
                f"I lost my voice connection in <#{channel_id}> and couldn't get back in. "
                "The queue is kept: use /play to carry on."
            )
        case n.ChannelGone():
            return (
                "My voice channel was deleted, so the music stopped. "
                "The queue is kept: use /play in another channel to carry on."
            )
        case n.LeftAlone(channel_id=channel_id):
            return (
                f"Everyone left <#{channel_id}>, so I left too. "
                "The queue is kept: use /play to carry on."
            )
        case n.LeftIdle(channel_id=channel_id):
            return f"Nothing more was queued, so I left <#{channel_id}>. Use /play to start again."
        case n.VoteSkipped(title=title, next_title=next_title, problem=problem):
            told = f"Enough of those still listening voted, so I skipped **{title}**."
            if problem is not None:
                return f"{told} {error_text(problem)}"
            return told + (f" Now playing **{next_title}**." if next_title else "")
        case _:
            assert_never(announcement)


def vote_text(vote: VoteCounted, title: str) -> str:
    """The reply to a vote skip (``title`` as the caller shows it): the count so far, or,
    for the vote that passed, the lead-in to what the skip did."""
    count = f"{vote.votes} of {vote.needed} needed"
    if vote.passed:
        return f"Vote passed ({count}):"
    if vote.again:
        return f"You already voted to skip **{title}**: {count}."
    return f"Vote to skip **{title}**: {count}."


def controller_status(*, paused: bool, waiting: bool, ends_at_s: int | None) -> str:
    """The controller's line on where the track stands. ``<t:…:R>`` is Discord's relative
    time ("in 3 minutes"), which every client counts down by itself."""
    if waiting:
        return "Waiting for the music server: it plays on when the server is back."
    if paused:
        return "⏸ Paused: press ⏯ or use /resume to go on."
    if ends_at_s is None:
        return "`LIVE`"
    return f"Ends <t:{ends_at_s}:R>."


def settings_text(volume: int, loop_mode: LoopMode, filter_name: str, separator: str) -> str:
    """A player's settings in a few words: the volume, and loop and filter when they are on."""
    parts = [f"volume {volume}%"]
    if loop_mode is not LoopMode.OFF:
        parts.append(f"loop: {'song' if loop_mode is LoopMode.TRACK else 'queue'}")
    if filter_name != "off":
        parts.append(f"filter: {filter_name}")
    return separator.join(parts)


CHOICE_LIMIT = 100
"""Discord's limit on an autocomplete choice's name and (string) value."""


def suggestion_choice(found: Suggestion) -> tuple[str, str]:
    """An autocomplete choice: what the user reads ("Title — Artist (3:45)") and what /play
    then receives (the track's link, else its words), each within Discord's 100 characters."""
    if found.typed:
        return clip(found.title), found.title[:CHOICE_LIMIT]
    length = length_text(found.is_stream, found.length_ms)
    tail = f" — {found.author} ({length})"
    name = clip(found.title, CHOICE_LIMIT - len(tail)) + tail
    link = found.link
    value = (
        link if link is not None and len(link) <= CHOICE_LIMIT else f"{found.title} {found.author}"
    )
    return clip(name), value[:CHOICE_LIMIT]


def plain(text: str) -> str:
    """``text`` without the characters that would turn it into Markdown (bold, code)."""
    return text.replace("*", "").replace("`", "")


def title_text(text: str) -> str:
    """A title or name to set in bold inside a reply: plain, and at most 200 characters."""
    return plain(text)[:200]


def clip(text: str, limit: int = CHOICE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (at least one), an ellipsis marking the cut."""
    limit = max(limit, 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def length_text(is_stream: bool, length_ms: int) -> str:
    """A track's length as users read it: ``3:45``, or ``live`` for a stream."""
    return "live" if is_stream else duration(length_ms)


def duration(ms: int) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


# --- /history, /previous and the /queue pages --------------------------------------------------

HISTORY_TITLE = "Recently played"
HISTORY_EARLIER = "Earlier"
PAGE_BUTTONS = {"first": "First", "prev": "Previous", "next": "Next", "last": "Last"}
"""The labels of the /queue page buttons, by what each does."""


def played_line(place: int, track: str, requester_id: int, played_at_ms: int) -> str:
    """One played track in ``/history``: ``track`` (linked title, artist, length) asked for by
    whom, and how long ago it played (Discord renders the relative time in the reader's
    language and keeps it current)."""
    return f"`{place}.` {track} · asked by <@{requester_id}> · <t:{played_at_ms // 1000}:R>"


def previous_text(outcome: PreviousOutcome, track: str) -> str:
    """The answer to ``/previous``: what plays again (``track`` is its line) and what is next."""
    text = f"Playing again from the start: {track}."
    if outcome.pushed_back is not None:
        title = plain(outcome.pushed_back.title)
        text += f" **{clip(title, 200)}** is next up."
    if outcome.problem is not None:
        text += " " + error_text(outcome.problem)
    return text


def page_text(page: int, pages: int) -> str:
    return f"page {page} of {pages}"
