"""Reads in the past (``?at=``, ``?known_at=``, ``?offset=``), served by the replay engine.

The meanings are the CLI's (``kmevents state``): ``at`` is SOURCE time (the
events whose ``occurred_at`` is at or before it, folded in log order),
``known_at`` is LOG time (what the log had recorded by then) and ``offset`` a
partition offset. The replay starts from the newest snapshot at or before the
point (snapshot index in etcd, chunks in the snapshots topic), so a read costs
bounded work. A small cache keeps the last few replayed states, keyed by the
cluster, the point and the end of the log the point resolved to (an ``at``
read depends on the log's end: a late event may still arrive).

Bounds (issue 14, H4). Every state kept (held states and repeated reads) counts
against one byte budget, ``api.replay_cache_bytes``, by the estimate of
``warm.estimate_bytes`` (an upper bound); at most ``api.max_concurrent_replays``
replays fold at once per gate (``admission.py``: ``cold`` from a snapshot,
``warm`` from a held state), ``api.max_queued_replays`` wait, and the rest get
``admission.Busy`` (429, or 503 after ``api.replay_queue_seconds`` in the queue).
A read whose state is held at its exact offset, or a repeated read, passes no
gate. Peak memory is therefore about the budget, plus one state per running
replay, plus the record cache (``api.replay_record_cache_mib``), plus what the C
allocator keeps between the collector's full passes (replay/collector.py: none while
a read runs, one when the process is idle after 8 reads or after 64 in any case).

A warm API process also keeps (replay/warm.py, all bounded): one open Kafka
consumer per partition read (events and snapshots topics), the raw records
of blocks already fetched, and read-only states at offsets (loaded
snapshots, earlier ``offset``/``known_at`` reads). An ``offset``/``known_at``
read starts from the newest held state at or before its offset (a
copy-on-write fork: milliseconds) unless loading a stored state after it
costs less (``plans``: each way's cost from its parts), and folds only the
records after it; the result is exactly the fold of the
prefix (the fold is deterministic and records at an offset never change).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass
from typing import Any

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.api.admission import Gate
from kmevents.reducer import REDUCER_VERSION, ClusterState
from kmevents.reducer.state import SHORT_FOLD
from kmevents.replay import warm
from kmevents.replay.collector import COLLECTOR, promote
from kmevents.replay.engine import BadTarget, Replayed, Target, replay, resolve_end
from kmevents.replay.history_cache import IndexCache
from kmevents.replay.sources import POINT_FETCH_BYTES, KafkaSource
from kmevents.settings import Settings
from kmevents.store.snapshots import SnapshotStore, is_delta

log = logging.getLogger("kmevents.api.timetravel")

#: A point-in-time read that takes longer than this is logged at INFO with its plan and the
#: seconds of each stage (every read is logged at DEBUG): the API's warm-read aim at the
#: large profile is a p99 of 500 ms.
SLOW_READ_SECONDS = 0.5

#: The stage seconds and the plan of the read this task is serving (reads of concurrent
#: requests are separate tasks, so each notes its own; see ``TimeTravel._replay``).
_READ: contextvars.ContextVar[tuple[dict[str, float], dict[str, Any]] | None] = contextvars.ContextVar(
    "kmevents_timetravel_read", default=None)


def _current() -> tuple[dict[str, float], dict[str, Any]]:
    """The running read's stage seconds and plan (throwaway ones outside a read)."""
    return _READ.get() or ({}, {})


def _loads() -> int:
    """The snapshot loads the running read did itself so far (concurrent reads count their own)."""
    return int(_current()[1].get("loads", 0))


def target_of(at: str | None, known_at: str | None, offset: int | None) -> Target | None:
    """The replay target of the query parameters, or None (read the live state in etcd)."""
    if at is None and known_at is None and offset is None:
        return None
    return Target.parse(at=at, known_at=known_at, offset=offset)


#: What a read's parts cost, counted in records folded (a record's fold: ~75 us of CPU at the
#: large profile's quick size, 300k events), measured per read stage in CPU time over 120
#: warm reads of the quick large log (BENCHMARKS.md, "The cost model of a warm read"):
#: a full snapshot's fetch and load, one record per this many of its bytes (8.3 ns a byte)
FULL_BYTES_PER_RECORD = 9_000
#: a delta's fetch, parse, apply and the freeze after it (its upserted values packed again):
#: one record per this many of its bytes (14 ns a byte, 23 with the freeze)
DELTA_BYTES_PER_RECORD = 3_500
#: a fold from a held state is cut in segments of ``api.replay_state_every`` records, each a
#: fork, a freeze and a hold (estimate) of a state as big as the interval's: each segment after
#: the first costs one record per this many bytes of the nearest full snapshot at or before it
#: (~50 ms for the quick size's 38 MB states; ~100-125 us a record in all at 1.5M, 116 MB)
SEGMENT_BYTES_PER_RECORD = 60_000


