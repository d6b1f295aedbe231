"""What /queue shows stays inside Discord's limits, however long the titles are."""

from __future__ import annotations

from bot.extensions.music import FIELD_LIMIT, _render_queue, _render_skip
from bot.services import QueueView, SkipOutcome
from bot.storage import QueueEntry


def entry(i: int, title: str) -> QueueEntry:
    return QueueEntry(
        encoded="QAAA",
        title=title,
        author="Artist *with* markdown",
        length_ms=200_000,
        is_stream=False,
        uri=f"https://www.youtube.com/watch?v={'x' * 60}{i}",
        requester_id=1,
        id=i,
        sort_key=i * 1024,
        added_at_ms=0,
    )


def test_long_titles_never_overflow_an_embed_field() -> None:
    upcoming = tuple(entry(i, "A very long title " * 12) for i in range(1, 11))
    view = QueueView(entry(0, "Now"), 1_000, False, False, upcoming, total=9_999, total_ms=10**9)
    embed = _render_queue(view)
    values = {field.name: field.value for field in embed.fields}
    assert all(len(value) <= FIELD_LIMIT for value in values.values())
    up_next = values["Up next"]
    shown = sum(f"`{i}.`" in up_next for i in range(1, 11))
    assert shown >= 1
    assert up_next.endswith(f"…and {9_999 - shown} more")


def test_short_queue_lists_everything() -> None:
    upcoming = tuple(entry(i, f"Song {i}") for i in range(1, 4))
    view = QueueView(entry(0, "Now"), 0, False, False, upcoming, total=3, total_ms=600_000)
    up_next = {f.name: f.value for f in _render_queue(view).fields}["Up next"]
    assert all(f"Song {i}" in up_next for i in range(1, 4))
    assert "more" not in up_next


def test_skip_out_of_voice_does_not_claim_the_next_song_plays() -> None:
    skipped, following = entry(1, "Old"), entry(2, "New")
    assert "Now playing" in _render_skip(SkipOutcome(skipped, following))
    waiting = _render_skip(SkipOutcome(skipped, following, waiting=True))
    assert "Now playing" not in waiting
    assert "New" in waiting
    assert "/play" in waiting
