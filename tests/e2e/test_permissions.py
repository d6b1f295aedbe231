"""The DJ role and vote skip end to end: the real bot, the fake Discord with several members in
voice (roles given as Discord gives them: in the guild's first payload and in each voice state,
the bot holding no GUILD_MEMBERS intent), and the fake Lavalink playing.

BOB, CAROL and DEE sit in the bot's channel with ALICE (Manage Server) once she has started the
music and moved away: three people listening, so a vote needs 2. DEE holds the DJ role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import MusicBot
from peers.discord_payloads import Role
from peers.fake_discord import FakeDiscord, default_guild
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    OTHER_VOICE_CHANNEL,
    PLAYLIST,
    PLAYLIST_URL,
    TAKE_ON_ME,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    ErrorLog,
    set_dj_role,
)

BOB, CAROL, DEE = 555555555555555561, 555555555555555562, 555555555555555563
DJ_ROLE = 777777777777777790
HITS = [info.title for info in PLAYLIST]


@pytest.fixture
async def discord(errors: ErrorLog) -> AsyncIterator[FakeDiscord]:
    """The default guild with a DJ role and three more members, all in the voice channel."""
    guild = default_guild()
    guild.roles.append(Role(DJ_ROLE, "DJ", 0, position=3))
    for user in (BOB, CAROL, DEE):
        guild.members.append(user)
        guild.user_voice[user] = VOICE_CHANNEL
    guild.member_roles[DEE] = [DJ_ROLE]
    async with FakeDiscord(guilds=[guild]) as fake:
        yield fake
        assert not fake.unhandled, f"the bot called REST routes the fake lacks: {fake.unhandled}"


async def _say(
    discord: FakeDiscord, user: int, command: str, **options: object
) -> tuple[str, bool]:
    reply = await (await discord.invoke(command, options or None, user_id=user)).reply()
    return reply.text, reply.ephemeral


async def _plays(lavalink: FakeLavalink, title: str) -> None:
    await lavalink.wait_for(
        lambda: (
            (p := lavalink.player(GUILD)) is not None
            and p.track is not None
            and p.track.title == title
        ),
        what=f"{title} playing",
    )


def _current(bot: MusicBot) -> str | None:
    assert bot.service is not None
    current = bot.service.queue(GUILD).current
    return current.title if current is not None else None


async def test_djs_act_others_vote_and_leaving_voters_are_recounted(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await set_dj_role(discord, GUILD, DJ_ROLE)
    await _say(discord, ALICE, "play", query=PLAYLIST_URL)  # a playlist: Alice's songs
    await _plays(lavalink, HITS[0])
    await discord.set_user_voice(GUILD, ALICE, OTHER_VOICE_CHANNEL)

    text, private = await _say(discord, CAROL, "stop")
    assert (text, private) == (
        f"You need the DJ role <@&{DJ_ROLE}> (or Manage Server) to stop the music.",
        True,
    )
    text, private = await _say(discord, BOB, "volume", level=30)
    assert private
    assert text.endswith("to change the volume.")
    text, private = await _say(discord, BOB, "play", query="take on me", next=True)
    assert (text, private) == (
        f"You need the DJ role <@&{DJ_ROLE}> (or Manage Server) to put songs first in the queue.",
        True,
    )
    assert bot.service is not None
    assert TAKE_ON_ME.title not in [e.title for e in bot.service.queue(GUILD, 50).upcoming]
    text, _ = await _say(discord, CAROL, "pause")  # open to every listener
    assert text.startswith("Paused")
    await _say(discord, BOB, "resume")

    text, private = await _say(discord, CAROL, "skip")
    assert (text, private) == (f"Vote to skip **{HITS[0]}**: 1 of 2 needed.", False)
    text, _ = await _say(discord, CAROL, "skip")
    assert text == f"You already voted to skip **{HITS[0]}**: 1 of 2 needed."
    assert _current(bot) == HITS[0]
    text, _ = await _say(discord, BOB, "skip")
    assert text.startswith(f"Vote passed (2 of 2 needed): Skipped **{HITS[0]}**. Now playing")
    await _plays(lavalink, HITS[1])

    text, _ = await _say(discord, DEE, "volume", level=30)  # the DJ
    assert text == "Volume set to **30%**."
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.volume == 30, what="volume 30"
    )

    # A voter who leaves no longer counts; when a departure makes the votes enough, it skips.
    text, _ = await _say(discord, CAROL, "skip")
    assert text == f"Vote to skip **{HITS[1]}**: 1 of 2 needed."
    await discord.set_user_voice(GUILD, CAROL, None)
    text, _ = await _say(discord, BOB, "skip")  # Bob and Dee listen: Carol's vote is gone
    assert text == f"Vote to skip **{HITS[1]}**: 1 of 2 needed."
    assert _current(bot) == HITS[1]
    await discord.set_user_voice(GUILD, DEE, OTHER_VOICE_CHANNEL)  # Bob alone: 1 of 1
    await discord.wait_for_message(f"so I skipped **{HITS[1]}**. Now playing **{HITS[2]}**.")
    await _plays(lavalink, HITS[2])
    message = next(m for m in discord.messages if "so I skipped" in m.text)
    assert message.channel_id == TEXT_CHANNEL

    # Bob is alone with the bot now: alone, he is the DJ.
    text, _ = await _say(discord, BOB, "shuffle")
    assert text.startswith("Shuffled 2 tracks.")


async def test_the_owner_and_managers_need_no_role_and_without_one_all_may(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await set_dj_role(discord, GUILD, DJ_ROLE)
    owner = discord.guilds[GUILD].owner_id
    await discord.add_member(GUILD, owner)
    await discord.set_user_voice(GUILD, owner, VOICE_CHANNEL)
    await _say(discord, BOB, "play", query=PLAYLIST_URL)
    await _plays(lavalink, HITS[0])

    text, _ = await _say(discord, owner, "loop", mode="queue")
    assert text.startswith("Looping the queue")
    text, _ = await _say(discord, ALICE, "move", **{"from": 3, "to": 1})  # Manage Server
    assert text.startswith(f"Moved **{HITS[3]}**")
    text, private = await _say(discord, CAROL, "remove", position=1)
    assert private
    assert text.endswith("to remove songs other people asked for.")
    text, _ = await _say(discord, BOB, "remove", position=1)  # his own
    assert text == f"Removed **{HITS[3]}**."
    text, _ = await _say(discord, BOB, "skip")  # his own: at once
    assert text.startswith(f"Skipped **{HITS[0]}**. Now playing")

    await set_dj_role(discord, GUILD, None)
    text, _ = await _say(discord, CAROL, "stop")
    assert text.startswith("Stopped")
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.track is None, what="stopped"
    )


async def test_a_role_given_or_taken_in_voice_counts_from_the_next_command(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    # No GUILD_MEMBERS intent: Discord tells the bot of these only in each interaction.
    await set_dj_role(discord, GUILD, DJ_ROLE)
    await _say(discord, BOB, "play", query=PLAYLIST_URL)
    await _plays(lavalink, HITS[0])
    await discord.set_member_roles(GUILD, CAROL, [DJ_ROLE])
    await discord.set_member_roles(GUILD, DEE, [])
    text, private = await _say(discord, DEE, "shuffle")
    assert private
    assert text.endswith("to shuffle the queue.")
    text, _ = await _say(discord, CAROL, "shuffle")
    assert text.startswith("Shuffled 4 tracks.")
