"""What /doctor shows stays inside Discord's embed limits, however much it found."""

from __future__ import annotations

import hikari

from bot.checkup import Finding, Status
from bot.extensions.doctor import EMBED_LIMIT, FIELD_LIMIT, MAX_FIELDS, render_findings


def size(embed: hikari.Embed) -> int:
    """What Discord counts against the 6000 characters of an embed."""
    total = len(embed.title or "") + len(embed.description or "")
    total += sum(len(f.name) + len(f.value) for f in embed.fields)
    return total + len(embed.footer.text or "" if embed.footer else "")


def assert_within_limits(embed: hikari.Embed) -> None:
    assert len(embed.fields) <= MAX_FIELDS
    assert all(len(f.value) <= FIELD_LIMIT and len(f.name) <= 256 for f in embed.fields)
    assert all(f.value for f in embed.fields)
    assert size(embed) <= EMBED_LIMIT


def test_all_ok_is_green_one_field_per_area_in_order() -> None:
    embed = render_findings(
        [
            Finding("Discord", Status.OK, "connected"),
            Finding("Lavalink a", Status.OK, "Lavalink 4.2.2"),
            Finding("Lavalink a", Status.OK, "sources: youtube"),
            Finding("Database", Status.OK, "takes writes"),
        ]
    )
    assert embed.description == "All checks passed."
    assert embed.color == hikari.Color(0x57F287)
    assert [(f.name, f.value) for f in embed.fields] == [
        ("Discord", "✅ connected"),
        ("Lavalink a", "✅ Lavalink 4.2.2\n✅ sources: youtube"),
        ("Database", "✅ takes writes"),
    ]
    assert embed.footer is None


def test_problems_and_warnings_are_counted_with_their_fixes() -> None:
    embed = render_findings(
        [
            Finding("Permissions", Status.PROBLEM, "I lack Speak in #voice", "give Speak"),
            Finding("Permissions", Status.WARNING, "you are in no voice channel", "join one"),
            Finding("Lavalink a", Status.WARNING, "a bandcamp search found nothing"),
        ]
    )
    assert embed.description == "Found 1 problem and 2 warnings. The fixes follow the arrows."
    assert embed.color == hikari.Color(0xED4245)
    assert embed.fields[0].value == (
        "❌ I lack Speak in #voice\n→ give Speak\n⚠️ you are in no voice channel\n→ join one"
    )
    only_warning = render_findings([Finding("Lavalink a", Status.WARNING, "found nothing")])
    assert only_warning.description == "Found 1 warning."
    assert only_warning.color == hikari.Color(0xFEE75C)


def test_a_long_finding_is_cut_and_leaves_room_for_the_others() -> None:
    findings = [Finding("Lavalink a", Status.PROBLEM, "x" * 5000, "y" * 3000)] + [
        Finding("Lavalink a", Status.OK, f"line {i}") for i in range(3)
    ]
    embed = render_findings(findings)
    assert_within_limits(embed)
    (field,) = embed.fields
    problem, fix, *rest = field.value.split("\n")
    assert problem.startswith("❌ xxx")
    assert problem.endswith("x…")
    assert fix.startswith("→ yyy")
    assert fix.endswith("y…")
    assert rest == ["✅ line 0", "✅ line 1", "✅ line 2"]
    assert embed.footer is None


def test_what_does_not_fit_in_a_field_is_counted() -> None:
    findings = [Finding("Lavalink a", Status.OK, f"{i} " + "z" * 390) for i in range(10)]
    embed = render_findings(findings)
    assert_within_limits(embed)
    (field,) = embed.fields
    assert field.value.startswith("✅ 0 zzz")
    assert field.value.endswith("\n…and 8 more")
    assert embed.footer is not None
    assert embed.footer.text is not None
    assert embed.footer.text.startswith("8 more findings did not fit here")


def test_many_long_findings_in_many_areas_stay_within_the_embed() -> None:
    findings = [
        Finding(f"Lavalink node-{n:02} " + "n" * 300, status, f"{'t' * 200} {i}", "f" * 150)
        for n in range(40)
        for i, status in enumerate((Status.OK, Status.WARNING, Status.PROBLEM))
    ]
    embed = render_findings(findings)
    assert_within_limits(embed)
    assert embed.footer is not None
    assert embed.footer.text is not None
    lines = [line for f in embed.fields for line in f.value.split("\n")]
    shown = sum(line.startswith(("✅", "⚠️", "❌")) for line in lines)
    assert embed.footer.text.startswith(f"{len(findings) - shown} more findings did not fit")
    assert embed.description == "Found 40 problems and 40 warnings. The fixes follow the arrows."
