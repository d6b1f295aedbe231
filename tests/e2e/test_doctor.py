"""/doctor end to end: the running bot diagnoses its set-up through both fakes.

What each case breaks is what self-hosters break: a channel overwrite that mutes the bot, a
YouTube source that YouTube blocks, a player cut off from voice.
"""

from __future__ import annotations

import dataclasses
import logging

import hikari
import pytest

from bot.app import MusicBot
from peers.fake_discord import BOT_ROLE, FakeDiscord, Overwrite, Reply
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import ALICE, GUILD, RICK, TEXT_CHANNEL, VOICE_CHANNEL, playing

SPEAK = int(hikari.Permissions.SPEAK)
MARKS = {"✅": "ok", "⚠️": "warning", "❌": "problem"}


@dataclasses.dataclass(frozen=True)
class Shown:
    """One finding as the reply shows it."""

    area: str
    status: str
    text: str
    fix: str | None


def shown(reply: Reply) -> list[Shown]:
    """Every finding in /doctor's embed, in order."""
    (embed,) = reply.embeds
    found: list[Shown] = []
    for field in embed["fields"]:
        for line in field["value"].split("\n"):
            if line.startswith("→ "):
                last = found.pop()
                found.append(dataclasses.replace(last, fix=line[2:]))
                continue
            mark, _, text = line.partition(" ")
            found.append(Shown(field["name"], MARKS[mark], text, None))
    return found


def not_ok(reply: Reply) -> list[Shown]:
    return [f for f in shown(reply) if f.status != "ok"]


async def doctor(discord: FakeDiscord) -> Reply:
    reply = await (await discord.invoke("doctor")).reply(timeout=30)
    assert reply.ephemeral, "only the caller may see /doctor's answer"
    return reply


@pytest.fixture
def cache_agrees(caplog: pytest.LogCaptureFixture) -> None:
    """The bot's own permission computation must agree with Discord's ``app_permissions``."""
    caplog.set_level(logging.WARNING, logger="bot.doctor")


def assert_cache_agreed(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if "differ from Discord's" in r.getMessage()]


async def test_registered_for_server_managers_only(bot: MusicBot, discord: FakeDiscord) -> None:
    command = discord.registered_commands["doctor"]
    assert command["default_member_permissions"] == str(int(hikari.Permissions.MANAGE_GUILD))
    assert command["guild_id"] == str(GUILD)
    assert command["contexts"] == [0]  # guild only


async def test_a_healthy_set_up_is_all_ok(
    bot: MusicBot,
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    caplog: pytest.LogCaptureFixture,
    cache_agrees: None,
) -> None:
    reply = await doctor(discord)
    assert not_ok(reply) == []
    assert reply.embeds[0]["description"] == "All checks passed."
    text = reply.text
    node = f"Lavalink {lavalink.url.removeprefix('http://')}"
    assert node in text
    assert "Lavalink 4.2.2, password accepted" in text
    assert "sources: youtube, soundcloud, bandcamp, twitch, vimeo, http" in text
    assert "youtube-plugin 1.18.2" in text
    assert "a youtube search (ytsearch) found 2 tracks" in text
    assert "the bot is connected to it" in text
    assert "connected as musicbot" in text
    assert "shard 0 of 1" in text
    assert "in #text-0 I have View Channel, Send Messages, Embed Links" in text
    assert "in #voice-1 I have View Channel, Connect, Speak" in text
    assert "takes writes" in text
    assert "nothing is playing or queued in this server" in text
    assert discord.token not in text
    assert_cache_agreed(caplog)
    labels = {"command": "doctor", "outcome": "ok"}
    await discord.wait_for(
        lambda: bot.metrics.registry.get_sample_value("musicbot_commands_total", labels) == 1,
        what="/doctor counted as answered",
    )


