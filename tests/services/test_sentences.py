"""Every typed outcome of the service becomes the exact sentence users have always read."""

from __future__ import annotations

import typing

import pytest

from bot.extensions.music import _render_skip
from bot.extensions.sentences import (
    announcement_text,
    controller_status,
    error_text,
    left_out_text,
)
from bot.services import SkipOutcome
from bot.services import errors as e
from bot.services import notices as n
from bot.services.views import LeftOut, VoteCounted
from bot.storage import QueueEntry

ERRORS: list[tuple[e.ServiceError, str]] = [
    (e.EmptyQuery(), "Tell me what to play: a song name or a link."),
    (e.QueryTooLong(500), "That's too long. Keep it under 500 characters."),
    (e.EmptySearch(), "Tell me what to search for after the prefix."),
    (e.NotALink(), "I can only play songs by name or from http(s) links."),
    (e.BadLink(), "That link doesn't look right. Check it and try again."),
    (e.LinkWithCredentials(), "Links with a user name or password in them aren't allowed."),
    (e.PrivateAddress(), "I can't play links to private addresses."),
    (e.UnknownHost("nowhere.example.org"), "I couldn't find the website `nowhere.example.org`."),
    (e.NoVoiceChannel(), "Join a voice channel first, then ask me again."),
    (e.GuildGone(), "I'm no longer in this server."),
    (e.PlayingElsewhere(501), "I'm already playing in <#501>. Join me there."),
    (e.NotInBotChannel(500, e.Action.SKIP), "Join my voice channel <#500> to skip."),
    (e.NotInBotChannel(500, e.Action.PAUSE), "Join my voice channel <#500> to pause."),
    (e.NotInBotChannel(500, e.Action.RESUME), "Join my voice channel <#500> to resume."),
    (
        e.NotInBotChannel(500, e.Action.VOLUME),
        "Join my voice channel <#500> to change the volume.",
    ),
    (
        e.NotInBotChannel(500, e.Action.LOOP),
        "Join my voice channel <#500> to change the loop mode.",
    ),
    (
        e.NotInBotChannel(500, e.Action.FILTER),
        "Join my voice channel <#500> to change the filters.",
    ),
    (
        e.QueueFull(10_000),
        "The queue is full: this server allows 10000 songs in it. Skip some first.",
    ),
    (
        e.TrackTooLong(600_000, 3_723_000),
        "That song is 1:02:03 long: this server allows songs of up to 10:00.",
    ),
    (
        e.ShareFull(25, 1),
        "You've filled your share of the queue: each member may have at most 1 song waiting "
        "here (25% of the queue). Wait until some play.",
    ),
    (
        e.NotManager(),
        "Only members with the Manage Server permission can see or change my settings.",
    ),
    (
        e.SettingOutOfRange(e.Setting.VOLUME, 0, 200),
        "The default volume goes from 0 to 200 (100 is the song as recorded).",
    ),
    (
        e.SettingOutOfRange(e.Setting.IDLE_TIMEOUT, 0, 86_400),
        "The idle timeout goes from 0:00 to 24:00:00.",
    ),
    (
        e.SettingOutOfRange(e.Setting.QUEUE_LENGTH, 1, 10_000),
        "The queue limit goes from 1 to 10000 songs.",
    ),
    (
        e.SettingOutOfRange(e.Setting.TRACK_LENGTH, 10_000, None),
        "The song length limit must be at least 0:10.",
    ),
    (
        e.SettingOutOfRange(e.Setting.USER_SHARE, 1, 100),
        "Each member's share goes from 1 to 100 % of the queue.",
    ),
    (
        e.SettingOutOfRange(e.Setting.VOTE_SKIP, 0, 100),
        "The vote-skip share goes from 0 to 100 % of the listeners.",
    ),
    (
        e.BadLength("soon"),
        "I can't read `soon` as a length. Use seconds (`90`), minutes and seconds (`1:30`) or "
        "hours too (`1:00:00`).",
    ),
    (e.NotInBotChannel(500, e.Action.REMOVE), "Join my voice channel <#500> to remove songs."),
    (e.NotInBotChannel(500, e.Action.MOVE), "Join my voice channel <#500> to move songs."),
    (
        e.NotInBotChannel(500, e.Action.SHUFFLE),
        "Join my voice channel <#500> to shuffle the queue.",
    ),
    (e.NotInBotChannel(500, e.Action.CLEAR), "Join my voice channel <#500> to clear the queue."),
    (e.NothingQueued(), "Nothing is queued after the current song."),
    (e.NoHistory(), "No song has played here yet. Songs show up here once they have played."),
    (
        e.NoHistory(going_back=True),
        "No song has played here yet, so there is nothing to go back to.",
    ),
    (
        e.NotInBotChannel(500, e.Action.PREVIOUS),
        "Join my voice channel <#500> to play the previous song.",
    ),
    (
        e.NoSuchPosition(7, 5),
        "There's no song at position 7: the queue has songs 1 to 5.",
    ),
    (
        e.NoSuchPosition(2, 1),
        "There's no song at position 2: the queue has only one song, at position 1.",
    ),
    (
        e.BackwardRange(7, 3),
        "That range runs backwards (7 to 3). Put the smaller number first.",
    ),
    (e.SamePosition(3), "That song is at position 3 already."),
    (e.TooFewToShuffle(), "Only one song is queued, so there is nothing to shuffle."),
    (
        e.PlayerEnded(),
        "This player has ended, so its buttons do nothing any more. "
        "Use /play to start the music again.",
    ),
    (
        e.SaveFailed(e.Unsaved.REMOVE),
        "I couldn't save the queue just now, so nothing was removed.",
    ),
    (e.SaveFailed(e.Unsaved.MOVE), "I couldn't save the queue just now, so nothing was moved."),
    (
        e.SaveFailed(e.Unsaved.SHUFFLE),
        "I couldn't save the queue just now, so it wasn't shuffled.",
    ),
    (
        e.SaveFailed(e.Unsaved.CLEAR),
        "I couldn't save the queue just now, so nothing was cleared.",
    ),
    (
        e.SaveFailed(e.Unsaved.PREVIOUS),
        "I couldn't reach the list of played songs just now, so nothing was changed.",
    ),
    (e.NothingFound(), "I found nothing for that. Try other words or a link."),
    (e.LoadFailed("This video is private"), "I couldn't load that: This video is private."),
    (e.LoadFailed(None), "I couldn't load that: unknown error."),
    (e.SearchFailed(), "The music server had a problem finding that. Try again in a moment."),
    (
        e.ServerUnreachable(),
        "The music server is unreachable right now. Try again in a moment.",
    ),
    (
        e.ServerUnreachable(nothing_added=True),
        "The music server is unreachable right now, so nothing was added. Try again in a moment.",
    ),
    (
        e.VoiceJoinFailed(lavalink_refused=False),
        "I couldn't join your voice channel, so nothing was added. "
        "Check that I may connect and speak there.",
    ),
    (
        e.VoiceJoinFailed(lavalink_refused=True),
        "The music server couldn't take my voice connection just now, so nothing was added. "
        "Try again in a moment.",
    ),
    (
        e.SaveFailed(e.Unsaved.ADD),
        "I couldn't save the queue just now, so nothing was added.",
    ),
    (
        e.SaveFailed(e.Unsaved.SKIP),
        "I couldn't save the queue just now, so nothing was skipped.",
    ),
    (e.SaveFailed(e.Unsaved.CHANGE), "I couldn't save that just now, so nothing was changed."),
    (e.NothingPlaying(), "Nothing is playing right now."),
    (e.AlreadyPaused(), "It's already paused."),
    (e.NotPaused(), "It isn't paused."),
    (
        e.VolumeOutOfRange(200),
        "Volume goes from 0 to 200 (100 is the song as recorded); louder than that only distorts.",
    ),
    (
        e.UnknownFilter("loud", ("off", "bassboost")),
        "I don't know the filter 'loud'. Pick one of: off, bassboost.",
    ),
    (
        e.WaitingForServer(),
        "The music server is unreachable right now. Your song is kept in the queue and will "
        "play when the server is back.",
    ),
    (
        e.PlaybackRefused("Song"),
        "The music server couldn't play **Song**. It stays in the queue: use /play to try "
        "again, or /skip it.",
    ),
    (e.StopRefused(), "The music server didn't stop the song, so I left the voice channel."),
    # /seek, /stop, /leave
    (e.NotInBotChannel(500, e.Action.SEEK), "Join my voice channel <#500> to seek."),
    (e.NotInBotChannel(500, e.Action.STOP), "Join my voice channel <#500> to stop the music."),
    (e.NotInBotChannel(500, e.Action.LEAVE), "Join my voice channel <#500> to make me leave."),
    (
        e.NotInBotChannel(500, e.Action.SKIP_TO),
        "Join my voice channel <#500> to skip ahead in the queue.",
    ),
    (
        e.NotDJ(900, e.Action.STOP),
        "You need the DJ role <@&900> (or Manage Server) to stop the music.",
    ),
    (
        e.NotDJ(900, e.Action.REMOVE),
        "You need the DJ role <@&900> (or Manage Server) to remove songs other people asked for.",
    ),
    (
        e.NotDJ(900, e.Action.SKIP),
        "You need the DJ role <@&900> (or Manage Server) to skip other people's songs while "
        "I'm not in a voice channel.",
    ),
    (
        e.NotDJ(900, e.Action.PLAY_NEXT),
        "You need the DJ role <@&900> (or Manage Server) to put songs first in the queue.",
    ),
    (
        e.NotDJ(900, e.Action.PREVIOUS),
        "You need the DJ role <@&900> (or Manage Server) to play the previous song.",
    ),
    (
        e.SaveFailed(e.Unsaved.SEEK),
        "I couldn't save the new position just now, so the song stays where it was.",
    ),
    (
        e.SaveFailed(e.Unsaved.STOP),
        "I couldn't save the queue just now, so nothing was stopped or cleared.",
    ),
    (
        e.SaveFailed(e.Unsaved.LEAVE),
        "I couldn't save the queue just now, so I stayed and nothing was cleared.",
    ),
    (
        e.BadTimecode("1:2"),
        "I can't read `1:2` as a time. Use seconds (`83`), minutes and seconds (`1:23`) or "
        "hours too (`1:02:03`); put `+` or `-` in front to jump forward or back from where "
        "the song is (`+10`, `-1:00`).",
    ),
    (e.LiveStream(), "This is a live stream: there is no position to jump to."),
    (e.NotSeekable(), "This song's source doesn't allow jumping to another position."),
    (
        e.PastTheEnd(3_723_000),
        "The song is 1:02:03 long: pick a time before its end, or use /skip to move on.",
    ),
    (
        e.SeekRefused(),
        "The music server didn't take the new position, so the song stays where it was.",
    ),
    (e.NotInVoice(), "I'm not in a voice channel, and the queue is empty."),
]

