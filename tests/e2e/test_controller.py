"""The now-playing controller end to end: the real bot, the fake Discord, the fake Lavalink.

What users see in the channel: one message per track start (an embed with the end as
Discord's relative time, and five buttons), edited (never posted again) as the music changes,
a burst of changes coalesced into one edit, deleted when the music ends; and what its buttons
do, refuse, and say on a player that has ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from bot.app import MusicBot
from peers.fake_discord import FakeDiscord, Interaction
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    controller_messages,
    holds,
    playing,
    wait_for_controller,
    wait_for_lavalink_session,
)
from tests.e2e.test_process import bot_process

BOB = 555555555555555599
ARTWORK = "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg"
BUTTONS = [
    "player:previous",
    "player:pause",
    "player:skip",
    "player:stop",
    "player:loop",
    "player:shuffle",
]


def embed(discord: FakeDiscord, message_id: int) -> dict[str, object]:
    (shown,) = discord.channel_messages[message_id]["embeds"]  # type: ignore[misc]
    return shown  # type: ignore[no-any-return]


def text(discord: FakeDiscord, message_id: int) -> str:
    shown = embed(discord, message_id)
    fields = [f"{f['name']}: {f['value']}" for f in shown.get("fields") or []]  # type: ignore[attr-defined]
    return "\n".join([str(shown.get("description")), *fields])


def edits_of(discord: FakeDiscord, message_id: int) -> int:
    return sum(1 for edited, _ in discord.message_edits if edited == message_id)


def posted(discord: FakeDiscord) -> int:
    """Controller messages the bot ever posted."""
    return sum(1 for m in discord.messages if any(m.components))


async def say(discord: FakeDiscord, command: str, **options: object) -> str:
    return (await (await discord.invoke(command, options or None)).reply()).text


async def acknowledged(press: Interaction) -> None:
    """The press was answered with a deferred update (the controller's edit shows it)."""
    for _ in range(300):
        if press.responses:
            break
        await asyncio.sleep(0.01)
    kinds = [body.get("type") for kind, body in press.responses if kind == "callback"]
    assert kinds == [6], press.responses


async def test_the_controller_follows_the_music_and_goes_with_it(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    song = dataclasses.replace(RICK, identifier="artwork0002", artwork_url=ARTWORK)
    lavalink.catalogue.add_track(song)
    lavalink.catalogue.add_search("rick with artwork", [song])
    before = time.time()
    await say(discord, "play", query="rick with artwork")
    await say(discord, "play", query="take on me")
    message_id = await wait_for_controller(discord, RICK.title)
    message = discord.channel_messages[message_id]
    assert int(str(message["channel_id"])) == TEXT_CHANNEL
    shown = embed(discord, message_id)
    assert shown["url"] == song.uri
    assert shown["thumbnail"]["url"] == ARTWORK  # type: ignore[index]
    fields = {f["name"]: f["value"] for f in shown["fields"]}  # type: ignore[attr-defined]
    assert fields["Requested by"] == f"<@{ALICE}>"
    assert fields["Duration"] == "3:32"
    assert (fields["Volume"], fields["Loop"], fields["Filter"]) == ("100%", "off", "off")
    ends = int(str(shown["description"]).split("<t:")[1].split(":R>")[0])
    assert before + RICK.length / 1000 - 2 <= ends <= time.time() + RICK.length / 1000 + 2
    rows = [row["components"] for row in message["components"]]  # type: ignore[attr-defined]
    assert [len(row) for row in rows] == [3, 3]  # Discord takes at most 5 a row
    buttons = [button for row in rows for button in row]
    assert [c["custom_id"] for c in buttons] == BUTTONS
    assert [c["emoji"]["name"] for c in buttons] == ["⏮", "⏯", "⏭", "⏹", "🔁", "🔀"]

    # The next track, a pause, a loop mode: the same message, edited.
    await say(discord, "skip")
    await wait_for_controller(discord, TAKE_ON_ME.title)
    edits = edits_of(discord, message_id)
    await say(discord, "pause")
    await discord.wait_for(lambda: "Paused" in text(discord, message_id), what="paused shown")
    await say(discord, "loop", mode="track")
    await discord.wait_for(
        lambda: "Loop: this song" in text(discord, message_id), what="loop shown"
    )
    assert edits_of(discord, message_id) == edits + 2
    assert posted(discord) == 1
    assert not any("Now playing" in m.text for m in discord.messages)  # no notice any more

    # A burst of changes: one edit, with the latest state.
    edits = edits_of(discord, message_id)
    assert bot.service is not None
    interval = bot.service.controller.interval
    started = time.monotonic()
    for level in (10, 20, 30, 40, 50):
        await say(discord, "volume", level=level)
    await say(discord, "resume")
    burst = time.monotonic() - started
    await discord.wait_for(
        lambda: "Volume: 50%" in (shown := text(discord, message_id)) and "Ends <t:" in shown,
        what="the burst's last state",
    )
    # The first change may go out at once; after it, at most one edit per interval.
    most = edits + 2 + int(burst / interval)
    await holds(lambda: edits_of(discord, message_id) <= most, 2 * interval, "coalesced")
    print(f"6 changes in {burst:.2f} s: {edits_of(discord, message_id) - edits} edit(s)")

    await say(discord, "stop")
    await discord.wait_for(lambda: message_id in discord.deleted_messages, what="deleted")
    assert controller_messages(discord) == []
    assert posted(discord) == 1
    assert discord.rate_limited_edits == []  # never past Discord's 5 edits per 5 s


async def test_the_queue_ending_deletes_it(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await say(discord, "play", query="short song")
    message_id = await wait_for_controller(discord, SHORT_SONG.title)
    await discord.wait_for_message("The queue is finished", timeout=15)
    await discord.wait_for(lambda: message_id in discord.deleted_messages, what="deleted")
    assert controller_messages(discord) == []


async def test_a_track_that_ends_by_itself_makes_one_edit_showing_the_next_track(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    """The next track's end is shown right the first time: not where the finished track's
    clock would put it (ending at once), corrected by a second edit later."""
    await say(discord, "play", query="short song")
    await say(discord, "play", query="take on me")
    message_id = await wait_for_controller(discord, SHORT_SONG.title)
    edits = edits_of(discord, message_id)
    await wait_for_controller(discord, TAKE_ON_ME.title, timeout=15)
    changed_at = time.time()
    assert bot.service is not None
    await holds(
        lambda: edits_of(discord, message_id) == edits + 1,
        2 * bot.service.controller.interval,
        "one edit for one track change",
    )
    shown = embed(discord, message_id)
    ends = int(str(shown["description"]).split("<t:")[1].split(":R>")[0])
    assert abs(ends - (changed_at + TAKE_ON_ME.length / 1000)) <= 2


async def test_each_button_works(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await say(discord, "play", query="never gonna give you up")
    for query in ("take on me", "short song", "take on me"):
        await say(discord, "play", query=query)
    message_id = await wait_for_controller(discord, RICK.title)

    await acknowledged(await discord.press(message_id, "player:pause"))
    await lavalink.wait_for(lambda: (p := lavalink.player(GUILD)) is not None and p.paused)
    await discord.wait_for(lambda: "Paused" in text(discord, message_id), what="paused")
    await acknowledged(await discord.press(message_id, "player:pause"))
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="resumed")

    await acknowledged(await discord.press(message_id, "player:loop"))
    await discord.wait_for(lambda: "Loop: this song" in text(discord, message_id), what="loop")
    await acknowledged(await discord.press(message_id, "player:loop"))
    await discord.wait_for(
        lambda: "Loop: the whole queue" in text(discord, message_id), what="loop queue"
    )
    await acknowledged(await discord.press(message_id, "player:loop"))
    await discord.wait_for(lambda: "Loop: off" in text(discord, message_id), what="loop off")

    shuffled = await (await discord.press(message_id, "player:shuffle")).reply()
    assert shuffled.ephemeral
    assert shuffled.text.startswith("Shuffled 3 tracks. Next up: **")

    await acknowledged(await discord.press(message_id, "player:skip"))
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title != RICK.title
        ),
        what="the next song",
    )
    assert bot.service is not None
    title = bot.service.queue(GUILD).current.title  # type: ignore[union-attr]
    await wait_for_controller(discord, title)

    # ⏮: the song skipped a moment ago plays again from the start, and this one comes next.
    await acknowledged(await discord.press(message_id, "player:previous"))
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="again")
    assert await wait_for_controller(discord, RICK.title) == message_id  # the same message
    assert bot.service.queue(GUILD).upcoming[0].title == title

    await acknowledged(await discord.press(message_id, "player:stop"))
    await discord.wait_for(lambda: message_id in discord.deleted_messages, what="deleted")
    assert bot.service.queue(GUILD).current is None
    assert posted(discord) == 1
    assert discord.rate_limited_edits == []
    metrics = bot.metrics.render().decode()
    assert 'musicbot_commands_total{command="button pause",outcome="ok"} 2.0' in metrics
    assert 'musicbot_commands_total{command="button loop",outcome="ok"} 3.0' in metrics


async def test_a_press_waiting_on_a_slow_music_server_is_answered_in_time(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await say(discord, "play", query="never gonna give you up")
    await say(discord, "play", query="take on me")
    message_id = await wait_for_controller(discord, RICK.title)
    lavalink.delay_next("/players/", 4.0, method="PATCH")  # the skip's play request
    press = await discord.press(message_id, "player:skip")
    # Acknowledged before Discord's 3 s (a later answer would be refused and logged).
    await acknowledged(press)
    assert press.acknowledged
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
    await wait_for_controller(discord, TAKE_ON_ME.title)
    assert [kind for kind, _ in press.responses] == ["callback"]


async def test_buttons_refuse_as_their_commands_do(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await say(discord, "play", query="never gonna give you up")
    await say(discord, "play", query="take on me")
    await say(discord, "play", query="short song")
    message_id = await wait_for_controller(discord, RICK.title)
    await discord.add_member(GUILD, BOB)  # in the server, not in the bot's voice channel
    edits = edits_of(discord, message_id)
    for custom_id, action in zip(
        BUTTONS,
        [
            "play the previous song",
            "pause",
            "skip",
            "stop the music",
            "change the loop mode",
            "shuffle the queue",
        ],
        strict=True,
    ):
        reply = await (await discord.press(message_id, custom_id, user_id=BOB)).reply()
        assert reply.ephemeral
        assert reply.text == f"Join my voice channel <#{VOICE_CHANNEL}> to {action}."
    assert bot.service is not None
    view = bot.service.queue(GUILD)
    assert view.current is not None
    assert (view.current.title, view.paused, view.loop_mode.value) == (RICK.title, False, "off")
    assert [e.title for e in view.upcoming] == [TAKE_ON_ME.title, SHORT_SONG.title]
    assert playing(lavalink.player(GUILD), RICK.title)
    await holds(lambda: edits_of(discord, message_id) == edits, 0.5, "nothing to edit")


async def test_a_press_on_a_player_that_has_ended_is_told_so_politely(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await say(discord, "play", query="never gonna give you up")
    message_id = await wait_for_controller(discord, RICK.title)
    assert bot.service is not None
    bot.service.controller.interval = 10.0  # the delete waits: the message is still there
    await say(discord, "pause")
    await say(discord, "stop")
    assert message_id in discord.channel_messages
    for custom_id in BUTTONS:
        reply = await (await discord.press(message_id, custom_id)).reply()
        assert reply.ephemeral
        assert reply.text.startswith("This player has ended")
    view = bot.service.queue(GUILD)
    assert (view.current, view.loop_mode.value) == (None, "off")
    assert lavalink.player(GUILD) is None or lavalink.player(GUILD).track is None  # type: ignore[union-attr]


@pytest.mark.timeout(90)
async def test_an_old_controller_button_works_after_kill_9(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    """``python -m bot`` killed with SIGKILL and started again: the message posted by the dead
    process is the live controller of the new one (its button works, and that same message is
    edited), because nothing about it lived only in memory."""
    async with bot_process(discord, lavalink, tmp_path) as process:
        await process.start()
        await discord.wait_until_ready(timeout=30)
        session = await wait_for_lavalink_session(lavalink, timeout=20)
        await say(discord, "play", query="never gonna give you up")
        await say(discord, "play", query="take on me")
        message_id = await wait_for_controller(discord, RICK.title)

        await process.kill9()
        await lavalink.wait_for(lambda: lavalink.sessions[session].paused, what="paused")
        await process.start()
        await discord.wait_until_ready(timeout=30)
        await lavalink.wait_for(
            lambda: not lavalink.sessions[session].paused, timeout=20, what="resumed"
        )
        await lavalink.wait_for(
            lambda: playing(lavalink.player(GUILD), RICK.title), timeout=20, what="playing"
        )

        edits = edits_of(discord, message_id)
        await acknowledged(await discord.press(message_id, "player:pause"))
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.paused, what="paused"
        )
        await discord.wait_for(
            lambda: "Paused" in text(discord, message_id), timeout=10, what="the same message"
        )
        assert edits_of(discord, message_id) > edits
        assert [int(str(m["id"])) for m in controller_messages(discord)] == [message_id]
        assert posted(discord) == 1

        await acknowledged(await discord.press(message_id, "player:stop"))
        await discord.wait_for(
            lambda: message_id in discord.deleted_messages, timeout=10, what="deleted"
        )
        assert await process.terminate() == 0
