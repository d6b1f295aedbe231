"""Every track the fake peers serve, in one place: the tests' named songs, a fleet's tracks,
the benchmarks' realistic YouTube tracks and their 1,000-track playlist.

A :class:`~peers.fake_lavalink.Catalogue` answers ``loadtracks`` from these; nothing else
writes a LoadResult by hand (the benchmarks' playlist answer is the catalogue's own).
"""

from __future__ import annotations

import json
from typing import Final

from peers.fake_lavalink import Catalogue
from peers.tracks import TrackInfo

__all__ = [
    "BENCH_PLAYLIST_URL",
    "FLEET_TRACK_LENGTH",
    "PLAYLIST",
    "PLAYLIST_URL",
    "RICK",
    "SHORT_SONG",
    "TAKE_ON_ME",
    "bench_catalogue",
    "bench_playlist_answer",
    "catalogue",
    "fleet_track",
    "youtube_track",
]

# --- the end-to-end tests' songs ----------------------------------------------------------

RICK = TrackInfo(
    identifier="dQw4w9WgXcQ",
    title="Rick Astley - Never Gonna Give You Up",
    author="RickAstleyVEVO",
    length=212_000,
    uri="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
)
TAKE_ON_ME = TrackInfo(
    identifier="djV11Xbc914",
    title="a-ha - Take On Me",
    author="a-ha",
    length=225_000,
    uri="https://www.youtube.com/watch?v=djV11Xbc914",
)
SHORT_SONG = TrackInfo(
    identifier="shortsong01",
    title="Short Song",
    author="Tester",
    length=3_000,
    uri="https://www.youtube.com/watch?v=shortsong01",
)
PLAYLIST_URL = "https://www.youtube.com/playlist?list=PL80s"
PLAYLIST = [
    TrackInfo(
        identifier=f"eighties{i:03}",
        title=f"Eighties Hit {i}",
        author="Various",
        length=180_000 + i,
        uri=f"https://www.youtube.com/watch?v=eighties{i:03}",
    )
    for i in range(1, 6)
]


def catalogue() -> Catalogue:
    """The songs above, two searches, the 80s playlist and one blocked video."""
    cat = Catalogue()
    for info in (RICK, TAKE_ON_ME, SHORT_SONG, *PLAYLIST):
        cat.add_track(info)
    cat.add_search("never gonna give you up", [RICK, TAKE_ON_ME])
    cat.add_search("take on me", [TAKE_ON_ME])
    cat.add_search("short song", [SHORT_SONG])
    cat.add_playlist(PLAYLIST_URL, "80s Hits", PLAYLIST)
    cat.add_error("https://www.youtube.com/watch?v=blocked0000", "This video is unavailable")
    return cat


# --- a fleet of guilds (restart tests, bench/restart.py, bench/heal.py) --------------------

FLEET_TRACK_LENGTH: Final = 1_800_000
"""30 minutes: nothing ends by itself during a test or a benchmark run."""


def fleet_track(kind: str, index: int) -> TrackInfo:
    """Guild ``index``'s ``kind`` track (``first`` plays, ``second`` is queued)."""
    identifier = f"{kind}{index:05}"
    return TrackInfo(
        identifier=identifier,
        title=f"{kind.title()} song {index}",
        author="Fleet",
        length=FLEET_TRACK_LENGTH,
        uri=f"https://www.youtube.com/watch?v={identifier}",
    )


# --- the benchmarks' tracks (bench/workload.py) ------------------------------------------

BENCH_PLAYLIST_URL: Final = "https://www.youtube.com/playlist?list=PLbench"
_BENCH_TRACK_MS: Final = 90_000


def youtube_track(guild_index: int, number: int) -> TrackInfo:
    """A realistic YouTube track (title, author, URL, artwork, sometimes an ISRC)."""
    ident = f"{guild_index:04d}{number:03d}xYz"[:11]
    return TrackInfo(
        identifier=ident,
        title=f"Never Gonna Give You Up (Official Video) [4K Remaster] part {number}",
        author=f"Rick Astley {guild_index}",
        length=_BENCH_TRACK_MS + 1_000 * (number % 60),
        is_stream=False,
        uri=f"https://www.youtube.com/watch?v={ident}",
        artwork_url=f"https://i.ytimg.com/vi/{ident}/maxresdefault.jpg",
        isrc="GBARL9300135" if number % 3 == 0 else None,
        source_name="youtube",
    )


def bench_catalogue(playlist_tracks: int = 1_000) -> Catalogue:
    """:data:`BENCH_PLAYLIST_URL`: a ``playlist_tracks``-long YouTube playlist."""
    cat = Catalogue()
    tracks = [youtube_track(n % 97, n) for n in range(playlist_tracks)]
    cat.add_playlist(BENCH_PLAYLIST_URL, "Bench Mix: 1,000 songs", tracks)
    return cat


def bench_playlist_answer(playlist_tracks: int = 1_000) -> bytes:
    """The ``loadtracks`` answer for :data:`BENCH_PLAYLIST_URL`, as a node sends it."""
    answer = bench_catalogue(playlist_tracks).load(BENCH_PLAYLIST_URL)
    return json.dumps(answer, separators=(",", ":")).encode()
