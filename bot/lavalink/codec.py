"""Local decoding of Lavalink's ``encoded`` track strings, without a REST call.

The format is lavaplayer's message format: a big-endian ``u32`` header (two flag bits, 30 bits
of body size), then the body written by Java's ``DataOutput``. Strings are Java "modified
UTF-8": NUL is ``C0 80`` and characters beyond U+FFFF are two 3-byte surrogates (CESU-8),
which Python's ``utf-8`` codec rejects, so they are decoded here.

Sources add their own bytes between ``sourceName`` and ``position`` (plugins change them
between versions), but ``position`` is always the last eight bytes of the body; reading it
from there decodes tracks of any source without knowing its layout.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Final

import msgspec

from .errors import TrackDecodeError
from .models import TrackInfo

__all__ = ["decode_track", "same_track"]

_VERSIONED: Final = 1
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_I64: Final = struct.Struct(">q")


def decode_track(encoded: str) -> TrackInfo:
    """Decode an ``encoded`` track (message versions 1 to 3) into its :class:`TrackInfo`.

    ``is_seekable`` is not stored in the string; it is derived as Lavalink does for the
    common sources (everything but streams can seek).

    Raises:
        TrackDecodeError: the string is not a track this format can describe.
    """
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrackDecodeError(f"not base64: {exc}") from None
    reader = _Reader(data)
    try:
        header = reader.u32()
        flags, size = header >> 30, header & 0x3FFFFFFF
        end = reader.offset + size
        if end > len(data) or size < 8:
            raise TrackDecodeError("the body is shorter than its header says")
        reader.limit = end
        version = reader.u8() if flags & _VERSIONED else 1
        if not 1 <= version <= 3:
            raise TrackDecodeError(f"unknown track message version {version}")
        title = reader.utf()
        author = reader.utf()
        length = reader.i64()
        identifier = reader.utf()
        is_stream = reader.u8() != 0
        uri = reader.nullable_utf() if version >= 2 else None
        artwork_url = reader.nullable_utf() if version >= 3 else None
        isrc = reader.nullable_utf() if version >= 3 else None
        source_name = reader.utf()
        if reader.offset > end - 8:
            raise TrackDecodeError("no room for the position")
        (position,) = _I64.unpack_from(data, end - 8)
    except (struct.error, IndexError):
        raise TrackDecodeError("the string ends inside a field") from None
    return TrackInfo(
        identifier=identifier,
        is_seekable=not is_stream,
        author=author,
        length=length,
        is_stream=is_stream,
        position=position,
        title=title,
        uri=uri,
        artwork_url=artwork_url,
        isrc=isrc,
        source_name=source_name,
    )


class _Reader:
    __slots__ = ("data", "limit", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        self.limit = len(data)

    def _take(self, count: int) -> bytes:
        start, self.offset = self.offset, self.offset + count
        if self.offset > self.limit:
            raise TrackDecodeError("the string ends inside a field")
        return self.data[start : self.offset]

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def i64(self) -> int:
        value: int = _I64.unpack(self._take(8))[0]
        return value

    def utf(self) -> str:
        (length,) = _U16.unpack(self._take(2))
        return _modified_utf8(self._take(length))

    def nullable_utf(self) -> str | None:
        return self.utf() if self.u8() else None


def _modified_utf8(raw: bytes) -> str:
    # The common case (ASCII and ordinary UTF-8 without NUL or astral characters) is
    # byte-identical to UTF-8; only strings with C0 80 or surrogate triplets need the slow path.
    if b"\xc0" not in raw and b"\xed" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TrackDecodeError("malformed modified UTF-8") from None
    try:
        # surrogatepass keeps CESU-8 surrogates; utf-16 then pairs them into one character.
        text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        raise TrackDecodeError("malformed modified UTF-8") from None


def same_track(first: str, second: str) -> bool:
    """Whether two encoded strings are the same track, wherever each one's position stands.

    Lavalink re-encodes a playing track with its live position, so the strings differ even
    for the same track. For servers that do not echo ``userData`` (NodeLink), this is how an
    event is matched to the track that was sent. Strings that do not decode never match.
    """
    if first == second:
        return True
    try:
        a, b = decode_track(first), decode_track(second)
    except TrackDecodeError:
        return False
    return msgspec.structs.replace(a, position=0) == msgspec.structs.replace(b, position=0)
