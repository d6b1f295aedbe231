"""/search: five results in a select menu; only the searcher picks; it closes itself."""

from __future__ import annotations

import pytest

from bot.app import MusicBot
from bot.extensions import search
from peers.fake_discord import FakeDiscord, Interaction
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import ALICE, GUILD, RICK, TAKE_ON_ME, VOICE_CHANNEL

BOB = 555555555555555556


def _menu(interaction: Interaction) -> tuple[int, str, list[dict[str, str]]]:
    """The search reply's message id, select menu custom id and options."""
    message = interaction.original
    assert message is not None
    (row,) = message["components"]
    (menu,) = row["components"]
    return int(message["id"]), menu["custom_id"], menu["options"]


async def test_search_offers_results_and_only_the_searcher_picks(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await discord.add_member(GUILD, BOB, "bob")
    searching = await discord.invoke("search", {"query": "never gonna give you up"})
    reply = await searching.reply()
    assert not reply.ephemeral
    assert "2 result(s)" in reply.content
    message_id, custom_id, options = _menu(searching)
    assert [o["label"] for o in options] == [RICK.title, TAKE_ON_ME.title]
    assert options[0]["description"] == f"{RICK.author} · 3:32"

    # Someone else's pick is refused privately; the menu stays.
    refused = await (await discord.press(message_id, custom_id, values=["1"], user_id=BOB)).reply()
    assert refused.ephemeral
    assert f"Only <@{ALICE}> can pick" in refused.content

    # The searcher out of voice: told why, nothing queued, the menu still open.
    await discord.set_user_voice(GUILD, ALICE, None)
    press = await discord.press(message_id, custom_id, values=["1"])
    await discord.wait_for(lambda: bool(press.followups), what="the private refusal")
    (followup,) = press.followups.values()
    assert "voice channel" in followup["content"]
    assert lavalink.player(GUILD) is None

    await discord.set_user_voice(GUILD, ALICE, VOICE_CHANNEL)
    picked = await (await discord.press(message_id, custom_id, values=["1"])).reply()
    assert "Now playing" in picked.content
    assert TAKE_ON_ME.title in picked.content
    assert discord.message(message_id)["components"] == []  # the menu is gone
    await lavalink.wait_for(
        lambda: (p := lavalink.player(GUILD)) is not None and p.track is not None
        and p.track.title == TAKE_ON_ME.title,
        what="the pick playing",
    )  # fmt: skip


async def test_an_unpicked_search_closes_itself_and_says_so(
    bot: MusicBot, discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PICK_SECONDS", 0.2)
    searching = await discord.invoke("search", {"query": "never gonna give you up"})
    await searching.reply()
    message_id, custom_id, _ = _menu(searching)
    await discord.wait_for(
        lambda: "expired" in discord.message(message_id)["content"], what="the menu closing"
    )
    assert discord.message(message_id)["components"] == []
    with pytest.raises(AssertionError, match="no usable component"):
        await discord.press(message_id, custom_id, values=["0"])
    reply = await (await discord.invoke("search", {"query": "no such song at all"})).reply()
    assert reply.ephemeral
    assert "found nothing" in reply.content
