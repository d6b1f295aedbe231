"""``/doctor``: the bot's self-diagnosis for server managers, answered privately."""

from __future__ import annotations

from collections.abc import Sequence

import hikari
import lightbulb

from bot.checkup import Finding, Status
from bot.doctor import Doctor
from bot.metrics import Metrics

from .replies import GUILD_ONLY, guild_of, reply_with

__all__ = ["EMBED_LIMIT", "FIELD_LIMIT", "MAX_FIELDS", "loader", "render_findings"]

loader = lightbulb.Loader()

FIELD_LIMIT = 1024
"""Discord refuses an embed field value longer than this..."""
MAX_FIELDS = 25
"""...an embed with more fields than this..."""
EMBED_LIMIT = 6000
"""...and an embed whose texts add up to more than this."""
_NAME_LIMIT = 256
_TEXT_LIMIT = 400
_MORE_RESERVE = 40
_FOOTER_RESERVE = 160
_MARKS = {Status.OK: "✅", Status.WARNING: "⚠️", Status.PROBLEM: "❌"}
_COLORS = {
    Status.OK: hikari.Color(0x57F287),
    Status.WARNING: hikari.Color(0xFEE75C),
    Status.PROBLEM: hikari.Color(0xED4245),
}


@loader.command
class DoctorCommand(
    lightbulb.SlashCommand,
    name="doctor",
    description="Check my set-up: Lavalink, the database, my permissions here, the player",
    contexts=GUILD_ONLY,
    default_member_permissions=hikari.Permissions.MANAGE_GUILD,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, doctor: Doctor, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = doctor.examine(
                guild_id,
                ctx.user.id,
                ctx.channel_id,
                app_permissions=ctx.interaction.app_permissions,
            )
            await reply_with(ctx, metrics, work, render_findings, ephemeral=True)


def render_findings(findings: Sequence[Finding]) -> hikari.Embed:
    """One embed: a summary, then one field per area (in the order found), each finding on a
    line with its fix under it. Whatever would break Discord's limits is left out, and the
    footer says how much and where to see all of it."""
    problems = sum(f.status is Status.PROBLEM for f in findings)
    warnings = sum(f.status is Status.WARNING for f in findings)
    worst = Status.PROBLEM if problems else Status.WARNING if warnings else Status.OK
    fixes = any(f.fix for f in findings if f.status is not Status.OK)
    embed = hikari.Embed(title="Doctor", description=_summary(problems, warnings, fixes))
    embed.color = _COLORS[worst]
    areas: dict[str, list[str]] = {}
    for finding in findings:
        areas.setdefault(finding.area, []).append(_entry(finding))
    used = len(embed.title or "") + len(embed.description or "")
    left_out = 0
    for area, entries in areas.items():
        name = area[:_NAME_LIMIT]
        room = min(FIELD_LIMIT, EMBED_LIMIT - _FOOTER_RESERVE - used - len(name))
        if len(embed.fields) == MAX_FIELDS or room < _MORE_RESERVE * 2:
            left_out += len(entries)
            continue
        value, shown = _fit(entries, room)
        left_out += len(entries) - shown
        embed.add_field(name, value)
        used += len(name) + len(value)
    if left_out:
        embed.set_footer(
            f"{left_out} more finding{'' if left_out == 1 else 's'} did not fit here: "
            "`python -m bot check` on the bot's machine lists the set-up ones in full."
        )
    return embed


def _summary(problems: int, warnings: int, fixes: bool) -> str:
    if not problems and not warnings:
        return "All checks passed."
    counts = []
    if problems:
        counts.append(f"{problems} problem{'' if problems == 1 else 's'}")
    if warnings:
        counts.append(f"{warnings} warning{'' if warnings == 1 else 's'}")
    return f"Found {' and '.join(counts)}." + (" The fixes follow the arrows." if fixes else "")


def _entry(finding: Finding) -> str:
    line = f"{_MARKS[finding.status]} {_cut(finding.text)}"
    return f"{line}\n→ {_cut(finding.fix)}" if finding.fix else line


def _cut(text: str) -> str:
    """One finding's text or fix, short enough to leave room for the others."""
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1].rstrip() + "…"


def _fit(entries: Sequence[str], room: int) -> tuple[str, int]:
    """As many whole entries as fit in ``room`` characters (a first one too long is cut), then
    how many more there are; returns the text and how many entries it shows in full or cut."""
    lines: list[str] = []
    used = 0
    for index, entry in enumerate(entries):
        rest = len(entries) - index - 1
        budget = room - used - (_MORE_RESERVE if rest else 0) - (1 if lines else 0)
        line = entry
        if len(line) > budget:
            if lines:
                break
            line = line[: max(0, budget - 1)].rstrip() + "…"
        lines.append(line)
        used += len(line) + (1 if len(lines) > 1 else 0)
    if (more := len(entries) - len(lines)) > 0:
        lines.append(f"…and {more} more")
    return "\n".join(lines), len(lines) - (1 if more > 0 else 0)
