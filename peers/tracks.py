"""Lavalink track objects and lavaplayer's binary ``encoded`` track format, for the test peers.

The fake Lavalink must hand out ``encoded`` strings a real node would accept and read back the
ones a client sends, so this module implements lavaplayer's message format independently of the
project's own decoder (``bot.lavalink.codec``); a shared bug would otherwise go unnoticed.

Format (lavaplayer ``DefaultAudioPlayerManager.encodeTrack`` through ``MessageOutput``, then
standard Base64 with padding)::

    u32 header            bits 31..30 = flags, bits 29..0 = body size in bytes
    body:
      u8   version        only if (flags & 1) ("TRACK_INFO_VERSIONED"); otherwise version 1
      utf  title
      utf  author
      i64  length         ms; Long.MAX_VALUE for streams
      utf  identifier
      bool isStream
      nullable_utf uri         version >= 2
      nullable_utf artworkUrl  version >= 3
      nullable_utf isrc        version >= 3
      utf  sourceName
      ...  source-specific bytes (http/local write a probe name; plugins write their own)
      i64  position       ms; always the LAST 8 bytes of the body

Integers are big-endian (Java ``DataOutput``). ``utf`` is ``writeUTF``: a ``u16`` byte count and
Java *modified* UTF-8 -- U+0000 is ``C0 80`` and characters beyond U+FFFF are written as their
two UTF-16 surrogates, each encoded in 3 bytes (CESU-8). Python's ``utf-8`` codec rejects both,
so they are handled by hand here. ``nullable_utf`` is a ``bool`` present-flag then ``utf``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, replace
from typing import Any, Final

__all__ = [
    "STREAM_LENGTH",
    "TrackDecodeError",
    "TrackInfo",
    "at_position",
    "decode_track",
    "encode_track",
    "track_json",
    "with_position",
]

STREAM_LENGTH: Final = 2**63 - 1
"""``length`` of a live stream: Java ``Long.MAX_VALUE`` ("unknown")."""

_VERSIONED: Final = 1
_VERSION: Final = 3
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_I64: Final = struct.Struct(">q")
_SIZE_MASK: Final = 0x3FFFFFFF


class TrackDecodeError(ValueError):
    """The string is not a lavaplayer track message (bad Base64, truncated, unknown version)."""


@dataclass(frozen=True)
class TrackInfo:
    """What lavaplayer stores in an ``encoded`` track (``isSeekable`` is derived, not stored)."""

    identifier: str
    title: str
    author: str
    length: int
    is_stream: bool = False
    uri: str | None = None
    artwork_url: str | None = None
    isrc: str | None = None
    source_name: str = "youtube"
    position: int = 0


# --- modified UTF-8 -------------------------------------------------------------------------


def _mutf8_encode(text: str) -> bytes:
    """Java ``DataOutput.writeUTF`` body: UTF-16 code units, NUL as C0 80, no 4-byte forms."""
    out = bytearray()
    units = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(units), 2):
        unit = (units[i] << 8) | units[i + 1]
        if 0 < unit < 0x80:
            out.append(unit)
        elif unit < 0x800:  # includes U+0000 -> C0 80
            out += bytes((0xC0 | (unit >> 6), 0x80 | (unit & 0x3F)))
        else:
            out += bytes((0xE0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3F), 0x80 | (unit & 0x3F)))
    return bytes(out)


def _mutf8_decode(data: bytes) -> str:
    """Inverse of :func:`_mutf8_encode`; also accepts surrogates paired across two sequences."""
    units: list[int] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            units.append(b)
            i += 1
        elif b & 0xE0 == 0xC0 and i + 1 < n and data[i + 1] & 0xC0 == 0x80:
            units.append(((b & 0x1F) << 6) | (data[i + 1] & 0x3F))
            i += 2
        elif (
            b & 0xF0 == 0xE0
            and i + 2 < n
            and data[i + 1] & 0xC0 == 0x80
            and data[i + 2] & 0xC0 == 0x80
        ):
            units.append(((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F))
            i += 3
        else:
            raise TrackDecodeError(f"malformed modified UTF-8 at byte {i}")
    raw = b"".join(u.to_bytes(2, "big") for u in units)
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError:  # a lone surrogate: Java allows it, keep it visible
        return raw.decode("utf-16-be", "surrogatepass")


# --- writer / reader ------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, value: int) -> None:
        self.buf.append(value)

    def i64(self, value: int) -> None:
        self.buf += _I64.pack(value)

    def utf(self, text: str) -> None:
        data = _mutf8_encode(text)
        if len(data) > 0xFFFF:
            raise ValueError("string too long for writeUTF (65535 bytes max)")
        self.buf += _U16.pack(len(data)) + data

    def nullable_utf(self, text: str | None) -> None:
        self.u8(text is not None)
        if text is not None:
            self.utf(text)


class _Reader:
    def __init__(self, data: bytes, offset: int, limit: int) -> None:
        self.data, self.offset, self.limit = data, offset, limit

    def take(self, n: int) -> bytes:
        if self.offset + n > self.limit:
            raise TrackDecodeError("track message is truncated")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def i64(self) -> int:
        value: int = _I64.unpack(self.take(8))[0]
        return value

    def utf(self) -> str:
        (size,) = _U16.unpack(self.take(2))
        return _mutf8_decode(self.take(size))

    def nullable_utf(self) -> str | None:
        return self.utf() if self.u8() else None


# --- public API -----------------------------------------------------------------------------


def encode_track(info: TrackInfo) -> str:
    """Encode ``info`` as lavaplayer does today: flags 1, message version 3.

    No source-specific bytes are written, which is exactly right for ``youtube``, ``soundcloud``,
    ``bandcamp``, ``twitch``, ``vimeo``; ``http``/``local`` would carry a probe name that the fake
    never needs.
    """
    w = _Writer()
    w.u8(_VERSION)
    w.utf(info.title)
    w.utf(info.author)
    w.i64(info.length)
    w.utf(info.identifier)
    w.u8(1 if info.is_stream else 0)
    w.nullable_utf(info.uri)
    w.nullable_utf(info.artwork_url)
    w.nullable_utf(info.isrc)
    w.utf(info.source_name)
    w.i64(info.position)
    header = _U32.pack(len(w.buf) | (_VERSIONED << 30))
    return base64.b64encode(header + bytes(w.buf)).decode("ascii")


def _body(encoded: str) -> tuple[bytes, int, int, int]:
    """Base64-decode and split the header: (data, flags, body start, body end)."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrackDecodeError(f"not base64: {exc}") from None
    if len(data) < 4:
        raise TrackDecodeError("track message is shorter than its header")
    (header,) = _U32.unpack(data[:4])
    flags, size = header >> 30, header & _SIZE_MASK
    if 4 + size > len(data) or size < 8:
        raise TrackDecodeError("track body is shorter than its header says")
    return data, flags, 4, 4 + size


