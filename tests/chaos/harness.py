"""The parts of a chaos run: supervised worker processes, the fault schedule, ingest and
raw hostile records under fire, and the counts taken from the log afterwards.

A run, in the order ``test_chaos.py`` drives it:

1. a seeded :class:`Plan`: 8-12 faults (kill -9 of a worker, of etcd, of the broker), each
   a few seconds after the previous one was healed and with its own outage, and the
   times the hostile records are written;
2. :class:`Workers` keeps two ``kmevents process --engine plain`` subprocesses up, as a
   supervisor would: a worker that exits is started again, and its exit code is kept;
3. :func:`ingest_loop` submits simulated events through :class:`~kmevents.ingest.Ingestor`
   and keeps the position of every event Kafka acknowledged (``Result.ok``);
4. :func:`write_hostile` produces the records of ``hostile.py`` raw, past ingest;
5. :func:`scan_log` and :func:`scan_dead_letters` read back what the topics hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kmevents.adapters import kafka as kafka_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings, child_env
from tests.chaos.hostile import Hostile

FAULT_KINDS = ("worker", "etcd", "kafka")


@dataclass(frozen=True)
class Fault:
    gap: float  # seconds after the previous fault was healed (or the window opened)
    kind: str  # worker | etcd | kafka
    outage: float  # seconds down before it is started again
    slot: int = 0  # which worker (kind "worker")


@dataclass
class Plan:
    seed: int
    faults: list[Fault]
    #: when each hostile record is written, seconds after the window opens
    hostile_at: list[float]


def plan(seed: int, *, hostile: int, faults: tuple[int, int] = (8, 12), gap: tuple[float, float] = (3.0, 9.0),
         workers: int = 2, max_broker_kills: int = 3) -> Plan:
    """A seeded schedule of between ``faults`` kills, at least one of each kind, at most
    ``max_broker_kills`` of the broker (a restart of Kafka takes ~20 s on 2 cores).

    Faults come one after another: each after a ``gap`` from the healing of the one
    before, so every outage is over before the next fault. The hostile records are
    spread over the sum of the gaps, which the run outlasts.
    """
    rng = random.Random(seed)
    n = rng.randint(*faults)
    kinds = list(FAULT_KINDS)
    while len(kinds) < n:
        k = rng.choice(("worker", "worker", "etcd", "kafka"))
        if k != "kafka" or kinds.count("kafka") < max_broker_kills:
            kinds.append(k)
    rng.shuffle(kinds)
    out = [Fault(gap=rng.uniform(*gap), kind=k, outage=rng.uniform(0.0, 3.0) if k == "worker" else rng.uniform(1.0, 5.0),
                 slot=rng.randrange(workers)) for k in kinds]
    span = sum(f.gap for f in out)
    return Plan(seed, out, sorted(rng.uniform(0.0, span) for _ in range(hostile)))


# -- worker processes --------------------------------------------------------------
def worker_env(s: Settings, home: Path) -> dict[str, str]:
    """Environment pointing ``kmevents process`` at this test's topics and etcd prefix."""
    return {**os.environ, **child_env(s), "KMEVENTS_STACK__HOME": str(home / "stack"), "KMEVENTS_LOG_FORMAT": "json"}


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    #: not restarted before this time (monotonic): a killed worker stays down for its outage
    down_until: float = 0.0
    killed: bool = False
    starts: int = 0


