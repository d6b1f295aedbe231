"""Turn what a user typed into a Lavalink identifier, or refuse it politely.

Lavalink loads whatever identifier it is given, including files on its own disk and URLs on
the private network it sits in. So only two kinds of input pass: plain text, which becomes a
YouTube search, and ``http(s)`` links to public hosts. Everything else (``file:``, local
paths, other schemes, ``localhost``, private and link-local addresses, names that resolve to
them) is refused here and never reaches Lavalink.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

from .errors import (
    BadLink,
    EmptyQuery,
    EmptySearch,
    LinkWithCredentials,
    NotALink,
    PrivateAddress,
    QueryTooLong,
    UnknownHost,
)

__all__ = ["MAX_QUERY_LENGTH", "HostResolver", "QueryResolver", "system_resolver"]

MAX_QUERY_LENGTH = 500
SEARCH_PREFIXES = ("ytsearch:", "ytmsearch:", "scsearch:")

# Hosts served by Lavalink's source plugins, which fetch from the service's own API and never
# from the address in the link; no DNS check is needed for them.
MEDIA_HOSTS = frozenset(
    {
        "youtube.com",
        "youtu.be",
        "music.youtube.com",
        "soundcloud.com",
        "bandcamp.com",
        "twitch.tv",
        "vimeo.com",
    }
)

HostResolver = Callable[[str], Awaitable[Iterable[str]]]
"""Returns the IP addresses a host name resolves to."""


async def system_resolver(host: str) -> list[str]:
    """Resolve ``host`` without blocking the event loop (the loop runs getaddrinfo in a thread)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(3.0):
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class QueryResolver:
    """Validates queries; ``resolver`` is injectable so tests need no DNS."""

    def __init__(self, resolver: HostResolver = system_resolver) -> None:
        self._resolver = resolver

    async def identifier(self, query: str) -> str:
        """The Lavalink identifier for ``query``.

        Raises:
            ServiceError: saying why the query is refused.
        """
        text = _clean(query)
        if not text:
            raise EmptyQuery()
        if len(text) > MAX_QUERY_LENGTH:
            raise QueryTooLong(MAX_QUERY_LENGTH)
        lowered = text.lower()
        if lowered.startswith(("http://", "https://")):
            await self._check_url(text)
            return text
        if lowered.startswith(SEARCH_PREFIXES):
            prefix, _, terms = text.partition(":")
            if not terms.strip():
                raise EmptySearch()
            return f"{prefix.lower()}:{terms.strip()}"
        if _looks_like_location(text):
            raise NotALink()
        return "ytsearch:" + text

    async def _check_url(self, url: str) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            host = None
        if not host or any(ch in _NOT_IN_HOSTS or ch.isspace() for ch in host):
            # Parsers disagree on these: ``127.0.0.1\.youtube.com`` is a YouTube host here
            # and 127.0.0.1 to a parser that reads ``\`` as ``/``.
            raise BadLink()
        host = host.rstrip(".").lower()
        if parts.username or parts.password:
            raise LinkWithCredentials()
        if _is_media_host(host):
            return
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
            raise PrivateAddress()
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [
                    ipaddress.ip_address(a.split("%", 1)[0]) for a in await self._resolver(host)
                ]
            except (OSError, TimeoutError, ValueError):
                raise UnknownHost(host) from None
        if not addresses or not all(_is_public(address) for address in addresses):
            raise PrivateAddress()


def _clean(query: str) -> str:
    # Control characters (newlines, NUL, bidi overrides) have no place in a search or a URL.
    return "".join(ch for ch in query if unicodedata.category(ch)[0] != "C").strip()


def _looks_like_location(text: str) -> bool:
    """Local paths and non-http schemes (``file:``, ``local:``, ``ftp://``, ``C:\\``)."""
    if text.startswith(("/", "\\", "~", "./", "../")):
        return True
    if len(text) >= 3 and text[0].isalpha() and text[1] == ":" and text[2] in "\\/":
        return True
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme or " " in scheme:
        return False
    if rest.startswith("//"):
        return True
    return scheme.lower() in {"file", "local", "jar", "data", "javascript", "ftp", "smb", "nfs"}


def _is_media_host(host: str) -> bool:
    return any(host == known or host.endswith("." + known) for known in MEDIA_HOSTS)


_NOT_IN_HOSTS = frozenset("\\/@<>^`{|}\"'")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a site's own translator
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address: mapped,
        # IPv4-compatible, NAT64, 6to4 and Teredo.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if address in _LOCAL_NAT64:
            return False
        if embedded is None and (address in _V4_COMPATIBLE or address in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    return address.is_global and not address.is_multicast