async def test_speak_denied_in_the_callers_voice_channel_is_a_problem_with_the_fix(
    bot: MusicBot,
    discord: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    cache_agrees: None,
) -> None:
    # A "listen only" channel: @everyone may not speak there, the bot's role is not let off.
    await discord.set_channel_overwrite(GUILD, VOICE_CHANNEL, GUILD, deny=SPEAK)
    reply = await doctor(discord)
    problems = [f for f in shown(reply) if f.status == "problem"]
    assert problems == [
        Shown(
            "Permissions",
            "problem",
            "I lack Speak in #voice-1, which I need to be heard: without it the music plays "
            "to nobody",
            "give the bot's role Speak in #voice-1 (Edit Channel → Permissions), and check no "
            "overwrite for the bot denies it",
        )
    ]
    assert "in #text-0 I have View Channel, Send Messages, Embed Links" in reply.text
    assert reply.embeds[0]["description"].startswith("Found 1 problem.")

    # Out of voice, the caller is told how to get the voice channel checked.
    await discord.set_user_voice(GUILD, ALICE, None)
    reply = await doctor(discord)
    assert [f for f in not_ok(reply) if f.area == "Permissions"] == [
        Shown(
            "Permissions",
            "warning",
            "you are in no voice channel, so I could not check my permissions in one",
            "join the voice channel I should play in and run /doctor again to check it",
        )
    ]
    assert_cache_agreed(caplog)


async def test_sending_denied_in_the_text_channel_names_each_missing_permission(
    bot: MusicBot,
    discord: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    cache_agrees: None,
) -> None:
    deny = int(hikari.Permissions.SEND_MESSAGES | hikari.Permissions.EMBED_LINKS)
    await discord.set_channel_overwrite(GUILD, TEXT_CHANNEL, BOT_ROLE, deny=deny)
    reply = await doctor(discord)
    problems = [(f.text, f.fix) for f in shown(reply) if f.status == "problem"]
    assert [text.split(",")[0] for text, _ in problems] == [
        "I lack Send Messages in #text-0",
        "I lack Embed Links in #text-0",
    ]
    assert all(fix and fix.startswith("give the bot's role ") for _, fix in problems)
    assert_cache_agreed(caplog)


async def test_a_blocked_youtube_search_is_a_problem_quoting_the_error(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.catalogue.add_error(
        "ytsearch:never gonna give you up", "Sign in to confirm you're not a bot"
    )
    # A slow node: the answer is deferred, and the "thinking" placeholder is private too.
    lavalink.delay_next("/v4/info", 2.0)
    interaction = await discord.invoke("doctor")
    reply = await interaction.reply(timeout=30)
    assert reply.ephemeral
    assert interaction.responses[0][1]["type"] == 5
    assert interaction.deferred_flags == 64
    problems = [f for f in shown(reply) if f.status == "problem"]
    assert len(problems) == 1
    (problem,) = problems
    assert problem.area.startswith("Lavalink ")
    assert problem.text == (
        "a youtube search (ytsearch) failed: Sign in to confirm you're not a bot"
    )
    assert problem.fix is not None
    assert "YOUTUBE_PLUGIN_VERSION" in problem.fix
    assert "poToken" in problem.fix


async def test_an_interrupted_player_is_a_warning_with_the_way_back(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title), what="Rick")
    reply = await doctor(discord)
    (player,) = [f for f in shown(reply) if f.area == "Player"]
    assert player.status == "ok"
    assert player.text.startswith(f"playing “{RICK.title}” in #voice-1 on node ")
    assert player.text.endswith("; 1 more queued; volume 100%")

    # A moderator disconnects the bot: the queue is kept, the player is interrupted.
    await lavalink.send_event(GUILD, "WebSocketClosedEvent", code=4014, reason="Disconnected.")
    await discord.kick_bot(GUILD)
    await discord.wait_for_message("I was disconnected from voice")
    reply = await doctor(discord)
    (player,) = [f for f in shown(reply) if f.area == "Player"]
    assert player == Shown(
        "Player",
        "warning",
        f"the music was interrupted: “{RICK.title}” waits, 1 more queued",
        "use /play to bring me back: it carries on where it stopped",
    )
    assert [f.area for f in not_ok(reply)] == ["Player"]


async def test_discords_own_answer_wins_over_a_stale_cache_for_the_text_channel(
    bot: MusicBot, discord: FakeDiscord, caplog: pytest.LogCaptureFixture, cache_agrees: None
) -> None:
    # The overwrite changes without the CHANNEL_UPDATE reaching the bot (a missed event).
    deny = int(hikari.Permissions.SEND_MESSAGES)
    discord.guilds[GUILD].overwrites[TEXT_CHANNEL] = [Overwrite(BOT_ROLE, 0, deny=deny)]
    reply = await doctor(discord)
    problems = [f.text for f in shown(reply) if f.status == "problem"]
    assert [text.split(",")[0] for text in problems] == ["I lack Send Messages in #text-0"]
    (warning,) = [
        r.getMessage() for r in caplog.records if "differ from Discord's" in r.getMessage()
    ]
    assert f"channel {TEXT_CHANNEL}" in warning
