"""The monitoring rules as Faust agents (Faust itself is behind ``kmevents.adapters.faust``).

Thin wiring only: the rule logic is ``rules.py`` and the per-cluster state is
``consumer.ClusterMonitor``. The app has

- an agent on the events topic that feeds each record to its cluster's
  monitor and counts it in ``event_rates``, a hopping windowed table keyed
  ``<cluster>|<type>`` whose windows are placed by the event's SOURCE time
  (``occurred_at``, via ``relative_to``), not by arrival;
- a timer that evaluates the rules every ``interval`` seconds and sends the
  transitions to the sinks;
- a startup task that bootstraps each cluster's monitor (snapshot + log).

Faust's web server binds 127.0.0.1 only, on ``web_port`` (0 disables it).
"""

from __future__ import annotations

import logging
import time

import orjson

from kmevents.adapters import faust as faust_adapter
from kmevents.monitor.consumer import ClusterMonitor, bootstrap, pipeline_status
from kmevents.monitor.sinks import Sink
from kmevents.settings import Settings
from kmevents.timespec import micros_of

log = logging.getLogger("kmevents.monitor.faust")


class _Rec:
    """A Faust message seen as a log record (offset, timestamp ms, key, value)."""

    __slots__ = ("offset", "timestamp", "key", "value")

    def __init__(self, message: faust_adapter.Message) -> None:
        self.offset = message.offset
        self.timestamp = int(message.timestamp * 1000) if isinstance(message.timestamp, float) else message.timestamp
        self.key = message.key
        self.value = message.value


def occurred_seconds(event: faust_adapter.Event) -> float:
    """Source time of a Faust event (``occurred_at``), in epoch seconds; the log time if it has none."""
    try:
        occ = orjson.loads(event.value).get("occurred_at")
        return micros_of(occ) / 1e6
    except Exception:  # noqa: BLE001 - undecodable: fall back to the record's time
        return float(event.message.timestamp)


def app_id(events_topic: str) -> str:
    """One Faust app (and so one changelog topic) per events topic monitored."""
    return "kmevents-monitor-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in events_topic)


def make_app(settings: Settings, clusters: list[str], sinks: list[Sink], *, web_port: int = 0,
             interval: float = 2.0, partitions: int | None = None
             ) -> tuple[faust_adapter.App, dict[str, ClusterMonitor]]:
    """The app; ``partitions`` is the events topic's real partition count (Faust
    refuses a windowed table whose changelog is partitioned differently)."""
    m = settings.monitor
    partitions = partitions or settings.kafka.partitions
    app = faust_adapter.make_app(app_id(settings.kafka.events_topic), settings.kafka,
                                 datadir=settings.stack.home.parent / "faust-monitor",
                                 web_port=web_port, default_web_port=6067, topic_partitions=partitions)
    events = faust_adapter.raw_topic(app, settings.kafka.events_topic)
    step = max(1.0, m.window_seconds / 6)
    event_rates = (app.Table("kmevents-monitor-rates", default=int, partitions=partitions)
                   .hopping(m.window_seconds, step, expires=m.window_seconds * 3)
                   .relative_to(occurred_seconds))  # type: ignore[attr-defined]  # faust's stubs lack it
    monitors: dict[str, ClusterMonitor] = {}

    @app.agent(events)
    async def watch(stream: faust_adapter.Stream) -> None:
        async for event in stream.events():
            cluster = (event.key or b"").decode(errors="replace")
            mon = monitors.get(cluster)
            if mon is None:
                continue
            rec = _Rec(event.message)
            if mon.feed([rec]):
                typ = orjson.loads(event.value).get("type")
                event_rates[f"{cluster}|{typ}"] += 1

    @app.timer(interval=interval)
    async def evaluate() -> None:
        now_ms = int(time.time() * 1000)
        for mon in monitors.values():
            await pipeline_status(settings, mon)
            transitions = mon.tick(now_ms)
            for s in sinks:
                await s.send(transitions, now_ms=now_ms, position=mon.position())

    @app.task
    async def boot() -> None:
        for c in clusters:
            monitors[c] = await bootstrap(settings, c)
            log.info("monitoring %s from offset %s", c, monitors[c].offset)

    app.conf.monitors = monitors
    return app, monitors


def run_worker(settings: Settings, clusters: list[str], *, web_port: int = 0, jsonl: str | None = None) -> int:
    """Run the Faust worker until interrupted (``kmevents monitor --engine faust``)."""
    import sys

    from kmevents.monitor.sinks import Alertmanager, AlertsTopic, JsonLines

    sinks: list[Sink] = [AlertsTopic(settings)]
    if jsonl:
        sinks.append(JsonLines(sys.stdout if jsonl == "-" else open(jsonl, "a"),  # noqa: SIM115
                               settings.monitor.runbook_base))
    if settings.monitor.alertmanager_url:
        sinks.append(Alertmanager(settings.monitor.alertmanager_url, settings.monitor.runbook_base))
    import asyncio

    from kmevents.adapters import kafka as kafka_adapter

    ends = asyncio.run(kafka_adapter.end_offsets(settings.kafka, settings.kafka.events_topic))
    app, _ = make_app(settings, clusters, sinks, web_port=web_port, partitions=len(ends) or None)
    return faust_adapter.run(app)