@dataclass
class Workers:
    """Worker subprocesses kept running like a supervisor would (``restart: always``)."""

    settings: Settings
    home: Path
    group: str
    count: int = 2
    snapshot_every: int = 1500
    slots: list[Slot] = field(default_factory=list)
    #: exit codes of workers that ended on their own (not killed by the schedule)
    self_exits: list[int] = field(default_factory=list)
    kills: int = 0

    def __post_init__(self) -> None:
        self.slots = [Slot(i) for i in range(self.count)]

    def argv(self, slot: int, *, metrics_port: int = 0) -> list[str]:
        # Slot 0 is a static group member (it gets its partitions back at once after a
        # restart), slot 1 a dynamic one (its partitions move after the session timeout).
        static = ["--instance-id", f"slot-{slot}"] if slot == 0 else []
        return [sys.executable, "-m", "kmevents.cli", "process", "--engine", "plain", "--group", self.group,
                *static, "--session-timeout", "6", "--snapshot-every", str(self.snapshot_every),
                "--metrics-port", str(metrics_port)]

    def spawn(self, slot: int, *, metrics_port: int = 0) -> subprocess.Popen[bytes]:
        s = self.slots[slot]
        s.starts += 1
        log = (self.home / f"worker{slot}.log").open("ab")
        log.write(f"\n==== start {s.starts} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        s.proc = subprocess.Popen(self.argv(slot, metrics_port=metrics_port),  # noqa: S603
                                  env=worker_env(self.settings, self.home), cwd=self.home,
                                  stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        s.killed = False
        return s.proc

    def start(self) -> None:
        for i in range(self.count):
            self.spawn(i)

    async def kill9(self, slot: int, outage: float, *, wait: float = 20.0) -> bool:
        """SIGKILL the slot's worker (waiting up to ``wait`` s for one that is being restarted);
        the supervisor starts it again after ``outage``. False if none was running."""
        s = self.slots[slot]
        deadline = time.monotonic() + wait
        while (s.proc is None or s.proc.poll() is not None) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        killed = s.proc is not None and s.proc.poll() is None
        # marked before the signal: the supervisor must not count this exit as the worker's own
        s.killed = True
        s.down_until = time.monotonic() + outage
        if killed:
            assert s.proc is not None
            s.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(s.proc.wait, 30)
            self.kills += 1
        return killed

    def tend(self) -> None:
        """Start again every worker that is not running (after its outage, if it was killed)."""
        now = time.monotonic()
        for s in self.slots:
            if s.proc is None:
                continue
            rc = s.proc.poll()
            if rc is None:
                continue
            if not s.killed:
                self.self_exits.append(rc)
                s.killed, s.down_until = True, now + 1.0  # a supervisor's back-off
            elif now >= s.down_until:
                self.spawn(s.index)

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.tend()
            await asyncio.sleep(0.3)

    def terminate(self, timeout: float = 60.0) -> list[int | None]:
        """SIGTERM every running worker; their exit codes (None: killed after ``timeout``)."""
        codes: list[int | None] = []
        for s in self.slots:
            if s.proc is None:
                continue
            if s.proc.poll() is not None:
                codes.append(None if s.killed else s.proc.returncode)
                continue
            s.proc.send_signal(signal.SIGTERM)
            try:
                codes.append(s.proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
                codes.append(None)
            s.killed = True  # ended by us: tend() must not count or restart it
        return codes

    def tails(self, lines: int = 40) -> str:
        out = []
        for s in self.slots:
            p = self.home / f"worker{s.index}.log"
            if p.exists():
                text = p.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- worker{s.index}.log\n" + "\n".join(text))
        return "\n".join(out)


# -- ingest under fire ---------------------------------------------------------------
@dataclass
class IngestTally:
    submitted: int = 0
    #: (event_id, partition, offset) of every event Kafka acknowledged
    accepted: list[tuple[str, int, int]] = field(default_factory=list)
    #: events refused one by one (Result.ok false), by the reason's first words
    refused: Counter[str] = field(default_factory=Counter)
    #: events of submissions that raised or timed out as a whole (no per-event answer), by
    #: event_id: the producer may still have written them
    unanswered: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def event_stream(cluster: str, seed: int, n: int) -> Iterator[dict[str, Any]]:
    from kmevents.simulate import generate

    return generate(cluster, seed, n, agents=20)


async def submit(ing: Ingestor, events: list[dict[str, Any]], tally: IngestTally, *, timeout: float) -> None:
    tally.submitted += len(events)
    try:
        results = await asyncio.wait_for(ing.submit(events), timeout)
    except Exception as exc:  # noqa: BLE001 - a broker kill may surface as anything; it is counted
        tally.unanswered.update(str(ev.get("event_id")) for ev in events)
        tally.errors[type(exc).__name__] += 1
        return
    for r in results:
        if r.ok:
            assert r.event_id is not None and r.partition is not None and r.offset is not None
            tally.accepted.append((r.event_id, r.partition, r.offset))
        else:
            tally.refused[(r.errors[0][1] if r.errors else "?").split(":")[0][:60]] += 1


async def ingest_loop(ing: Ingestor, streams: dict[str, Iterator[dict[str, Any]]], tally: IngestTally,
                      stop: asyncio.Event, *, rate: float, batch: int = 200, timeout: float = 15.0) -> None:
    """Submit ``batch`` events at a time, round robin over the clusters, at about ``rate`` events/s.

    A submission not answered within ``timeout`` is given up, as an HTTP client would: its
    events count as unanswered (the producer may still write them; they are then in the
    log without having been acknowledged, which is allowed)."""
    clusters = list(streams)
    i = 0
    t0 = time.monotonic()
    while not stop.is_set():
        events = [ev for _, ev in zip(range(batch), streams[clusters[i % len(clusters)]], strict=False)]
        i += 1
        if not events:
            continue
        await submit(ing, events, tally, timeout=timeout)
        ahead = tally.submitted / rate - (time.monotonic() - t0)
        if ahead > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ahead)


# -- hostile records, raw ------------------------------------------------------------
@dataclass
class HostileTally:
    #: (name, partition, offset) of each send Kafka acknowledged
    written: list[tuple[str, int, int]] = field(default_factory=list)
    retries: int = 0


async def write_hostile(s: Settings, records: list[tuple[float, Hostile, int]], tally: HostileTally,
                        kafka_up: asyncio.Event, t0: float, *, deadline: float) -> None:
    """Produce each record raw (``(when, record, partition)``) at its time; a send that fails
    (the broker was killed under it) is tried again once the broker is back."""
    p = kafka_adapter.producer(s.kafka, max_request_size=2 * 1024 * 1024, request_timeout_ms=15_000)
    await p.start()
    try:
        for when, h, part in records:
            await asyncio.sleep(max(0.0, t0 + when - time.monotonic()))
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"hostile record {h.name} not written before the deadline")
                await kafka_up.wait()
                try:
                    md = await asyncio.wait_for(p.send_and_wait(s.kafka.events_topic, h.value, key=h.key,
                                                                partition=part), 30)
                except Exception:  # noqa: BLE001 - retried; the bytes are unique, the log scan finds copies
                    tally.retries += 1
                    await asyncio.sleep(1.0)
                    continue
                tally.written.append((h.name, md.partition, md.offset))
                break
    finally:
        await p.stop()


