"""Parsing what Lavalink sends: every op, every load type, and the odd or unknown."""

from __future__ import annotations

import msgspec
import pytest

from bot.lavalink import events, models
from bot.lavalink.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RestError,
    ServerError,
    UnauthorizedError,
    rest_error_for,
)
from bot.lavalink.events import TrackEndReason, narrow_event

WIRE = msgspec.json.Decoder(models.WireOp, strict=False)
LOAD = msgspec.json.Decoder(models.LoadResult, strict=False)

TRACK = (
    b'{"encoded":"QAAAjQIAJVJpY2sgQXN0bGV5","info":{"identifier":"dQw4w9WgXcQ","isSeekable":true,'
    b'"author":"RickAstleyVEVO","length":212000,"isStream":false,"position":0,'
    b'"title":"Rick Astley - Never Gonna Give You Up","uri":"https://www.youtube.com/watch?v=dQw4w9WgXcQ",'
    b'"artworkUrl":null,"isrc":null,"sourceName":"youtube"},"pluginInfo":{},"userData":{"entry":7}}'
)


def test_ready() -> None:
    op = WIRE.decode(b'{"op":"ready","resumed":false,"sessionId":"xtaug914v9k5032f"}')
    assert op == models.Ready(resumed=False, session_id="xtaug914v9k5032f")


def test_player_update_guild_id_string_becomes_int_and_extra_keys_are_ignored() -> None:
    op = WIRE.decode(
        b'{"op":"playerUpdate","guildId":"817327181659111454","future":1,'
        b'"state":{"time":1500467109000,"position":60000,"connected":true,"ping":50}}'
    )
    assert isinstance(op, models.PlayerUpdate)
    assert op.guild_id == 817327181659111454
    assert op.state.position == 60000
    assert op.state.connected is True


def test_stats_with_null_frame_stats_and_rest_stats_without_key() -> None:
    ws = WIRE.decode(
        b'{"op":"stats","players":1,"playingPlayers":1,"uptime":123,'
        b'"memory":{"free":1,"used":2,"allocated":3,"reservable":4},'
        b'"cpu":{"cores":4,"systemLoad":0.5,"lavalinkLoad":0.05},"frameStats":null}'
    )
    assert isinstance(ws, models.Stats)
    assert ws.frame_stats is None
    assert ws.cpu.system_load == 0.5
    rest = msgspec.json.decode(
        b'{"players":0,"playingPlayers":0,"uptime":5,"memory":{},"cpu":{}}', type=models.Stats
    )
    assert rest.players == 0


