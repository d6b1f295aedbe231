"""/history, /previous and the /queue page buttons end to end: the real bot against the fake
Discord (which enforces the embed and component limits) and the fake Lavalink."""

from __future__ import annotations

from typing import Any

from bot.app import MusicBot
from bot.config import Settings
from bot.storage import NewEntry, PlayerRecord
from peers.fake_discord import FakeDiscord, Interaction
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    PLAYLIST,
    PLAYLIST_URL,
    SHORT_SONG,
    TAKE_ON_ME,
    VOICE_CHANNEL,
    ErrorLog,
    running_bot,
)

BOB = 555555555555555556
HITS = [info.title for info in PLAYLIST]  # Eighties Hit 1 .. 5


async def _say(discord: FakeDiscord, command: str, **options: object) -> tuple[str, bool]:
    reply = await (await discord.invoke(command, options or None)).reply()
    return reply.text, reply.ephemeral


async def _plays(lavalink: FakeLavalink, title: str, timeout: float = 10.0) -> None:
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title == title
        ),
        timeout=timeout,
        what=f"{title} playing",
    )


def _upcoming(bot: MusicBot) -> list[str]:
    assert bot.service is not None
    return [e.title for e in bot.service.queue(GUILD, 50).upcoming]


async def test_history_and_previous_in_one_session(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    assert await _say(discord, "history") == (
        "No song has played here yet. Songs show up here once they have played.",
        True,
    )
    assert await _say(discord, "previous") == (
        "No song has played here yet, so there is nothing to go back to.",
        True,
    )
    await _say(discord, "play", query=PLAYLIST_URL)
    await _plays(lavalink, HITS[0])
    await _say(discord, "skip")
    await _plays(lavalink, HITS[1])
    await _say(discord, "skip")
    await _plays(lavalink, HITS[2])

    reply = await (await discord.invoke("history")).reply()
    assert not reply.ephemeral
    (embed,) = reply.embeds
    assert embed["title"] == "Recently played"
    lines = embed["description"].split("\n")
    assert lines[0].startswith(f"`1.` [{HITS[1]}](https://www.youtube.com/watch?v=eighties002)")
    assert lines[1].startswith(f"`2.` [{HITS[0]}]")
    assert all(f"asked by <@{ALICE}> · <t:" in line and line.endswith(":R>") for line in lines)
    assert "`3:00`" in lines[0]

    # Someone outside the bot's channel may read the history but not go back.
    await discord.add_member(GUILD, BOB, "bob")
    text, private = await _say_as(discord, "previous", BOB)
    assert private
    assert f"Join my voice channel <#{VOICE_CHANNEL}> to play the previous song." == text

    text, private = await _say(discord, "previous")
    assert not private
    assert text.startswith(f"Playing again from the start: [{HITS[1]}](")
    assert text.endswith(f"**{HITS[2]}** is next up.")
    await _plays(lavalink, HITS[1])
    player = lavalink.player(GUILD)
    assert player is not None
    assert player.position < 5_000  # from 0:00
    assert _upcoming(bot) == HITS[2:]

    await _say(discord, "previous")
    await _plays(lavalink, HITS[0])
    assert _upcoming(bot) == HITS[1:]
    assert await _say(discord, "previous") == (
        "No song has played here yet, so there is nothing to go back to.",
        True,
    )
    assert _upcoming(bot) == HITS[1:]
    await _say(discord, "skip")  # back where the user was, step by step
    await _plays(lavalink, HITS[1])


async def _say_as(discord: FakeDiscord, command: str, user_id: int) -> tuple[str, bool]:
    reply = await (await discord.invoke(command, None, user_id=user_id)).reply()
    return reply.text, reply.ephemeral


async def test_previous_after_the_queue_ended_and_after_leaving(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await _say(discord, "play", query="short song")
    await discord.wait_for_message("The queue is finished.", timeout=15)
    text, _ = await _say(discord, "previous")  # the bot is still in voice
    assert text == (
        f"Playing again from the start: [{SHORT_SONG.title}]({SHORT_SONG.uri}) · "
        f"{SHORT_SONG.author} · `0:03`."
    )
    await _plays(lavalink, SHORT_SONG.title)

    await _say(discord, "leave")
    await discord.wait_for(
        lambda: (p := lavalink.player(GUILD)) is None or p.track is None, what="the leave"
    )
    text, _ = await _say(discord, "previous")  # joins the caller's channel, as /play would
    assert text.startswith(f"Playing again from the start: [{SHORT_SONG.title}]")
    await _plays(lavalink, SHORT_SONG.title)
    await discord.wait_for_message("The queue is finished.", timeout=15)


async def test_history_of_long_titles_fits_discord(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    """25 played tracks with titles and links as long as sources give: one embed that the
    fake Discord (which enforces every embed limit) accepts, every track shown."""
    assert bot.service is not None
    repo = bot.service._repo
    long = PLAYLIST[0]
    await repo.save_player(PlayerRecord(guild_id=GUILD))
    for n in range(30):
        entry = NewEntry(
            "enc", f"{'Very *long* title ' * 15}{n}", "Author_" * 40, 180_000, False,
            f"{long.uri}&{'x' * 300}{n}", ALICE,
        )  # fmt: skip
        await repo.advance(PlayerRecord(guild_id=GUILD), remove_entry_id=None, played=entry)
    reply = await (await discord.invoke("history")).reply()
    (embed,) = reply.embeds
    assert {f["name"] for f in embed["fields"]} == {"Earlier"}  # past the description's 4096
    shown = reply.text.count(f"<@{ALICE}>")
    assert shown == 25
    assert "`1.` Very \\*long\\* title" in embed["description"]
    assert len(embed["description"]) + sum(len(f["value"]) for f in embed.get("fields", [])) < 6000


def _buttons(message: dict[str, Any]) -> dict[str, bool]:
    """custom id -> usable, of the message's buttons."""
    return {
        c["custom_id"]: not c.get("disabled", False)
        for row in message.get("components") or []
        for c in row["components"]
    }


async def _queue_of_25(discord: FakeDiscord, lavalink: FakeLavalink) -> None:
    for _ in range(5):
        await _say(discord, "play", query=PLAYLIST_URL)
    await _plays(lavalink, HITS[0])


async def test_queue_pages_follow_the_buttons_and_the_queue_as_it_is_now(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await _queue_of_25(discord, lavalink)
    asked = await discord.invoke("queue")
    reply = await asked.reply()
    message = _message(asked)
    assert "24 tracks in queue · 1:12:00 total · page 1 of 3" in reply.text
    assert "`1.` [Eighties Hit 2]" in reply.text
    assert "`10.` [Eighties Hit 1]" in reply.text
    assert "`11.`" not in reply.text
    assert _buttons(message) == {
        "queue:first": False,
        "queue:0:prev": False,
        "queue:2:next": True,
        "queue:last": True,
    }

    # Anyone may page, also someone who is not listening; the same message is updated.
    await discord.add_member(GUILD, BOB, "bob")
    edits = len(discord.message_edits)
    paged = await (await discord.press(int(message["id"]), "queue:2:next", user_id=BOB)).reply()
    assert "page 2 of 3" in paged.text
    assert "`11.` [Eighties Hit 2]" in paged.text
    assert "`20.` [Eighties Hit 1]" in paged.text
    assert (discord.message_edits[edits][0], len(discord.message_edits)) == (
        int(message["id"]),
        edits + 1,
    )
    assert discord.interactions[-1].responses[0][1]["type"] == 7  # UPDATE_MESSAGE
    message = discord.message(int(message["id"]))
    assert _buttons(message) == {
        "queue:first": True,
        "queue:1:prev": True,
        "queue:3:next": True,
        "queue:last": True,
    }
    paged = await (await discord.press(int(message["id"]), "queue:last")).reply()
    assert "page 3 of 3" in paged.text
    assert "`24.` [Eighties Hit 5]" in paged.text
    assert _buttons(discord.message(int(message["id"])))["queue:last"] is False

    # The queue shrinks under the message: its page is clamped to what is left.
    await _say(discord, "remove", position=6, to=24)
    paged = await (await discord.press(int(message["id"]), "queue:2:prev")).reply()
    assert "5 tracks in queue" in paged.text
    assert "page" not in paged.text
    assert discord.message(int(message["id"]))["components"] == []

    text, _ = await _say(discord, "queue", page=99)  # past the end: the last page
    assert "`5.` [Eighties Hit 1]" in text


def _message(interaction: Interaction) -> dict[str, Any]:
    assert interaction.original is not None
    return interaction.original


async def test_queue_buttons_work_after_a_restart(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    async with running_bot(settings, discord, lavalink, errors):
        await _queue_of_25(discord, lavalink)
        asked = await discord.invoke("queue")
        await asked.reply()
        message_id = int(_message(asked)["id"])
    async with running_bot(settings, discord, lavalink, errors):
        paged = await (await discord.press(message_id, "queue:last")).reply()
        assert "page 3 of 3" in paged.text
        assert "`21.` [Eighties Hit 2]" in paged.text
        assert TAKE_ON_ME.title not in paged.text
