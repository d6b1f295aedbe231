"""How ``/settings`` shows a server's settings: one line per setting, by the name users see."""

from __future__ import annotations

from bot.services.views import SettingsView

from .sentences import duration, songs

__all__ = ["server_settings", "setting_changed"]


def server_settings(view: SettingsView) -> dict[str, str]:
    """Every ``/settings`` value as users read it, by its name, in the order ``show`` lists."""
    s = view.settings
    default_idle = int(view.default_idle_timeout_s * 1000)
    if s.always_on:
        idle = "none: 24/7 is on"
    elif s.idle_timeout_s is None:
        idle = (
            f"the bot's default ({duration(default_idle)})"
            if default_idle > 0
            else "the bot's default (never)"
        )
    elif s.idle_timeout_s == 0:
        idle = "none: I leave as soon as I'm alone or the queue has ended"
    else:
        idle = duration(s.idle_timeout_s * 1000)
    share = s.user_share_percent
    return {
        "DJ role": (
            "none: everyone in my voice channel may control the music"
            if s.dj_role_id is None
            else f"<@&{s.dj_role_id}> (and members with Manage Server)"
        ),
        "Default volume": f"{s.default_volume}% (each new queue starts at it)",
        "Announcements": (
            "off"
            if not s.announce
            else "where the music was asked for"
            if s.announce_channel_id is None
            else f"in <#{s.announce_channel_id}>"
        ),
        "24/7": (
            "on: I stay in voice when the channel empties or the queue ends"
            if s.always_on
            else "off"
        ),
        "Idle timeout": idle,
        "Queue limit": f"{s.max_queue_length} {songs(s.max_queue_length)}",
        "Song length limit": (
            "any length"
            if s.max_track_ms is None
            else f"{duration(s.max_track_ms)} (live streams: any)"
        ),
        "Share per member": (
            "no limit"
            if share is None
            else f"{share}% of the queue ({max(1, s.max_queue_length * share // 100)} songs)"
        ),
        "Vote skip": f"passes with votes from more than {s.vote_skip_percent}% of the listeners",
        "Fair queue": (
            "on: songs are taken in turn by who asked for them"
            if s.fair_queue
            else "off: songs play in the order they were asked for"
        ),
    }


def setting_changed(view: SettingsView, name: str) -> str:
    """The answer to a ``/settings`` change: the one setting, as it is now."""
    return f"**{name}**: {server_settings(view)[name]}."