@pytest.mark.parametrize(
    "frame",
    [b'{"op":"somethingNew","x":1}', b"not json", b"[1,2]", b'{"op":"playerUpdate","guildId":"x"}'],
)
def test_unknown_or_malformed_frames_raise_a_catchable_error(frame: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        WIRE.decode(frame)


def test_every_event_type_narrows() -> None:
    base = b'{"op":"event","guildId":"5","track":' + TRACK
    cases = {
        b',"type":"TrackStartEvent"}': events.TrackStartEvent,
        b',"type":"TrackEndEvent","reason":"loadFailed"}': events.TrackEndEvent,
        (
            b',"type":"TrackExceptionEvent",'
            b'"exception":{"message":"m","severity":"common","cause":"c"}}'
        ): events.TrackExceptionEvent,
        b',"type":"TrackStuckEvent","thresholdMs":10000}': events.TrackStuckEvent,
    }
    for tail, kind in cases.items():
        raw = WIRE.decode(base + tail)
        assert isinstance(raw, models.RawEvent)
        event = narrow_event(raw)
        assert isinstance(event, kind)
        assert event.guild_id == 5
    closed = WIRE.decode(
        b'{"op":"event","type":"WebSocketClosedEvent","guildId":"5","code":4014,'
        b'"reason":"","byRemote":true}'
    )
    assert isinstance(closed, models.RawEvent)
    assert narrow_event(closed) == events.WebSocketClosedEvent(5, 4014, "", True)


def test_track_end_carries_user_data_and_reason_rules() -> None:
    raw = WIRE.decode(
        b'{"op":"event","type":"TrackEndEvent","guildId":"5","reason":"finished","track":'
        + TRACK
        + b"}"
    )
    assert isinstance(raw, models.RawEvent)
    event = narrow_event(raw)
    assert isinstance(event, events.TrackEndEvent)
    assert event.track.user_data == {"entry": 7}
    assert [r.value for r in TrackEndReason if r.may_start_next] == ["finished", "loadFailed"]


def test_unknown_event_type_or_reason_is_ignored() -> None:
    for frame in (
        b'{"op":"event","type":"FutureEvent","guildId":"5"}',
        b'{"op":"event","type":"TrackEndEvent","guildId":"5","reason":"vanished","track":'
        + TRACK
        + b"}",
        b'{"op":"event","type":"TrackStartEvent","guildId":"5"}',
    ):
        raw = WIRE.decode(frame)
        assert isinstance(raw, models.RawEvent)
        assert narrow_event(raw) is None


def test_all_five_load_types() -> None:
    track = LOAD.decode(b'{"loadType":"track","data":' + TRACK + b"}")
    assert isinstance(track, models.TrackResult)
    assert track.data.info.length == 212000
    playlist = LOAD.decode(
        b'{"loadType":"playlist","data":{"info":{"name":"Mix","selectedTrack":-1},"pluginInfo":{},'
        b'"tracks":[' + TRACK + b"," + TRACK + b"]}}"
    )
    assert isinstance(playlist, models.PlaylistResult)
    assert playlist.data.info.name == "Mix"
    assert len(playlist.data.tracks) == 2
    search = LOAD.decode(b'{"loadType":"search","data":[]}')
    assert search == models.SearchResult(data=())
    assert LOAD.decode(b'{"loadType":"empty","data":null}') == models.EmptyResult()
    assert isinstance(LOAD.decode(b'{"loadType":"empty","data":{}}'), models.EmptyResult)
    error = LOAD.decode(
        b'{"loadType":"error","data":{"message":"This video is unavailable","severity":"common",'
        b'"cause":"x","causeStackTrace":"y"}}'
    )
    assert isinstance(error, models.ErrorResult)
    assert error.data.message == "This video is unavailable"


def test_track_without_plugin_info_is_accepted() -> None:
    # Lavalink 4.0.1 briefly omitted pluginInfo.
    bare = TRACK.replace(b',"pluginInfo":{}', b"")
    track = msgspec.json.decode(bare, type=models.Track)
    assert track.plugin_info == {}


def test_update_player_sends_only_what_was_set() -> None:
    encode = msgspec.json.encode
    assert encode(models.UpdatePlayer()) == b"{}"
    assert encode(models.UpdatePlayer(track=models.TrackUpdate(encoded=None))) == (
        b'{"track":{"encoded":null}}'
    )
    body = msgspec.json.decode(
        encode(
            models.UpdatePlayer(
                track=models.TrackUpdate(encoded="QAAA", user_data={"entry": 1}),
                position=1500,
                paused=False,
                voice=models.VoiceState("tok", "host:443", "sess", "42"),
            )
        )
    )
    assert body == {
        "track": {"encoded": "QAAA", "userData": {"entry": 1}},
        "position": 1500,
        "paused": False,
        "voice": {"token": "tok", "endpoint": "host:443", "sessionId": "sess", "channelId": "42"},
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (500, ServerError),
        (503, ServerError),
        (418, RestError),
    ],
)
def test_rest_errors_are_distinct(status: int, kind: type[RestError]) -> None:
    error = rest_error_for(status, "Session not found", "/v4/sessions/x")
    assert type(error) is kind
    assert error.status == status
    assert "Session not found" in str(error)
