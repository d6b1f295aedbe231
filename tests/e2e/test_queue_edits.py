"""Queue edits end to end, in one bot session: /skip to, /remove, /move, /shuffle, /clear and
their refusals, checked in the replies and in what Lavalink plays."""

from __future__ import annotations

from bot.app import MusicBot
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import GUILD, PLAYLIST, PLAYLIST_URL, TAKE_ON_ME

HITS = [info.title for info in PLAYLIST]  # Eighties Hit 1 .. 5


async def _say(discord: FakeDiscord, command: str, **options: object) -> tuple[str, bool]:
    reply = await (await discord.invoke(command, options or None)).reply()
    return reply.text, reply.ephemeral


def _upcoming(bot: MusicBot) -> list[str]:
    assert bot.service is not None
    return [e.title for e in bot.service.queue(GUILD, 50).upcoming]


async def _plays(lavalink: FakeLavalink, title: str) -> None:
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title == title
        ),
        what=f"{title} playing",
    )


async def test_edit_the_queue_in_one_session(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    text, _ = await _say(discord, "shuffle")
    assert text == "Nothing is playing right now."
    await _say(discord, "play", query=PLAYLIST_URL)
    await _say(discord, "play", query="take on me")
    await _plays(lavalink, HITS[0])

    text, private = await _say(discord, "move", **{"from": 5, "to": 1})
    assert (text, private) == (
        f"Moved **{TAKE_ON_ME.title}** from position 5 to position 1.",
        False,
    )
    text, _ = await _say(discord, "remove", position=2)
    assert text == f"Removed **{HITS[1]}**."
    assert _upcoming(bot) == [TAKE_ON_ME.title, *HITS[2:]]

    text, private = await _say(discord, "remove", position=9)
    assert private
    assert text == "There's no song at position 9: the queue has songs 1 to 4."
    text, private = await _say(discord, "remove", position=3, to=2)
    assert private
    assert "runs backwards (3 to 2)" in text

    text, _ = await _say(discord, "skip", to=2)
    assert text.startswith(f"Skipped **{HITS[0]}** and the next one. Now playing [{HITS[2]}]")
    await _plays(lavalink, HITS[2])
    assert _upcoming(bot) == HITS[3:]

    text, _ = await _say(discord, "shuffle")
    assert text.startswith("Shuffled 2 tracks. Next up: **Eighties Hit")
    text, _ = await _say(discord, "remove", position=1, to=2)
    assert text == "Removed 2 tracks (1–2)."  # noqa: RUF001
    await _say(discord, "play", query="take on me")
    text, _ = await _say(discord, "clear")
    assert text == f"Cleared the queue: removed 1 track. **{HITS[2]}** plays on."
    text, private = await _say(discord, "clear")
    assert (text, private) == ("Nothing is queued after the current song.", True)
    await _plays(lavalink, HITS[2])
    assert _upcoming(bot) == []
