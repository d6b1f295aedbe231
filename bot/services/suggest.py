"""Search results offered to pick from: as ``/play`` is typed (Discord's autocomplete) and
for ``/search``.

Discord sends a request for nearly every keystroke and shows only the answer to the newest, which
must come within 3 s. So a request waits a moment (:data:`DEBOUNCE`) and gives up if the same
user typed on meanwhile; answers are cached for a few minutes (a cached one comes back at once,
without the wait); a search that takes too long or fails gives no suggestions rather than an
error, because a suggestion is a convenience and ``/play`` with the typed words still works.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot import lavalink

from .errors import NothingFound, SearchFailed, ServerUnreachable, ServiceError
from .query import QueryResolver

__all__ = ["DEBOUNCE", "MAX_SUGGESTIONS", "Searcher", "Suggester", "Suggestion", "fetch"]

_log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 25
"""Discord shows at most 25 choices."""
DEBOUNCE = 0.3
"""Seconds a search waits for the user to stop typing."""
SEARCH_BUDGET = 2.0
"""Seconds a search may take; Discord drops an answer later than 3 s after the keystroke."""
CACHE_SECONDS = 300.0
CACHE_SIZE = 2048


class Searcher(Protocol):
    async def load_tracks(self, identifier: str) -> lavalink.LoadResult: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Suggestion:
    """One search result offered while typing; ``link`` is what ``/play`` then receives."""

    title: str
    author: str
    length_ms: int
    is_stream: bool
    link: str | None
    """The track's own URL (``None``: it has none; then its words are searched again)."""
    typed: bool = False
    """Not a search result: the link the user typed, offered as itself."""


class Suggester:
    """Suggestions for what a user is typing, cached and debounced per user."""

    def __init__(
        self,
        searcher: Searcher,
        queries: QueryResolver | None = None,
        *,
        debounce: float = DEBOUNCE,
        budget: float = SEARCH_BUDGET,
        ttl: float = CACHE_SECONDS,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._searcher = searcher
        self._queries = queries or QueryResolver()
        self._debounce, self._budget, self._ttl, self._size = debounce, budget, ttl, size
        self._clock = clock
        self._cache: collections.OrderedDict[str, tuple[float, tuple[Suggestion, ...]]] = (
            collections.OrderedDict()
        )
        self._latest: dict[int, int] = {}
        self._turns = itertools.count()
        self.searches = 0
        """Searches sent to Lavalink (cache misses that were not superseded)."""

    async def suggest(self, user_id: int, typed: str) -> tuple[Suggestion, ...]:
        """What to offer for ``typed``; empty when there is nothing (or no time) to offer."""
        text = " ".join(typed.split())
        if not text:
            return ()
        if text.lower().startswith(("http://", "https://")):
            return (Suggestion(text, "", 0, False, text, typed=True),)
        key = text.casefold()
        if (cached := self._cached(key)) is not None:
            return cached
        turn = self._latest[user_id] = next(self._turns)
        try:
            await asyncio.sleep(self._debounce)
            if self._latest.get(user_id) != turn:
                return ()  # the user typed on: Discord shows only the newer answer
            if (cached := self._cached(key)) is not None:
                return cached
            found = await self._search(text)
        finally:
            if self._latest.get(user_id) == turn:
                del self._latest[user_id]
        if found is not None:
            self._remember(key, found)
        return found or ()

    async def search(self, query: str, limit: int) -> tuple[Suggestion, ...]:
        """The first ``limit`` results for ``/search``, from the cache when it has them.

        Raises:
            ServiceError: the query is refused, no node answered, the search failed, or it
                found nothing: each said to the user instead.
        """
        text = " ".join(query.split())
        key = text.casefold()
        cached = self._cached(key)
        if cached:
            return cached[:limit]
        identifier = await self._queries.identifier(text)
        result = await fetch(self._searcher, identifier)
        self.searches += 1
        found = _results(result)
        if not found:
            raise NothingFound()
        self._remember(key, found)
        return found[:limit]

    async def _search(self, text: str) -> tuple[Suggestion, ...] | None:
        """The search's results; ``None`` when it failed (not cached, so tried again)."""
        try:
            identifier = await self._queries.identifier(text)
            self.searches += 1
            async with asyncio.timeout(self._budget):
                result = await self._searcher.load_tracks(identifier)
        except ServiceError:
            return ()  # refused input: nothing to suggest, and that stays true
        except (TimeoutError, lavalink.LavalinkError) as exc:
            _log.debug("no suggestions for a search: %s", exc)
            return None
        return _results(result)

    def _cached(self, key: str) -> tuple[Suggestion, ...] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        stored_at, found = entry
        if self._clock() - stored_at > self._ttl:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return found

    def _remember(self, key: str, found: tuple[Suggestion, ...]) -> None:
        self._cache[key] = (self._clock(), found)
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)


async def fetch(searcher: Searcher, identifier: str) -> lavalink.LoadResult:
    """Ask a node to load ``identifier``; a node's failure becomes what the user is told.

    Raises:
        ServerUnreachable: no node is connected.
        SearchFailed: the node answered with an error status or not in time.
    """
    try:
        return await searcher.load_tracks(identifier)
    except lavalink.NoNodeAvailableError:
        raise ServerUnreachable() from None
    except lavalink.LavalinkError as exc:
        _log.warning("loading %r failed: %s", identifier, exc)
        raise SearchFailed() from None


def _results(result: lavalink.LoadResult) -> tuple[Suggestion, ...]:
    match result:
        case lavalink.SearchResult(data=tracks):
            return tuple(_suggestion(t) for t in tracks[:MAX_SUGGESTIONS])
        case lavalink.TrackResult(data=track):
            return (_suggestion(track),)
    return ()


def _suggestion(track: lavalink.Track) -> Suggestion:
    info = track.info
    return Suggestion(
        title=info.title or "Unknown title",
        author=info.author or "Unknown artist",
        length_ms=0 if info.is_stream else max(0, info.length),
        is_stream=info.is_stream,
        link=info.uri,
    )
