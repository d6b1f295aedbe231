"""What users type: searches and public links pass; files and private hosts never do."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from bot.extensions.sentences import error_text
from bot.services import QueryResolver, ServiceError
from tests.services.fakes import refused


def resolver_with(table: dict[str, list[str]]) -> QueryResolver:
    async def resolve(host: str) -> Iterable[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return QueryResolver(resolve)


@pytest.fixture
def queries() -> QueryResolver:
    return resolver_with(
        {
            "cdn.example.org": ["93.184.216.34"],
            "evil.example.org": ["10.0.0.5"],
            "mixed.example.org": ["93.184.216.34", "127.0.0.1"],
            "v6.example.org": ["::ffff:192.168.1.1"],
        }
    )


@pytest.mark.parametrize(
    ("query", "identifier"),
    [
        ("never gonna give you up", "ytsearch:never gonna give you up"),
        ("  Artist: Song (live)  ", "ytsearch:Artist: Song (live)"),
        ("dQw4w9WgXcQ", "ytsearch:dQw4w9WgXcQ"),
        ("scsearch: lofi beats", "scsearch:lofi beats"),
        ("YTSEARCH:abc", "ytsearch:abc"),
        ("line\nbreak\x00", "ytsearch:linebreak"),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        ("https://youtu.be/dQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ"),
        ("https://cdn.example.org/song.mp3", "https://cdn.example.org/song.mp3"),
        ("http://93.184.216.34/radio", "http://93.184.216.34/radio"),
    ],
)
async def test_accepted(queries: QueryResolver, query: str, identifier: str) -> None:
    assert await queries.identifier(query) == identifier


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "what to play"),
        ("   \n ", "what to play"),
        ("x" * 501, "too long"),
        ("file:///etc/passwd", "http(s)"),
        ("local:/music/a.mp3", "http(s)"),
        ("/etc/passwd", "http(s)"),
        ("../../secret.flac", "http(s)"),
        ("C:\\Users\\me\\song.mp3", "http(s)"),
        ("ftp://example.org/a.mp3", "http(s)"),
        ("http://localhost:2333/v4/info", "private"),
        ("http://127.0.0.1/x", "private"),
        ("http://[::1]/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://192.168.0.10:8080/stream", "private"),
        ("http://lavalink.internal/x", "private"),
        ("https://evil.example.org/a.mp3", "private"),
        ("https://mixed.example.org/a.mp3", "private"),
        ("https://v6.example.org/a.mp3", "private"),
        ("https://nowhere.example.org/a.mp3", "couldn't find"),
        ("https://user:pass@cdn.example.org/a.mp3", "user name"),
        ("https://cdn.example.org:99999/a.mp3", "doesn't look right"),
        ("ytsearch:", "search for"),
    ],
)
async def test_refused_politely(queries: QueryResolver, query: str, says: str) -> None:
    with pytest.raises(ServiceError) as info:
        await queries.identifier(query)
    assert says in error_text(info.value)


@pytest.mark.parametrize(
    "query",
    [
        "http://2130706433/x",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/x",  # ... in hex
        "http://0177.0.0.1/x",  # ... in octal
        "http://127.1/x",  # ... shortened
        "http://0/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fe80::1%25eth0]/x",
        "http://youtube.com@127.0.0.1/x",
    ],
)
async def test_odd_forms_of_private_addresses_are_refused_with_the_real_resolver(
    query: str,
) -> None:
    # These never reach DNS: getaddrinfo reads each as a numeric address, as Lavalink would.
    with pytest.raises(ServiceError) as info:
        await QueryResolver().identifier(query)
    assert "private" in error_text(info.value) or "user name" in error_text(info.value)


@pytest.mark.parametrize(
    "query",
    [
        "http://[::7f00:1]/x",  # IPv4-compatible IPv6 of 127.0.0.1
        "http://[64:ff9b::a00:5]/x",  # NAT64 of 10.0.0.5
        "http://[64:ff9b:1::808:808]/x",  # a site-local NAT64
        "http://[2002:c0a8:10a::]/x",  # 6to4 of 192.168.1.10
        "https://compat.example.org/a.mp3",
    ],
)
async def test_ipv6_forms_that_carry_a_private_ipv4_address_are_refused(query: str) -> None:
    queries = resolver_with({"compat.example.org": ["::a9fe:a9fe"]})  # 169.254.169.254
    with refused("private"):
        await queries.identifier(query)


@pytest.mark.parametrize(
    "query",
    [
        "http://127.0.0.1\\.youtube.com/x",  # a URL parser that reads \ as / goes to 127.0.0.1
        "http://127.0.0.1\\@youtube.com/x",
        "http://you tube.com/x",
    ],
)
async def test_host_names_with_characters_no_host_has_are_refused(
    queries: QueryResolver, query: str
) -> None:
    with pytest.raises(ServiceError):
        await queries.identifier(query)
