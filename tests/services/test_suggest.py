"""Suggestions while /play is typed: cached, debounced per user, never an error."""

from __future__ import annotations

import asyncio

import pytest

from bot import lavalink
from bot.extensions.sentences import suggestion_choice
from bot.services import Suggester, Suggestion, errors
from tests.services.fakes import track


class Searches:
    """A Lavalink stand-in for searches: counts them, can be slow or fail."""

    def __init__(self, results: int = 3) -> None:
        self.identifiers: list[str] = []
        self.results = results
        self.delay = 0.0
        self.fail = False

    async def load_tracks(self, identifier: str) -> lavalink.LoadResult:
        self.identifiers.append(identifier)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise lavalink.ServerError(500, "Internal Server Error", "/v4/loadtracks")
        found = [track(f"{identifier} {i}") for i in range(self.results)]
        return lavalink.SearchResult(data=tuple(found))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_search_is_cached_and_a_cached_answer_needs_no_wait() -> None:
    searches = Searches()
    suggester = Suggester(searches, debounce=0.05)
    first = await suggester.suggest(1, "  Never   gonna ")
    assert [s.title for s in first] == [f"ytsearch:Never gonna {i}" for i in range(3)]
    assert searches.identifiers == ["ytsearch:Never gonna"]
    # Same words, other case and spacing, another user: from the cache, without the debounce.
    slow = Suggester(searches, debounce=30)
    slow._cache = suggester._cache  # the same cache, a debounce no test could wait out
    async with asyncio.timeout(1):
        again = await slow.suggest(2, "never GONNA")
    assert again == first
    assert searches.identifiers == ["ytsearch:Never gonna"]


async def test_typing_on_supersedes_the_earlier_keystroke_of_the_same_user_only() -> None:
    searches = Searches()
    suggester = Suggester(searches, debounce=0.1)
    early = asyncio.ensure_future(suggester.suggest(1, "take"))
    await asyncio.sleep(0.02)
    other_user = asyncio.ensure_future(suggester.suggest(2, "rick"))
    late = await suggester.suggest(1, "take on me")
    assert await early == ()  # superseded: Discord shows only the newer answer
    assert late[0].title == "ytsearch:take on me 0"
    assert len(await other_user) == 3
    assert sorted(searches.identifiers) == ["ytsearch:rick", "ytsearch:take on me"]
    assert suggester._latest == {}  # nothing kept per user once answered


async def test_a_link_is_offered_as_itself_without_a_search() -> None:
    searches = Searches()
    suggester = Suggester(searches, debounce=0)
    link = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    (only,) = await suggester.suggest(1, link)
    assert only.typed
    assert suggestion_choice(only) == (link, link)
    assert searches.identifiers == []
    assert await suggester.suggest(1, "   ") == ()


async def test_a_slow_or_failing_search_offers_nothing_and_is_tried_again() -> None:
    searches = Searches()
    suggester = Suggester(searches, debounce=0, budget=0.05)
    searches.delay = 0.5
    assert await suggester.suggest(1, "slow") == ()
    searches.delay, searches.fail = 0, True
    assert await suggester.suggest(1, "slow") == ()
    searches.fail = False
    assert len(await suggester.suggest(1, "slow")) == 3
    assert len(searches.identifiers) == 3  # failures were not cached


async def test_refused_input_offers_nothing_and_reaches_no_node() -> None:
    searches = Searches()
    suggester = Suggester(searches, debounce=0)
    assert await suggester.suggest(1, "file:///etc/passwd") == ()
    assert searches.identifiers == []


async def test_at_most_25_and_the_cache_expires_and_stays_bounded() -> None:
    searches = Searches(results=40)
    clock = Clock()
    suggester = Suggester(searches, debounce=0, ttl=60, size=2, clock=clock)
    assert len(await suggester.suggest(1, "a")) == 25
    clock.now += 61
    await suggester.suggest(1, "a")
    assert len(searches.identifiers) == 2  # expired, searched again
    await suggester.suggest(1, "b")
    await suggester.suggest(1, "c")
    assert len(suggester._cache) == 2
    await suggester.suggest(1, "a")  # pushed out by b and c
    assert len(searches.identifiers) == 5


@pytest.mark.parametrize("title_length", [10, 99, 100, 300])
def test_choices_fit_discords_100_characters(title_length: int) -> None:
    found = Suggestion(
        "T" * title_length, "An Artist", 225_000, False, "https://x.example/" + "v" * 90
    )
    name, value = suggestion_choice(found)
    tail = " — An Artist (3:45)"
    assert name.endswith(tail)
    if title_length + len(tail) <= 100:
        assert name == found.title + tail  # fits: the whole title
    else:
        assert name == "T" * (100 - len(tail) - 1) + "…" + tail  # clipped to exactly 100
    assert len(value) <= 100
    assert value == f"{found.title} {found.author}"[:100]  # the link is too long to be a value
    live = suggestion_choice(Suggestion("Radio", "Station", 0, True, "https://r.example/live"))
    assert live == ("Radio — Station (live)", "https://r.example/live")


async def test_search_gives_the_first_results_or_says_why_not() -> None:
    searches = Searches(results=8)
    suggester = Suggester(searches, debounce=30)  # /search never waits for typing
    async with asyncio.timeout(1):
        found = await suggester.search("rick", 5)
    assert [s.title for s in found] == [f"ytsearch:rick {i}" for i in range(5)]
    assert await suggester.search("RICK", 5) == found
    assert len(searches.identifiers) == 1  # the second came from the cache
    searches.results = 0
    with pytest.raises(errors.NothingFound):
        await suggester.search("nothing", 5)
    searches.fail = True
    with pytest.raises(errors.SearchFailed):
        await suggester.search("broken", 5)
    with pytest.raises(errors.PrivateAddress):
        await suggester.search("http://127.0.0.1/x.mp3", 5)
