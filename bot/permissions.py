"""A member's permissions in a guild channel, computed as Discord computes them.

hikari 2.6 has no helper for this, and ``/doctor`` needs the bot's own permissions in a voice
channel (Discord only hands over ``app_permissions`` for the channel an interaction came from).
Discord's rules, in order:

1. The guild's owner has every permission.
2. Base: the ``@everyone`` role's permissions (its id is the guild's), OR every role the member
   has. With ADMINISTRATOR among them the member has every permission, overwrites or not.
3. The channel's ``@everyone`` overwrite: its deny removes, then its allow adds.
4. The overwrites of the member's roles, combined: every deny removes, then every allow adds
   (so one role's allow beats another role's deny).
5. The member's own overwrite: deny removes, then allow adds.
6. A member in time-out keeps only View Channel and Read Message History.

Pure functions of plain values, so they are tested without a cache or a gateway.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import hikari

__all__ = ["ALL", "permissions_in"]

ALL = hikari.Permissions.all_permissions()
"""Every permission hikari knows: what the owner and an administrator hold."""
_TIMED_OUT_KEEPS = hikari.Permissions.VIEW_CHANNEL | hikari.Permissions.READ_MESSAGE_HISTORY


def permissions_in(
    *,
    guild_id: int,
    owner_id: int,
    member_id: int,
    role_ids: Collection[int],
    role_permissions: Mapping[int, hikari.Permissions],
    overwrites: Mapping[int, hikari.PermissionOverwrite],
    timed_out: bool = False,
) -> hikari.Permissions:
    """What ``member_id`` may do in one channel of ``guild_id``.

    ``role_ids`` are the member's roles (``@everyone`` may be among them or not);
    ``role_permissions`` maps role ids, ``@everyone`` (the guild's id) included, to their
    permissions (a role it lacks counts as none: one just deleted); ``overwrites`` are the
    channel's, by target id (for a thread, pass its parent channel's).
    """
    if member_id == owner_id:
        return ALL
    none = hikari.Permissions.NONE
    roles = [role_id for role_id in role_ids if role_id != guild_id]
    base = role_permissions.get(guild_id, none)
    for role_id in roles:
        base |= role_permissions.get(role_id, none)
    if base & hikari.Permissions.ADMINISTRATOR:
        return ALL
    permissions = base
    everyone = overwrites.get(guild_id)
    if everyone is not None and everyone.type == hikari.PermissionOverwriteType.ROLE:
        permissions = (permissions & ~everyone.deny) | everyone.allow
    allow = deny = none
    for role_id in roles:
        overwrite = overwrites.get(role_id)
        if overwrite is not None and overwrite.type == hikari.PermissionOverwriteType.ROLE:
            allow |= overwrite.allow
            deny |= overwrite.deny
    permissions = (permissions & ~deny) | allow
    own = overwrites.get(member_id)
    if own is not None and own.type == hikari.PermissionOverwriteType.MEMBER:
        permissions = (permissions & ~own.deny) | own.allow
    if timed_out:
        permissions &= _TIMED_OUT_KEEPS
    return permissions