ANNOUNCEMENTS: list[tuple[n.Announcement, str]] = [
    (n.QueueFinished(), "The queue is finished."),
    (n.TrackFailed("Song", "403 Forbidden"), "Couldn't play **Song**: 403 Forbidden."),
    (n.TrackFailed("Song", None), "Couldn't play **Song**: unknown error."),
    (
        n.StoppedUnsaved("Song"),
        "I couldn't save the queue, so I stopped after **Song**. Use /skip to go on.",
    ),
    (n.StuckSkipped("Song"), "**Song** got stuck, so I skipped it."),
    (
        n.StuckSkipped("Song", e.PlaybackRefused("Next")),
        "**Song** got stuck, so I skipped it. The music server couldn't play **Next**. It "
        "stays in the queue: use /play to try again, or /skip it.",
    ),
    (n.StuckUnsaved("Song"), "**Song** got stuck, and I couldn't save the queue to skip it."),
    (
        n.PlaybackTrouble(e.StopRefused()),
        "The music server didn't stop the song, so I left the voice channel.",
    ),
    (
        n.NodeLostNotice(),
        "I lost the music server. The queue is kept; I'll be back when it returns.",
    ),
    (n.BackPlaying("Song"), "I'm back. Playing **Song** again."),
    (
        n.VoiceLost(),
        "I was disconnected from voice. The queue is kept: use /play to bring me back.",
    ),
    (
        n.VoiceUnstable(500),
        "I couldn't keep a voice connection in <#500>. The queue is kept: use /play to try again.",
    ),
    (
        n.RejoinFailed(500),
        "I lost my voice connection in <#500> and couldn't get back in. The queue is kept: "
        "use /play to carry on.",
    ),
    (
        n.ChannelGone(),
        "My voice channel was deleted, so the music stopped. The queue is kept: use /play in "
        "another channel to carry on.",
    ),
    (
        n.LeftAlone(500),
        "Everyone left <#500>, so I left too. The queue is kept: use /play to carry on.",
    ),
    (n.LeftIdle(500), "Nothing more was queued, so I left <#500>. Use /play to start again."),
    (
        n.VoteSkipped("Old", "New"),
        "Enough of those still listening voted, so I skipped **Old**. Now playing **New**.",
    ),
]


