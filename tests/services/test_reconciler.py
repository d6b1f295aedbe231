"""The reconciler's judgement, divergence by divergence, on the client's own typed players."""

from __future__ import annotations

import pytest

from bot.lavalink import Player, PlayerState, Track, TrackInfo, VoiceState, same_track
from bot.services.reconciler import FROZEN_AFTER, Divergence, Promise, Sighting, diagnose
from bot.storage import QueueEntry
from peers.catalogue import RICK
from peers.catalogue import TAKE_ON_ME as OTHER
from peers.tracks import TrackInfo as PeerTrackInfo
from peers.tracks import encode_track, with_position

CHANNEL = 42


def _entry(info: PeerTrackInfo, entry_id: int = 7) -> QueueEntry:
    return QueueEntry(
        id=entry_id,
        sort_key=1,
        added_at_ms=0,
        encoded=encode_track(info),
        title=info.title,
        author=info.author,
        length_ms=info.length,
        is_stream=False,
        uri=info.uri,
        requester_id=5,
    )


ENTRY = _entry(RICK)
PROMISE = Promise(guild_id=1, channel_id=CHANNEL, entry=ENTRY, paused=False, changed_at=0.0)


def _player(
    info: PeerTrackInfo | None = RICK,
    *,
    position: int = 10_000,
    paused: bool = False,
    connected: bool = True,
    user_data: dict[str, object] | None = None,
) -> Player:
    track = None
    if info is not None:
        encoded = with_position(encode_track(info), position)
        track = Track(
            encoded=encoded,
            info=TrackInfo(
                identifier=info.identifier,
                is_seekable=True,
                author=info.author,
                length=info.length,
                is_stream=False,
                position=position,
                title=info.title,
                uri=info.uri,
                source_name="youtube",
            ),
            user_data={"entry": ENTRY.id} if user_data is None else user_data,
        )
    return Player(
        guild_id=1,
        track=track,
        volume=100,
        paused=paused,
        state=PlayerState(time=0, position=position, connected=connected),
        voice=VoiceState("token", "endpoint", "session", str(CHANNEL)),
    )


def _is_entry(track: Track, entry: QueueEntry) -> bool:
    tagged = track.user_data.get("entry")
    if tagged is not None:
        return bool(tagged == entry.id)
    return same_track(track.encoded, entry.encoded)


def _judge(
    player: Player | None,
    *,
    bot_channel: int | None = CHANNEL,
    earlier: Sighting | None = None,
    now: float = 100.0,
    promise: Promise = PROMISE,
) -> Divergence | None:
    return diagnose(
        promise,
        bot_channel=bot_channel,
        player=player,
        is_entry=_is_entry,
        earlier=earlier,
        now=now,
    )


def test_everything_matching_is_no_divergence() -> None:
    assert _judge(_player()) is None


@pytest.mark.parametrize(
    ("player", "bot_channel", "expected"),
    [
        (_player(), None, Divergence.VOICE_GONE),
        (_player(), CHANNEL + 1, Divergence.VOICE_MOVED),
        (None, CHANNEL, Divergence.PLAYER_GONE),
        (_player(None), CHANNEL, Divergence.WRONG_TRACK),
        (_player(user_data={"entry": ENTRY.id + 1}), CHANNEL, Divergence.WRONG_TRACK),
        (_player(paused=True), CHANNEL, Divergence.PAUSE),
        (_player(connected=False), CHANNEL, Divergence.VOICE_DOWN),
    ],
)
def test_each_divergence_is_named(
    player: Player | None, bot_channel: int | None, expected: Divergence
) -> None:
    assert _judge(player, bot_channel=bot_channel) is expected


def test_voice_is_checked_before_the_player() -> None:
    # Out of voice, a missing player is a consequence: the re-join comes first.
    assert _judge(None, bot_channel=None) is Divergence.VOICE_GONE


def test_a_server_without_user_data_is_matched_by_the_track() -> None:
    assert _judge(_player(user_data={})) is None
    assert _judge(_player(OTHER, user_data={})) is Divergence.WRONG_TRACK


def test_a_paused_promise_is_kept_paused() -> None:
    paused = Promise(1, CHANNEL, ENTRY, paused=True, changed_at=0.0)
    assert _judge(_player(paused=True), promise=paused) is None
    assert _judge(_player(paused=False), promise=paused) is Divergence.PAUSE


def test_a_position_standing_still_long_enough_is_frozen() -> None:
    standing = Sighting(None, ENTRY.id, 10_000, at=100.0)
    assert _judge(_player(), earlier=standing, now=100.0 + FROZEN_AFTER) is Divergence.FROZEN
    # Not yet long enough, moved on, another entry, or paused: not frozen.
    assert _judge(_player(), earlier=standing, now=100.0 + FROZEN_AFTER / 2) is None
    assert _judge(_player(position=10_500), earlier=standing, now=110.0) is None
    other_entry = Sighting(None, ENTRY.id + 1, 10_000, at=100.0)
    assert _judge(_player(), earlier=other_entry, now=110.0) is None
    paused = Promise(1, CHANNEL, ENTRY, paused=True, changed_at=0.0)
    assert _judge(_player(paused=True), earlier=standing, now=110.0, promise=paused) is None


def test_a_track_at_its_end_is_finishing_not_frozen() -> None:
    end = RICK.length - 200
    standing = Sighting(None, ENTRY.id, end, at=100.0)
    assert _judge(_player(position=end), earlier=standing, now=110.0) is None


def test_same_track_ignores_the_position_only() -> None:
    rick = encode_track(RICK)
    assert same_track(rick, with_position(rick, 83_000))
    assert not same_track(rick, encode_track(OTHER))
    assert not same_track(rick, "not a track")