# -- reading back ----------------------------------------------------------------------
@dataclass
class LogScan:
    #: event_id at each (partition, offset) whose value is a JSON object with one
    event_at: dict[tuple[int, int], str] = field(default_factory=dict)
    event_ids: Counter[str] = field(default_factory=Counter)
    #: hostile records found, by name: their positions
    hostile_at: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    records: int = 0


async def scan_log(s: Settings, hostile: list[Hostile]) -> LogScan:
    """Every record of the events topic: event ids by position, and where each hostile record is."""
    by_bytes = {(h.key, h.value): h.name for h in hostile}
    out = LogScan()
    ends = await kafka_adapter.end_offsets(s.kafka, s.kafka.events_topic)
    for part, end in sorted(ends.items()):
        if end <= 0:
            continue
        async for batch in kafka_adapter.iter_range(s.kafka, s.kafka.events_topic, part, 0, end - 1):
            for r in batch:
                out.records += 1
                name = by_bytes.get((r.key, r.value))
                if name is not None:
                    out.hostile_at.setdefault(name, []).append((part, r.offset))
                    continue
                try:
                    doc = orjson.loads(r.value)
                except orjson.JSONDecodeError:
                    continue
                eid = doc.get("event_id") if isinstance(doc, dict) else None
                if isinstance(eid, str):
                    out.event_at[(part, r.offset)] = eid
                    out.event_ids[eid] += 1
    return out


async def scan_dead_letters(s: Settings) -> Counter[str]:
    """How many dead letters each ``partition:offset`` key has."""
    ends = await kafka_adapter.end_offsets(s.kafka, s.kafka.deadletter_topic)
    keys: Counter[str] = Counter()
    for part, end in ends.items():
        if end <= 0:
            continue
        async for batch in kafka_adapter.iter_range(s.kafka, s.kafka.deadletter_topic, part, 0, end - 1):
            for r in batch:
                doc = orjson.loads(r.value)
                key = (r.key or b"").decode()
                assert key == f"{doc['partition']}:{doc['offset']}", (key, doc.get("error"))
                keys[key] += 1
    return keys