def _concrete(base: type[e.ServiceError]) -> set[type[e.ServiceError]]:
    found = set()
    for sub in base.__subclasses__():
        if sub.__module__ == e.__name__:  # not the stand-in a test below defines
            found.add(sub)
        found |= _concrete(sub)
    return found


@pytest.mark.parametrize(("error", "sentence"), ERRORS, ids=lambda v: type(v).__name__)
def test_each_error_reads_as_before(error: e.ServiceError, sentence: str) -> None:
    assert error_text(error) == sentence


@pytest.mark.parametrize(("notice", "sentence"), ANNOUNCEMENTS, ids=lambda v: type(v).__name__)
def test_each_announcement_reads_as_before(notice: n.Announcement, sentence: str) -> None:
    assert announcement_text(notice) == sentence


def test_every_error_and_announcement_has_a_sentence_here() -> None:
    assert _concrete(e.ServiceError) == {type(error) for error, _ in ERRORS}
    assert set(typing.get_args(n.Announcement)) == {type(notice) for notice, _ in ANNOUNCEMENTS}


def test_an_error_without_a_sentence_is_a_bug_not_a_blank_reply() -> None:
    class Unheard(e.ServiceError):
        pass

    with pytest.raises(TypeError):
        error_text(Unheard())


def test_what_users_typed_is_quoted_short_and_harmless() -> None:
    assert error_text(e.BadTimecode("`@everyone` " + "9" * 50)).startswith(
        "I can't read `'@everyone' 99999999` as a time."
    )
    assert error_text(e.BadTimecode("   ")).startswith("I can't read that as a time.")


