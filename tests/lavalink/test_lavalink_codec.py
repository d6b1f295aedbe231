"""Local decoding of ``encoded`` tracks, checked against real strings and the fake's encoder.

The fake Lavalink's encoder (``peers/tracks.py``) is written independently from the
client's decoder, so a round trip through both catches a mistake in either.
"""

from __future__ import annotations

import base64
import struct

import pytest

from bot.lavalink import TrackDecodeError, decode_track
from peers.tracks import TrackInfo as PeerTrack
from peers.tracks import encode_track

# The example from Lavalink's own documentation: message version 2.
DOCS_EXAMPLE = (
    "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAA"
    "C2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUA"
    "AAAAAAAAAA=="
)


def test_the_documentation_example_decodes() -> None:
    info = decode_track(DOCS_EXAMPLE)
    assert info.title == "Rick Astley - Never Gonna Give You Up"
    assert info.author == "RickAstleyVEVO"
    assert info.length == 212_000
    assert info.identifier == "dQw4w9WgXcQ"
    assert info.uri == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert info.source_name == "youtube"
    assert info.position == 0
    assert info.artwork_url is None
    assert not info.is_stream


@pytest.mark.parametrize(
    "title",
    [
        "plain ascii",
        "caf\u00e9 \u00fcber \u65e5\u672c",  # 2- and 3-byte characters
        "nul\x00inside",  # modified UTF-8 writes NUL as C0 80
        "emoji \U0001f3b5 and \U0001d11e",  # astral: two 3-byte surrogates each
        "",
    ],
)
def test_round_trip_through_the_fakes_encoder(title: str) -> None:
    peer = PeerTrack(
        identifier="id\x00\U0001f600",
        title=title,
        author="Author \U0001f3a4",
        length=123_456,
        uri="https://example.com/\u00e9",
        artwork_url="https://img.example.com/a.jpg",
        isrc="USRC17607839",
        position=42_000,
    )
    info = decode_track(encode_track(peer))
    assert (info.title, info.author, info.identifier) == (peer.title, peer.author, peer.identifier)
    assert (info.length, info.position, info.uri) == (peer.length, peer.position, peer.uri)
    assert (info.artwork_url, info.isrc) == (peer.artwork_url, peer.isrc)
    assert info.source_name == "youtube"


def test_a_stream_keeps_its_flag_and_length() -> None:
    peer = PeerTrack(
        identifier="live", title="Radio", author="DJ", length=2**63 - 1, is_stream=True
    )
    info = decode_track(encode_track(peer))
    assert info.is_stream
    assert not info.is_seekable
    assert info.length == 2**63 - 1


def _utf(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _message(body: bytes, flags: int = 1) -> str:
    return base64.b64encode(struct.pack(">I", len(body) | flags << 30) + body).decode()


def test_plugin_bytes_before_the_position_are_skipped() -> None:
    # A LavaSrc-like source writes its own fields between sourceName and position.
    plugin_fields = b"\x01" + _utf("https://open.spotify.com/album/x") + b"\x00\x01" + _utf("y")
    body = (
        b"\x03"
        + _utf("Song")
        + _utf("Band")
        + struct.pack(">q", 200_000)
        + _utf("spotify-id")
        + b"\x00"
        + b"\x01"
        + _utf("https://open.spotify.com/track/1")
        + b"\x00"
        + b"\x00"
        + _utf("spotify")
        + plugin_fields
        + struct.pack(">q", 1_500)
    )
    info = decode_track(_message(body))
    assert info.source_name == "spotify"
    assert info.position == 1_500
    assert info.uri == "https://open.spotify.com/track/1"


def test_version_1_has_no_uri_and_http_probe_info_is_skipped() -> None:
    body = (
        _utf("Old")
        + _utf("Timer")
        + struct.pack(">q", 1_000)
        + _utf("http://x/y.mp3")
        + b"\x00"
        + _utf("http")
        + _utf("mp3")
        + struct.pack(">q", 0)
    )
    info = decode_track(_message(body, flags=0))
    assert info.title == "Old"
    assert info.uri is None
    assert info.source_name == "http"


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64!",
        "",
        base64.b64encode(b"\x40\x00\x00\xff\x03").decode(),  # header promises more than there is
        _message(b"\x09" + _utf("x") * 4 + b"\x00" * 16),  # unknown version
        _message(b"\x03" + b"\x00\x10abc" + b"\x00" * 8),  # string runs past the body
    ],
)
def test_garbage_is_a_typed_error_not_a_crash(encoded: str) -> None:
    with pytest.raises(TrackDecodeError):
        decode_track(encoded)