@dataclass(frozen=True)
class Plan:
    """One way to build the state at a read's offset ``end``: start from a held state
    (``entry`` None, ``start`` its offset; or from the log's first record: ``start`` = first - 1),
    or load stored ``entry`` (a full snapshot; a delta, with its base when ``base_bytes``),
    then fold ``end - start`` records in ``segments`` segments (see :func:`plans`)."""

    cost: float  # in records folded
    start: int
    entry: dict[str, Any] | None = None
    full_bytes: int = 0
    delta_bytes: int = 0
    segments: int = 1


def plan_cost(records: int, *, full_bytes: int = 0, delta_bytes: int = 0, segments: int = 1,
              state_bytes: int = 0) -> float:
    """A plan's cost in records folded: the records, what it loads, and its segments after the
    first (``state_bytes``: the bytes of the full snapshot of the state folded)."""
    return (records + full_bytes / FULL_BYTES_PER_RECORD + delta_bytes / DELTA_BYTES_PER_RECORD
            + max(0, segments - 1) * state_bytes / SEGMENT_BYTES_PER_RECORD)


def plans(entries: list[dict[str, Any]], end: int, first: int, held: int | None,
          holds: Any = lambda offset: False, *, every: int) -> list[Plan]:
    """The ways to build the state at offset ``end``, cheapest first: fold on from the held state
    at offset ``held`` (None: none, fold from the log's ``first`` record), or load one of
    ``entries`` (the snapshot index, oldest first) after it and fold from there. ``holds(o)``:
    whether a state is held at offset ``o`` (a delta's base then costs nothing to load). A fold
    from a held state holds the state every ``every`` records (segments); a fold after a load
    does not (timetravel's ``_prefix``)."""
    full_at = sorted((int(e["offset"]), int(e.get("bytes", 0))) for e in entries if not is_delta(e))

    def state_bytes(offset: int) -> int:  # the nearest full snapshot's size at or before offset
        i = bisect.bisect_right(full_at, (offset, 1 << 62))
        return full_at[i - 1][1] if i else 0

    out: list[Plan] = []
    if held is not None:
        n = end - held
        segs = max(1, -(-n // max(1, every)))
        out.append(Plan(plan_cost(n, segments=segs, state_bytes=state_bytes(held)), held, segments=segs))
    else:
        out.append(Plan(float(end - first + 1), first - 1))
    by_offset = dict(full_at)
    for e in entries:
        off = int(e["offset"])
        if off > end or off < first - 1 or (held is not None and off <= held) \
                or int(e.get("reducer_version", REDUCER_VERSION)) != REDUCER_VERSION:
            continue
        size = int(e.get("bytes", 0))
        if is_delta(e):
            base = 0 if holds(int(e["base"])) else by_offset.get(int(e["base"]), 0)
            out.append(Plan(plan_cost(end - off, full_bytes=base, delta_bytes=size), off, e, base, size))
        else:
            out.append(Plan(plan_cost(end - off, full_bytes=size), off, e, size))
    out.sort(key=lambda p: (p.cost, -p.start))
    return out


class _HeldStore(SnapshotStore):
    """Snapshots loaded once per process: ``load`` forks a held state (``at`` reads)."""

    def __init__(self, tt: TimeTravel, cluster: str, partition: int) -> None:
        super().__init__(tt.settings, tt.client, reader_of=tt.snapshot_reader)
        self.tt, self.cluster, self.partition = tt, cluster, partition

    async def load(self, entry: dict[str, Any]) -> ClusterState | None:
        h = await self.tt.held_snapshot(self.cluster, self.partition, entry)
        return None if h is None else h.state.fork(plain=True)

    def holds_base(self, cluster: str, offset: int) -> bool:
        return self.tt.states.holds(cluster, self.partition, offset)


class TimeTravel:
    """Replayed states for the API, with a small LRU cache and the warm caches of replay/warm.py."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient) -> None:
        self.settings = settings
        self.client = client
        api = settings.api
        self.snapshots = SnapshotStore(settings, client, reader_of=self.snapshot_reader)
        self.snapshots.freeze = False  # a long-lived process: see store.snapshots.load_snapshot
        self.locks: dict[tuple[Any, ...], tuple[asyncio.Lock, int]] = {}  # lock, reads using it
        self.replays = 0
        self._sources: dict[tuple[str, int], tuple[float, KafkaSource]] = {}
        self.readers: dict[tuple[str, int], kafka_adapter.PartitionReader] = {}
        #: the events topic's readers of small fetches, by partition (``point_reader``)
        self.point_readers: dict[int, kafka_adapter.PartitionReader] = {}
        #: held states and finished reads (``result``), within ``api.replay_cache_bytes``
        self.states = warm.StateCache(api.replay_state_cache_entries, api.replay_cache_bytes,
                                      results=api.replay_cache_entries)
        self.records = warm.RecordCache(api.replay_record_cache_mib * 1024 * 1024)
        self.gates = {lane: Gate(lane, running=api.max_concurrent_replays, queued=api.max_queued_replays,
                                 max_wait=api.replay_queue_seconds) for lane in ("cold", "warm")}
        self.snapshot_loads = 0
        #: seconds per stage of the last read that replayed (bounds, snapshot index,
        #: snapshot fetch+load, fork, fetch of records, fold, freeze, and the collector's
        #: work after it: a full pass every ``collector.FORCE_EVERY`` reads when never idle)
        self.last_timing: dict[str, float] = {}
        #: how the last read that replayed built its state: what it started from
        #: (``held``, ``snapshot``, ``delta``, ``start``: the log's first record, ``at``: a
        #: source-time read), that state's offset, the records folded on, the stored states
        #: it loaded
        self.last_plan: dict[str, Any] = {}
        self._loading: dict[tuple[str, int, int], asyncio.Lock] = {}
        #: each cluster's touched-entity index, kept between the history route's requests
        self.history_index = IndexCache(settings, client)

    #: How long the log's bounds (first/last offset) read for a cluster are reused.
    #: A point-in-time read may therefore not see records appended during the last second.
    bounds_ttl_seconds = 1.0

    def reader(self, topic: str, partition: int) -> kafka_adapter.PartitionReader:
        """The process's open consumer of ``topic``/``partition`` (made on first use)."""
        r = self.readers.get((topic, partition))
        if r is None:
            r = self.readers[(topic, partition)] = kafka_adapter.PartitionReader(self.settings.kafka, topic, partition)
        return r

    def point_reader(self, partition: int) -> kafka_adapter.PartitionReader:
        """The events topic's reader of small fetches, for a few records at scattered offsets
        (``KafkaSource.for_points``: history); its consumer starts when first used."""
        r = self.point_readers.get(partition)
        if r is None:
            r = self.point_readers[partition] = kafka_adapter.PartitionReader(
                self.settings.kafka, self.settings.kafka.events_topic, partition, max_bytes=POINT_FETCH_BYTES)
        return r

    def snapshot_reader(self, partition: int) -> kafka_adapter.PartitionReader:
        return self.reader(self.settings.kafka.snapshots_topic, partition)

    async def close(self) -> None:
        readers = [*self.readers.values(), *self.point_readers.values()]
        self.readers, self.point_readers = {}, {}
        for r in readers:
            with contextlib.suppress(Exception):
                await r.close()

    def source(self, cluster: str, partition: int) -> KafkaSource:
        key = (cluster, partition)
        now = time.monotonic()
        hit = self._sources.get(key)
        if hit is not None and now - hit[0] < self.bounds_ttl_seconds:
            return hit[1]
        topic = self.settings.kafka.events_topic
        # a fresh source each ``bounds_ttl_seconds`` (reads in flight keep theirs); what the
        # previous one learnt from the first record carries over
        src = KafkaSource(self.settings.kafka, topic, partition, cluster, reader=self.reader(topic, partition),
                          records=self.records, origin=hit[1].origin if hit is not None else None,
                          point_reader=self.point_reader(partition))
        self._sources[key] = (now, src)
        return src

    def held_snapshots(self, cluster: str, partition: int) -> SnapshotStore:
        """The cluster's snapshots, each loaded once and held (``load`` returns a fork): what an
        indexed history folds from (replay/history.py)."""
        return _HeldStore(self, cluster, partition)

    async def held_snapshot(self, cluster: str, partition: int, entry: dict[str, Any]) -> warm.Held | None:
        """The state of snapshot ``entry``, loaded once and then held (read-only)."""
        off = int(entry["offset"])
        key = (cluster, partition, off)
        h = self.states.exact(cluster, partition, off)
        if h is not None:
            return h
        lock = self._loading.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                h = self.states.exact(cluster, partition, off)
                if h is None and is_delta(entry):
                    # a fork of its base's held state (loaded and held first if need be): the
                    # base's entities are shared, and the cache charges them once (warm.StateCache)
                    base_entry = await self.snapshots.base_entry(entry)
                    base = None if base_entry is None else await self.held_snapshot(cluster, partition, base_entry)
                    if base is None:
                        return None
                    t0 = time.perf_counter()
                    st = await self.snapshots.delta_onto(base.state.fork(plain=True), entry)
                    self._tick("delta fetch+apply", t0)
                    self._loaded()
                    if st is None:
                        return None
                    h = base.descend(st.freeze(), off, str(entry["chain"]), None)
                    h.snapshot = off
                    self.states.put(cluster, partition, h)
                elif h is None:
                    t0 = time.perf_counter()
                    st = await self.snapshots.load(entry)
                    self._tick("snapshot fetch+load", t0)
                    self._loaded()
                    if st is None:
                        return None
                    h = warm.Held(st, off, str(entry["chain"]), off)
                    self.states.put(cluster, partition, h)
        finally:
            self._loading.pop(key, None)
        return h

    async def _prefix(self, src: KafkaSource, cluster: str, partition: int, end: int) -> Replayed:
        """The state at offset ``end``: from the cheapest held state or snapshot, folded on."""
        first, _ = await src.covers()
        held = self.states.nearest(cluster, partition, end)
        if held is not None and held.offset < first - 1:
            held = None  # records after it were deleted: start as a cold read would
        loads = _loads()
        plan_from = "held"
        t0 = time.perf_counter()
        entries = await self.snapshots.entries(cluster)
        self._tick("snapshot index", t0)
        every = max(1, self.settings.api.replay_state_every)
        for plan in plans(entries, end, first, None if held is None else held.offset,
                          lambda o: self.states.holds(cluster, partition, o), every=every):
            if plan.entry is None:
                break  # the held state (or the log's start) is the cheapest left
            h = await self.held_snapshot(cluster, partition, plan.entry)
            if h is not None:
                held = h
                # "held" when another read loaded it first (it was waited for, not loaded here)
                if _loads() > loads:
                    plan_from = "delta" if is_delta(plan.entry) else "snapshot"
                break
        _current()[1].update({"from": "start" if held is None else plan_from,
                              "from_offset": None if held is None else held.offset,
                              "records": end - (first - 1 if held is None else held.offset)})
        if held is None:
            f0, t0 = src.fetch_seconds, time.perf_counter()
            r = await replay(src, cluster, Target(offset=end), progress=False, label="api")
            self._fold_tick(src, f0, t0)
            t0 = time.perf_counter()
            r.state.freeze()
            self._tick("freeze", t0)
            self.states.put(cluster, partition, warm.Held(r.state, end, r.chain_head, None, r.last))
            return r
        # Fold in segments, holding the state at the end of each, so that a later
        # read in this range folds at most ``every`` records. Not on the read that
        # had to load its snapshot (the first in this range): holding costs a fork
        # and a freeze per segment (~35 % on such a read); the next read here pays it.
        if held.offset == end:  # a snapshot at the very offset: its held state is the answer
            return Replayed(held.state, cluster, partition, Target(offset=end), end, held.chain,
                            last=held.last, from_snapshot=held.snapshot, source=src.name)
        if _loads() > loads:  # this read loaded its state: no segments held (see above)
            every = end - held.offset
        out: Replayed | None = None
        while True:
            seg_end = end if end - held.offset <= every else held.offset + every
            t0 = time.perf_counter()
            forked = held.state.fork(plain=True)  # (short-lived: what it packs rests uncompressed)
            # a segment of a few thousand records leaves what it touches decoded until the freeze
            # below packs it once (reducer.state.SHORT_FOLD)
            forked.packs = seg_end - held.offset > SHORT_FOLD
            promote()  # the fork's copies live through the read: no young collection walks them
            self._tick("fork", t0)
            f0, t0 = src.fetch_seconds, time.perf_counter()
            r = await replay(src, cluster, Target(offset=seg_end), start_state=forked,
                             start_offset=held.offset, start_chain=held.chain, progress=False, label="api")
            self._fold_tick(src, f0, t0)
            r.from_snapshot = held.snapshot
            if r.last is None:
                r.last = held.last
            t0 = time.perf_counter()
            r.state.freeze()
            self._tick("freeze", t0)
            held = held.descend(r.state, seg_end, r.chain_head, r.last)
            self.states.put(cluster, partition, held)
            if out is not None:
                r.applied += out.applied
                r.scanned += out.scanned
                r.undecodable += out.undecodable
                r.annotations.update(out.annotations)
            out = r
            if seg_end >= end:
                return out

    def _loaded(self) -> None:
        self.snapshot_loads += 1
        plan = _current()[1]
        plan["loads"] = plan.get("loads", 0) + 1

    @staticmethod
    def _tick(stage: str, t0: float) -> None:
        timing = _current()[0]
        timing[stage] = timing.get(stage, 0.0) + time.perf_counter() - t0

    @staticmethod
    def _fold_tick(src: KafkaSource, f0: float, t0: float) -> None:
        timing, fetched = _current()[0], src.fetch_seconds - f0
        timing["records fetch"] = timing.get("records fetch", 0.0) + fetched
        timing["fold"] = timing.get("fold", 0.0) + time.perf_counter() - t0 - fetched

    def lane(self, cluster: str, partition: int, end: int) -> str:
        """``warm`` when a held state lies at most ``api.replay_state_every`` records before ``end``."""
        held = self.states.nearest(cluster, partition, end, touch=False)
        if held is not None and end - held.offset <= max(1, self.settings.api.replay_state_every):
            return "warm"
        return "cold"

    async def state(self, cluster: str, partition: int, target: Target) -> Replayed:
        """The cluster's state at ``target``. Raises ``BadTarget`` for an offset beyond the log,
        ``admission.Busy`` when no replay slot is free (see the module docstring)."""
        from kmevents.errors import UsageError

        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        src = self.source(cluster, partition)
        try:
            end = await resolve_end(src, target)
        except UsageError as exc:
            raise BadTarget("offset", exc.message) from None
        _, last = await src.covers()
        timing["bounds"] = time.perf_counter() - t0
        key = (cluster, partition, end, last if target.at is not None else None,
               target.at.iso if target.at is not None else None)
        hit: Replayed | None = self.states.result(key)
        if hit is not None:
            return hit
        lock, users = self.locks.get(key) or (asyncio.Lock(), 0)
        self.locks[key] = (lock, users + 1)  # reads of one key replay once; the others wait for it
        try:
            async with lock:
                hit = self.states.result(key)
                if hit is not None:
                    return hit
                with COLLECTOR.reading():
                    r = await self._replay(src, cluster, partition, target, end, timing)
                t1 = time.perf_counter()
                COLLECTOR.read_done()
                timing["collector"] = time.perf_counter() - t1  # (a forced full pass lands here)
                self.states.put_result(key, r, r.state)
        finally:
            lock, users = self.locks[key]
            if users > 1:
                self.locks[key] = (lock, users - 1)
            else:
                del self.locks[key]
        return r

    async def _replay(self, src: KafkaSource, cluster: str, partition: int, target: Target, end: int,
                      timing: dict[str, float]) -> Replayed:
        """The state at ``target`` (resolved to ``end``), from held states or snapshots."""
        plan: dict[str, Any] = {"end": end, "loads": 0}
        token = _READ.set((timing, plan))
        t0 = time.perf_counter()
        try:
            r = await self._replay_noted(src, cluster, partition, target, end, plan)
        finally:
            _READ.reset(token)
        self.last_timing, self.last_plan = timing, plan
        self._log_read(cluster, partition, time.perf_counter() - t0 + timing.get("bounds", 0.0), timing, plan)
        return r

    async def _replay_noted(self, src: KafkaSource, cluster: str, partition: int, target: Target, end: int,
                            plan: dict[str, Any]) -> Replayed:
        """``_replay``'s work, noting in ``plan`` what it started from."""
        held = self.states.exact(cluster, partition, end) if target.at is None else None
        if held is not None:  # nothing to fold: no gate to pass
            plan.update({"from": "held", "from_offset": end, "records": 0})
            r = Replayed(held.state, cluster, partition, target, end, held.chain,
                         last=held.last, from_snapshot=held.snapshot, source=src.name)
        elif target.at is None:
            async with self.gates[self.lane(cluster, partition, end)].slot():
                r = await self._prefix(src, cluster, partition, end)
        else:
            plan["from"] = "at"
            async with self.gates["cold"].slot():
                r = await replay(src, cluster, target, snapshots=_HeldStore(self, cluster, partition),
                                 progress=False, label="api")
                r.state.freeze()
        r.target = target
        self.replays += 1
        return r

    @staticmethod
    def _log_read(cluster: str, partition: int, seconds: float, timing: dict[str, float],
                  plan: dict[str, Any]) -> None:
        """A read just done, with its plan and stage seconds: at INFO when slow
        (:data:`SLOW_READ_SECONDS`), else at DEBUG."""
        level = logging.INFO if seconds > SLOW_READ_SECONDS else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "point-in-time read%s", " (slow)" if level == logging.INFO else "",
                    extra={"cluster": cluster, "partition": partition, "seconds": round(seconds, 3), **plan,
                           "stages": {k: round(v, 3) for k, v in timing.items()}})