def decode_track(encoded: str) -> TrackInfo:
    """Decode message versions 1-3; trailing bytes after the body are ignored like lavaplayer.

    Source-specific bytes between ``sourceName`` and ``position`` are skipped: ``position`` is
    read from the last 8 bytes of the body, which decodes tracks of any source or plugin.
    """
    data, flags, start, end = _body(encoded)
    r = _Reader(data, start, end)
    version = r.u8() if flags & _VERSIONED else 1
    if not 1 <= version <= _VERSION:
        raise TrackDecodeError(f"unknown track message version {version}")
    title = r.utf()
    author = r.utf()
    length = r.i64()
    identifier = r.utf()
    is_stream = r.u8() != 0
    uri = r.nullable_utf() if version >= 2 else None
    artwork_url = r.nullable_utf() if version >= 3 else None
    isrc = r.nullable_utf() if version >= 3 else None
    source_name = r.utf()
    if r.offset > end - 8:
        raise TrackDecodeError("track body has no room for its position")
    (position,) = _I64.unpack(data[end - 8 : end])
    return TrackInfo(
        identifier=identifier,
        title=title,
        author=author,
        length=length,
        is_stream=is_stream,
        uri=uri,
        artwork_url=artwork_url,
        isrc=isrc,
        source_name=source_name,
        position=position,
    )


def with_position(encoded: str, position: int) -> str:
    """Rewrite the ``position`` of an encoded track, keeping every other byte.

    lavaplayer's encoder writes ``track.getPosition()``, so a real node's Track objects carry the
    *current* position in ``encoded`` (and thus change while a track plays). Patching the last
    8 bytes of the body keeps source-specific bytes this module does not understand.
    """
    data, _flags, _start, end = _body(encoded)
    patched = data[: end - 8] + _I64.pack(position) + data[end:]
    return base64.b64encode(patched).decode("ascii")


def track_json(
    info: TrackInfo, user_data: dict[str, Any] | None = None, encoded: str | None = None
) -> dict[str, Any]:
    """The Lavalink Track object: ``{encoded, info, pluginInfo, userData}``.

    ``isSeekable`` is not stored in ``encoded``; for the built-in sources it is ``not isStream``.
    ``pluginInfo`` and ``userData`` are always present (``{}`` when empty) since Lavalink 4.0.2.
    ``encoded`` defaults to :func:`encode_track` of ``info``.
    """
    return {
        "encoded": encoded if encoded is not None else encode_track(info),
        "info": {
            "identifier": info.identifier,
            "isSeekable": not info.is_stream,
            "author": info.author,
            "length": info.length,
            "isStream": info.is_stream,
            "position": info.position,
            "title": info.title,
            "uri": info.uri,
            "artworkUrl": info.artwork_url,
            "isrc": info.isrc,
            "sourceName": info.source_name,
        },
        "pluginInfo": {},
        "userData": dict(user_data) if user_data else {},
    }


def at_position(info: TrackInfo, position: int) -> TrackInfo:
    """``info`` with a different ``position`` (for live Track objects)."""
    return replace(info, position=position)