def test_a_skip_lavalink_did_not_follow_says_what_happened_instead() -> None:
    skipped = QueueEntry(
        "enc", "Old", "Artist", 1000, False, None, 1, id=1, sort_key=1, added_at_ms=0
    )
    outcome = SkipOutcome(skipped, None, problem=e.StopRefused())
    assert _render_skip(outcome) == (
        "Skipped **Old**. The music server didn't stop the song, so I left the voice channel."
    )


def test_a_skip_ahead_says_how_many_it_passed() -> None:
    def entry(title: str) -> QueueEntry:
        return QueueEntry("enc", title, "Artist", 1000, False, None, 1, id=1, sort_key=1,
                          added_at_ms=0)  # fmt: skip

    one = SkipOutcome(entry("Old"), entry("New"), passed=1)
    assert _render_skip(one).startswith("Skipped **Old** and the next one. Now playing New")
    three = SkipOutcome(entry("Old"), entry("New"), passed=3)
    assert _render_skip(three).startswith("Skipped **Old** and the 3 after it. Now playing New")


def test_a_vote_says_the_count_and_a_passed_one_what_it_skipped() -> None:
    def entry(title: str) -> QueueEntry:
        return QueueEntry("enc", title, "Artist", 1000, False, None, 1, id=1, sort_key=1,
                          added_at_ms=0)  # fmt: skip

    assert _render_skip(VoteCounted(entry("Old *x*"), 2, 3)) == (
        "Vote to skip **Old x**: 2 of 3 needed."
    )
    assert _render_skip(VoteCounted(entry("Old"), 1, 2, again=True)) == (
        "You already voted to skip **Old**: 1 of 2 needed."
    )
    passed = SkipOutcome(entry("Old"), None, vote=VoteCounted(entry("Old"), 2, 2))
    assert _render_skip(passed) == (
        "Vote passed (2 of 2 needed): Skipped **Old**. The queue is empty now."
    )


def test_a_playlist_says_how_many_songs_each_limit_left_out() -> None:
    assert left_out_text(LeftOut(1, e.TrackTooLong(240_000, 250_000))) == (
        "1 song was left out: longer than this server's limit of 4:00."
    )
    assert left_out_text(LeftOut(3, e.ShareFull(10, 5))) == (
        "3 songs were left out: each member may fill at most 10% of the queue here (5 songs)."
    )
    assert left_out_text(LeftOut(2, e.QueueFull(50))) == (
        "2 songs were left out: the queue is full (this server allows 50 songs)."
    )


def test_the_controller_says_when_the_song_ends_as_a_time_discord_counts_down() -> None:
    assert controller_status(paused=False, waiting=False, ends_at_s=1_800_000_000) == (
        "Ends <t:1800000000:R>."
    )
    assert controller_status(paused=True, waiting=False, ends_at_s=None) == (
        "⏸ Paused: press ⏯ or use /resume to go on."
    )
    assert controller_status(paused=False, waiting=False, ends_at_s=None) == "`LIVE`"
    # Waiting for the music server outranks a pause: nothing plays either way.
    assert controller_status(paused=True, waiting=True, ends_at_s=None) == (
        "Waiting for the music server: it plays on when the server is back."
    )
