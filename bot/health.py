"""The health endpoint: ``GET /health`` says whether the bot can play music right now, and
``GET /metrics`` serves the Prometheus metrics when the bot has them.

Docker's health check (and any monitor) asks it. It answers 200 only when every part the bot
needs works (the Discord gateway is connected, a Lavalink node is ready, the database takes a
write transaction), else 503; the JSON body names each part and, for a failing one, why. Off
unless a port is configured; bound to one address (127.0.0.1 by default), because it tells
anyone who can reach it how the bot is doing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

__all__ = ["CHECK_TIMEOUT", "METRICS_CONTENT_TYPE", "Check", "HealthServer"]

_log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[str | None]]
"""One part's check: ``None`` when it works, else a short reason (never a secret)."""

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""

CHECK_TIMEOUT = 3.0
"""Seconds one check may take before it counts as failing (Docker's own timeout is 5 s)."""


class HealthServer:
    """Serves ``/health`` from ``checks`` (name -> check) on ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, Check],
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._checks = dict(checks)
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port served (the real one once started, if 0 was asked for)."""
        return self._port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._serve_metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp has no public accessor for the bound socket
        sockets = getattr(server, "sockets", None) or ()
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        _log.info("health endpoint on http://%s:%d/health", self._host, self._port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def report(self) -> dict[str, str | None]:
        """Every check's verdict, run side by side, each within :data:`CHECK_TIMEOUT`."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(self._checks[name]) for name in names), return_exceptions=False
        )
        return dict(zip(names, results, strict=True))

    @staticmethod
    async def _run(check: Check) -> str | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                return await check()
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT:.0f} s"
        except Exception as exc:  # a broken check is a failing part, not a broken endpoint
            _log.warning("health check failed: %r", exc)
            return f"the check failed: {type(exc).__name__}"

    async def _health(self, _request: web.Request) -> web.Response:
        report = await self.report()
        healthy = all(problem is None for problem in report.values())
        body = {
            "status": "ok" if healthy else "failing",
            "checks": {name: problem or "ok" for name, problem in report.items()},
        }
        return web.json_response(body, status=200 if healthy else 503, dumps=json.dumps)

    async def _serve_metrics(self, _request: web.Request) -> web.Response:
        assert self._metrics is not None
        return web.Response(body=self._metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})
