"""Prometheus metrics, served as ``GET /metrics`` beside ``/health``.

Events (a command answered, a database write) are counted as they happen; state (players,
queues, Lavalink nodes, repairs) is read from its owners when Prometheus scrapes, so nothing is
kept twice and an idle bot costs nothing. Every metric lives in this object's own registry,
not prometheus-client's global one, so one process can hold several bots (the tests do).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.background import BackgroundLoop
from bot.lavalink import NodeStatus
from bot.services import ServiceStats

__all__ = ["Metrics", "Outcome"]


class Outcome(enum.StrEnum):
    """How a command ended, as the user saw it."""

    OK = "ok"
    REFUSED = "refused"
    """Answered with a polite error (nothing playing, not in voice, ...)."""
    FAILED = "failed"
    """An unexpected error."""


class Metrics:
    """The bot's metrics; :meth:`watch` adds the state read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Collections by generation: a full one (generation 2) stops the event loop for as
        # long as it walks every object, tens of milliseconds with thousands of guilds.
        GCCollector(registry=self.registry)
        self.commands = Counter(
            "musicbot_commands",
            "Slash commands and controller buttons answered, by command and outcome.",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "musicbot_command_seconds",
            "Seconds from a slash command's arrival to its answer.",
            ["command"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.db_write_seconds = Histogram(
            "musicbot_db_write_seconds",
            "Seconds a database write transaction took, retries included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.db_write_failures = Counter(
            "musicbot_db_write_failures",
            "Database writes that failed after every retry.",
            registry=self.registry,
        )
        self.loop_lag_seconds = Histogram(
            "musicbot_event_loop_lag_seconds",
            "How late a timer due every 0.25 s ran: how long the event loop was kept busy "
            "(every command waits behind that).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self._lag_probe: BackgroundLoop | None = None

    def start_lag_probe(self, interval: float = 0.25) -> None:
        """Measure the event loop's lag from now on (:attr:`loop_lag_seconds`)."""
        if self._lag_probe is None:
            self._lag_probe = BackgroundLoop("loop-lag", lambda: self._probe(interval))
            self._lag_probe.start()

    async def close(self) -> None:
        if self._lag_probe is not None:
            await self._lag_probe.stop()
            self._lag_probe = None

    async def _probe(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag_seconds.observe(max(0.0, loop.time() - due))

    def command_done(self, command: str, outcome: Outcome, seconds: float) -> None:
        self.commands.labels(command, outcome.value).inc()
        self.command_seconds.labels(command).observe(seconds)

    def write_done(self, seconds: float, ok: bool) -> None:
        self.db_write_seconds.observe(seconds)
        if not ok:
            self.db_write_failures.inc()

    def watch(
        self,
        service: Callable[[], ServiceStats],
        nodes: Callable[[], Sequence[NodeStatus]],
    ) -> None:
        """Read the service's and the nodes' state whenever metrics are scraped."""
        self.registry.register(_StateCollector(service, nodes))

    def render(self) -> bytes:
        """Everything, in Prometheus' text format."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(
        self,
        service: Callable[[], ServiceStats],
        nodes: Callable[[], Sequence[NodeStatus]],
    ) -> None:
        self._service = service
        self._nodes = nodes

    def describe(self) -> list[Metric]:
        return []  # collected fresh each time; nothing to check for clashes up front

    def collect(self) -> Iterator[Metric]:
        state = self._service()
        players = GaugeMetricFamily(
            "musicbot_players", "Guilds with a player, by state.", labels=["state"]
        )
        players.add_metric(["stored"], state.guilds)
        players.add_metric(["in_voice"], state.in_voice)
        players.add_metric(["playing"], state.playing)
        players.add_metric(["paused"], state.paused)
        yield players
        yield GaugeMetricFamily(
            "musicbot_queued_tracks", "Upcoming tracks over every queue.", value=state.queued_tracks
        )
        yield GaugeMetricFamily(
            "musicbot_longest_queue",
            "Upcoming tracks in the longest queue.",
            value=state.longest_queue,
        )
        yield _counts(
            "musicbot_restores",
            "Guilds brought back after a restart or a lost node.",
            "kind",
            state.restores,
        )
        yield CounterMetricFamily(
            "musicbot_failovers", "Players moved to another Lavalink node.", value=state.failovers
        )
        yield _counts(
            "musicbot_repairs",
            "Divergences between what the bot promised and what played, repaired.",
            "divergence",
            state.repairs,
        )
        yield from self._node_metrics(self._nodes())

    @staticmethod
    def _node_metrics(nodes: Sequence[NodeStatus]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "musicbot_lavalink_up", "1 while the node is ready.", labels=["node"]
        )
        connects = CounterMetricFamily(
            "musicbot_lavalink_connects",
            "Sessions opened with the node (the first connect and every reconnect).",
            labels=["node"],
        )
        penalty = GaugeMetricFamily(
            "musicbot_lavalink_penalty",
            "The node's load penalty (lower gets new players).",
            labels=["node"],
        )
        node_players = GaugeMetricFamily(
            "musicbot_lavalink_players",
            "Players on the node as its last stats said, by state.",
            labels=["node", "state"],
        )
        frames = GaugeMetricFamily(
            "musicbot_lavalink_frames_per_minute",
            "Audio frames per minute on the node (its last stats), by kind.",
            labels=["node", "kind"],
        )
        for node in nodes:
            up.add_metric([node.name], 1 if node.up else 0)
            connects.add_metric([node.name], node.connects)
            if node.penalty is not None:
                penalty.add_metric([node.name], node.penalty)
            if node.players is not None and node.playing_players is not None:
                node_players.add_metric([node.name, "all"], node.players)
                node_players.add_metric([node.name, "playing"], node.playing_players)
            for kind, value in (
                ("sent", node.frames_sent),
                ("nulled", node.frames_nulled),
                ("deficit", node.frames_deficit),
            ):
                if value is not None:
                    frames.add_metric([node.name, kind], value)
        yield from (up, connects, penalty, node_players, frames)


def _counts(name: str, documentation: str, label: str, counts: Mapping[str, int]) -> Metric:
    """A counter family with one sample per ``label`` value, in a stable order."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family
