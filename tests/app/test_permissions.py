"""The bot's permissions in a channel, computed as Discord does (``bot.permissions``)."""

from __future__ import annotations

from collections.abc import Mapping

import hikari

from bot.permissions import ALL, permissions_in

P = hikari.Permissions
ROLE = hikari.PermissionOverwriteType.ROLE
MEMBER = hikari.PermissionOverwriteType.MEMBER
GUILD = 1000
OWNER = 2000
ME = 3000
SOMEONE = 3001
DJ = 4001
MUTED = 4002
ADMIN = 4003
EVERYONE = P.VIEW_CHANNEL | P.SEND_MESSAGES | P.EMBED_LINKS | P.CONNECT | P.SPEAK
ROLES = {GUILD: EVERYONE, DJ: P.PRIORITY_SPEAKER, MUTED: P.NONE, ADMIN: P.ADMINISTRATOR}


def overwrite(
    target: int, allow: P = P.NONE, deny: P = P.NONE, *, kind: hikari.PermissionOverwriteType = ROLE
) -> hikari.PermissionOverwrite:
    return hikari.PermissionOverwrite(id=target, type=kind, allow=allow, deny=deny)


def mine(
    *overwrites: hikari.PermissionOverwrite,
    roles: tuple[int, ...] = (),
    role_permissions: Mapping[int, P] = ROLES,
    member: int = ME,
    timed_out: bool = False,
) -> P:
    return permissions_in(
        guild_id=GUILD,
        owner_id=OWNER,
        member_id=member,
        role_ids=roles,
        role_permissions=role_permissions,
        overwrites={int(o.id): o for o in overwrites},
        timed_out=timed_out,
    )


def test_everyone_alone_gives_the_everyone_role() -> None:
    assert mine() == EVERYONE
    assert mine(roles=(GUILD,)) == EVERYONE  # hikari lists @everyone among a member's roles
    assert mine(role_permissions={}) == P.NONE


def test_roles_add_up() -> None:
    assert mine(roles=(DJ, MUTED)) == EVERYONE | P.PRIORITY_SPEAKER
    assert mine(roles=(9999,)) == EVERYONE  # a role just deleted counts as none


def test_everyone_overwrite_denies_then_allows() -> None:
    assert mine(overwrite(GUILD, deny=P.SPEAK)) == EVERYONE & ~P.SPEAK
    both = overwrite(GUILD, allow=P.SPEAK | P.STREAM, deny=P.SPEAK)
    assert mine(both) == EVERYONE | P.STREAM


def test_role_overwrites_combine_and_an_allow_beats_a_deny() -> None:
    everyone_denies = overwrite(GUILD, deny=P.SPEAK)
    assert mine(everyone_denies, overwrite(DJ, allow=P.SPEAK), roles=(DJ,)) & P.SPEAK
    # Another role's deny does not undo it: all role denies first, then all role allows.
    ows = (overwrite(MUTED, deny=P.SPEAK | P.CONNECT), overwrite(DJ, allow=P.SPEAK))
    result = mine(*ows, roles=(DJ, MUTED))
    assert P.SPEAK in result
    assert P.CONNECT not in result
    # A role the member lacks changes nothing.
    assert mine(overwrite(MUTED, deny=P.SPEAK), roles=(DJ,)) == EVERYONE | P.PRIORITY_SPEAKER


def test_a_role_deny_beats_the_everyone_allow() -> None:
    ows = (overwrite(GUILD, allow=P.SPEAK), overwrite(MUTED, deny=P.SPEAK))
    assert P.SPEAK not in mine(*ows, roles=(MUTED,))


def test_the_members_own_overwrite_comes_last() -> None:
    ows = (
        overwrite(GUILD, deny=P.SPEAK),
        overwrite(DJ, allow=P.SEND_MESSAGES, deny=P.CONNECT),
        overwrite(ME, allow=P.SPEAK | P.CONNECT, deny=P.SEND_MESSAGES, kind=MEMBER),
    )
    result = mine(*ows, roles=(DJ,))
    assert P.SPEAK in result
    assert P.CONNECT in result
    assert P.SEND_MESSAGES not in result
    # Someone else's overwrite is not mine.
    assert mine(overwrite(SOMEONE, deny=P.SPEAK, kind=MEMBER)) == EVERYONE


def test_an_overwrite_is_taken_only_for_its_kind() -> None:
    # A member-typed overwrite that names a role id (and the reverse) is ignored.
    assert mine(overwrite(DJ, deny=P.SPEAK, kind=MEMBER), roles=(DJ,)) & P.SPEAK
    assert mine(overwrite(ME, deny=P.SPEAK, kind=ROLE)) & P.SPEAK
    assert mine(overwrite(GUILD, deny=P.SPEAK, kind=MEMBER)) & P.SPEAK


def test_administrator_has_everything_whatever_the_overwrites() -> None:
    ows = (
        overwrite(GUILD, deny=P.all_permissions()),
        overwrite(ME, deny=P.all_permissions(), kind=MEMBER),
    )
    assert mine(*ows, roles=(ADMIN,)) == ALL
    # @everyone itself being administrator counts too.
    assert mine(*ows, role_permissions={GUILD: P.ADMINISTRATOR}) == ALL
    # An overwrite cannot grant administrator.
    assert mine(overwrite(GUILD, allow=P.ADMINISTRATOR)) == EVERYONE | P.ADMINISTRATOR
    assert mine(overwrite(GUILD, allow=P.ADMINISTRATOR)) != ALL


def test_the_owner_has_everything() -> None:
    ows = (overwrite(GUILD, deny=P.all_permissions()),)
    assert mine(*ows, member=OWNER, role_permissions={}) == ALL
    assert mine(*ows, member=OWNER, timed_out=True) == ALL


def test_a_timed_out_member_may_only_look() -> None:
    result = mine(roles=(DJ,), timed_out=True)
    assert result == P.VIEW_CHANNEL
    assert mine(roles=(ADMIN,), timed_out=True) == ALL  # administrators cannot be timed out
