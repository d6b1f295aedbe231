"""A busy node's frames are read in batches (bot/lavalink/readhold.py), with the aiohttp the
project installs: a hold that silently stopped engaging would only show as CPU in a bench."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.lavalink.readhold import ReadHold

HOLD = 0.2


@contextlib.asynccontextmanager
async def _server(frames: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    """A WebSocket server on 127.0.0.1 sending each string put in ``frames`` as it comes."""

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        while (text := await frames.get()) is not None:
            await ws.send_str(text)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", socket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> tuple[str, float]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type is aiohttp.WSMsgType.TEXT
    return message.data, time.monotonic()


async def test_frames_that_follow_each_other_closely_wait_for_one_read_after_the_hold() -> None:
    frames: asyncio.Queue[str | None] = asyncio.Queue()
    async with _server(frames) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        hold = ReadHold(ws, HOLD)
        assert hold.engaged, "the installed aiohttp no longer exposes the socket's transport"
        frames.put_nowait("a")
        await _receive(ws)
        hold.frame_read()
        assert not hold.holding, "a frame after a quiet spell must not hold the socket"
        frames.put_nowait("b")
        _, b_at = await _receive(ws)
        hold.frame_read()  # b followed a closely: busy
        assert hold.holding
        frames.put_nowait("c")
        frames.put_nowait("d")
        got = [await _receive(ws), await _receive(ws)]
        assert [text for text, _ in got] == ["c", "d"], "nothing lost or reordered"
        # Sent right after b, read only once the hold ended: both in the same read.
        assert got[0][1] - b_at >= HOLD * 0.9
        assert got[1][1] - got[0][1] < HOLD / 2
        assert not hold.holding
        hold.close()
        frames.put_nowait(None)
        await ws.close()


async def test_a_hold_on_a_closed_connection_ends_quietly() -> None:
    frames: asyncio.Queue[str | None] = asyncio.Queue()
    async with _server(frames) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        hold = ReadHold(ws, HOLD)
        hold.frame_read()
        hold.frame_read()
        assert hold.holding
        frames.put_nowait(None)
        await ws.close()
        await asyncio.sleep(HOLD * 1.5)  # the timer finds the transport closed: no error
        assert not hold.holding
        hold.close()


async def test_close_ends_a_hold_in_progress_and_the_socket_is_read_again() -> None:
    frames: asyncio.Queue[str | None] = asyncio.Queue()
    async with _server(frames) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        hold = ReadHold(ws, 30.0)
        hold.frame_read()
        hold.frame_read()
        assert hold.holding
        hold.close()
        assert not hold.holding
        frames.put_nowait("after")
        # Read long before the 30 s hold would have ended.
        assert (await _receive(ws))[0] == "after"
        frames.put_nowait(None)
        await asyncio.wait_for(ws.close(), 5)
