"""The monitoring consumer of one cluster: state by the one reducer, rules over events + state.

:class:`ClusterMonitor` is fed log records in order. It keeps the cluster's
state by folding them with the reducer (starting from the replay engine's
state at the end of the log, which itself starts from the newest snapshot),
feeds every event to the :class:`~kmevents.monitor.rules.RuleEngine`, and
``tick()`` evaluates the rules, deciding "catching up" from how far the
consumer is behind the high watermark and how old the records it reads are.
The plain loop (:func:`run`, ``kmevents monitor``) and the Faust agents
(``faust_rules.py``) both drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.contract import DecodeError, decode_fast
from kmevents.folding import UNDECODABLE, Fold
from kmevents.monitor.rules import Alert, RuleEngine, is_catching_up
from kmevents.monitor.sinks import Sink
from kmevents.monitor.tail import PartitionTail
from kmevents.reducer import ClusterState
from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint, read_checkpoints


async def checkpoints(settings: Settings, client: etcd_adapter.EtcdClient) -> tuple[int, dict[int, Checkpoint]]:
    """The live generation's checkpoints by partition, read at one revision (returned first)."""
    return await read_checkpoints(client, settings.etcd.prefix)


def lags(ends: dict[int, int], cps: dict[int, Checkpoint]) -> dict[int, int]:
    """Records not yet derived per partition: ``end - (checkpoint + 1)``; a partition never taken counts whole."""
    return {p: max(0, end - ((cps[p].offset if p in cps else -1) + 1)) for p, end in ends.items()}


@dataclass
class ClusterMonitor:
    cluster: str
    partition: int
    state: ClusterState
    engine: RuleEngine
    highwater: int = 0
    last_recorded_ms: int | None = None
    arrivals: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))  # (wall s, count)
    firing_log: list[dict[str, Any]] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)
    dead_letters: int | None = None
    undecodable: int = 0
    _fold: Fold = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._fold = Fold(self.state, None, partition=self.partition)
        self.engine.track_pods()  # (feed tells it of every pod the fold changes)

    @property
    def offset(self) -> int:
        return self.state.offset

    def feed(self, records: list[Any], *, observe_only: bool = False) -> int:
        """Apply records (ConsumerRecords or LogRecords of the cluster's partition) in order; returns how many."""
        key = self.cluster.encode()
        n = 0
        fold = self._fold
        if fold.state is not self.state:
            fold = self._fold = Fold(self.state, None, partition=self.partition)
        for rec in records:
            if rec.key != key or (not observe_only and rec.offset <= self.state.offset):
                continue
            if observe_only:
                try:
                    ev = decode_fast(rec.value or b"")
                except DecodeError:
                    self.undecodable += 1
                    continue
            else:
                # the worker dead-letters what the fold cannot use; the monitor skips it
                if fold.step(rec.offset, rec.key, rec.value) is UNDECODABLE:
                    self.undecodable += 1
                    continue
                for kind, id in self.state.take_dirty():
                    if kind == "pod":
                        self.engine.pod_changed(id)
                ev = fold.event  # type: ignore[assignment]
            self.engine.observe(ev, recorded_ms=rec.timestamp)
            self.last_recorded_ms = rec.timestamp
            n += 1
        if n:
            self.arrivals.append((time.time(), n))
        return n

    def rate(self, seconds: float = 10.0) -> float:
        """Events per second of wall time over the last ``seconds``."""
        lo = time.time() - seconds
        return sum(n for t, n in self.arrivals if t >= lo) / seconds

    def catching_up(self, now_ms: int) -> bool:
        behind = max(0, self.highwater - (self.state.offset + 1))
        return is_catching_up(behind_records=behind, last_recorded_ms=self.last_recorded_ms, now_ms=now_ms,
                              t=self.engine.t)

    def tick(self, now_ms: int) -> list[Alert]:
        out = self.engine.evaluate(self.state, now_ms=now_ms, catching_up=self.catching_up(now_ms),
                                   lag=self.lag or None, dead_letters=self.dead_letters)
        for a in out:
            self.firing_log.append(a.as_dict(now_ms, self.engine.t.runbook_base))
        del self.firing_log[:-200]
        return out

    def position(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "partition": self.partition, "offset": self.state.offset}


async def bootstrap(settings: Settings, cluster: str, *, warm_records: int | None = None) -> ClusterMonitor:
    """The state at the end of the log (newest snapshot + replay), and the rule windows warmed on the last records."""
    from kmevents.errors import UsageError
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.logsource import partition_of
    from kmevents.replay.sources import KafkaSource
    from kmevents.store.snapshots import SnapshotStore

    partition = await partition_of(settings, cluster)
    if partition is None:
        raise UsageError(f"cluster {cluster!r} was never ingested (no partition in the map)",
                         hint="check --cluster; `kmevents stack status` shows what runs")
    src = KafkaSource(settings.kafka, settings.kafka.events_topic, partition, cluster)
    async with etcd_adapter.client(settings.etcd) as c:
        r = await replay(src, cluster, Target(), snapshots=SnapshotStore(settings, c), progress=False)
    m = ClusterMonitor(cluster, partition, r.state, RuleEngine(cluster, settings.monitor))
    end = r.end_offset
    warm = settings.monitor.backlog_records if warm_records is None else warm_records
    if end >= 0 and warm > 0:
        recs = await kafka_adapter.read_range(settings.kafka, settings.kafka.events_topic, partition,
                                              max(0, end - warm + 1), end)
        m.feed(recs, observe_only=True)
    m.highwater = end + 1
    return m


async def pipeline_status(settings: Settings, m: ClusterMonitor) -> None:
    """Fill the monitor's processor lag and dead-letter count (best effort)."""
    with contextlib.suppress(Exception):
        ends = await kafka_adapter.end_offsets(settings.kafka, settings.kafka.events_topic)
        async with etcd_adapter.client(settings.etcd) as c:
            _, cps = await checkpoints(settings, c)
        m.lag = {p: v for p, v in lags(ends, cps).items() if p == m.partition}
    with contextlib.suppress(Exception):
        m.dead_letters = sum((await kafka_adapter.end_offsets(settings.kafka, settings.kafka.deadletter_topic)).values())


async def run(settings: Settings, cluster: str, sinks: list[Sink], *, stop: asyncio.Event | None = None,
              on_frame: Callable[[ClusterMonitor], None] | None = None, eval_seconds: float = 2.0,
              once: bool = False) -> ClusterMonitor:
    """Bootstrap, then follow the cluster's partition, evaluating the rules every ``eval_seconds``.

    ``once``: read up to the high watermark, evaluate once, render once, return.
    """
    m = await bootstrap(settings, cluster)
    stop = stop or asyncio.Event()
    last_eval = last_status = 0.0
    async with PartitionTail(settings.kafka, settings.kafka.events_topic, m.partition, start=m.offset + 1,
                             poll_ms=250) as t:
        while not stop.is_set():
            recs = await t.poll()
            m.feed(recs)
            hw = t.highwater()
            if hw is not None:
                m.highwater = hw
            now = time.time()
            caught_up = hw is None or m.offset + 1 >= hw or not recs
            if once and not caught_up:
                continue
            if now - last_status >= 10 or once:
                await pipeline_status(settings, m)
                last_status = now
            if now - last_eval >= eval_seconds or once:
                last_eval = now
                transitions = m.tick(int(now * 1000))
                for s in sinks:
                    await s.send(transitions, now_ms=int(now * 1000), position=m.position())
                if on_frame is not None:
                    on_frame(m)
            if once:
                break
    return m
