"""The derivation worker: an aiokafka consumer loop over the events topic.

Why a plain consumer loop (hosted inside the Faust app as a service, see
``faust_app.py``) rather than a Faust agent: the position that matters is
etcd's checkpoint, not Kafka's committed offset. Faust acks a ``take()``
batch even when its body raised, commits after agent errors and at shutdown,
and re-seeks every partition to the Kafka-committed offset after
``on_partitions_assigned`` (faust-streaming 0.15, ``Consumer.perform_seek``);
steering all of that is more machinery than the work itself. An
``AIOKafkaConsumer`` with auto-commit off and a rebalance listener that seeks
to the etcd checkpoint does exactly what is needed, and its seeks stick.

Per partition it hands records to a :class:`PartitionDeriver`; side outputs
(dead letters, snapshots) are keyed by partition and offset so a repeat after
a crash is recognisable. Kafka offsets are committed after each etcd commit
only so that ``kafka-consumer-groups`` shows the lag; nothing reads them back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import time
import uuid
from array import array
from collections import Counter, deque
from collections.abc import Callable

from kmevents.processors import offload
from kmevents.processors.derive import (
    DELTA_EVERY_EVENTS,
    SNAPSHOT_EVERY_EVENTS,
    BatchOutcome,
    DeadLetter,
    PartitionDeriver,
)

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.adapters.kafka import ConsumerRecord, TopicPartition
from kmevents.errors import FencedError
from kmevents.reducer import ClusterState, Retention
from kmevents.reducer.apply import collect_rarely
from kmevents.settings import Settings
from kmevents.store import touched_runs
from kmevents.store import versions as versions_store
from kmevents.store.partition_map import PartitionMap
from kmevents.store.snapshots import SnapshotWriter, compress, index_entries, read_bytes
from kmevents.store.touched import BLOCK_EVENTS, GROUP_BLOCKS, KEEP_BLOCKS, group_and_merge

log = logging.getLogger("kmevents.processors.worker")

GROUP_ID = "kmevents-derive"
#: ...and also every this many seconds for a cluster that changed (``--snapshot-seconds``).
SNAPSHOT_EVERY_SECONDS = 300.0
#: How long the group waits for a silent member (a killed worker) before its partitions
#: move: a worker restarted under a new member id waits about this long for them. The
#: broker's floor is group.min.session.timeout.ms (6 s by default).
SESSION_TIMEOUT_MS = 10_000
#: Snapshots encoded by forked children at once (processors/offload.py): one more due waits
#: for the oldest, so a machine too busy to keep up slows the fold instead of piling up children.
MAX_SNAPSHOT_CHILDREN = 2
#: Snapshot children that failed one after the other (a child killed by the kernel, a library
#: that cannot run after ``fork``) before the worker encodes its snapshots in-process for good:
#: failing children would otherwise leave reads without snapshots, logged once per snapshot.
CHILD_FAILURES_BEFORE_IN_PROCESS = 2
#: Entity-versions records being compressed or stored at once (one a block of the touched-entity
#: index, ~0.2 MB stored at the large profile): one more waits for the oldest.
MAX_VERSIONS_JOBS = 8


async def _fewer_than(jobs: deque[asyncio.Task[None]], n: int) -> None:
    """Wait for the oldest of ``jobs`` until fewer than ``n`` are left (1: all done)."""
    while len(jobs) >= n:
        await jobs.popleft()


def _gc_paused(fn: Callable[[], bytes]) -> bytes:
    """``fn()`` with the cyclic GC paused: a snapshot's or delta's many containers are acyclic
    (a delta's collections were 4 s of the worker's 210 at 1.5M events)."""
    was = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if was:
            gc.enable()


def _compressed(box: list[bytes]) -> bytes:
    """The snapshot bytes in ``box`` as a child hands them back: their size (8 bytes), then
    compressed; the raw bytes let go of before the two are joined (116 MB at 1.5M events)."""
    raw = box.pop()
    size, stored = len(raw), compress(raw)
    del raw
    return size.to_bytes(8, "little") + stored


class WorkerStats:
    """Counters the worker exposes as Prometheus metrics."""

    def __init__(self) -> None:
        self.events = 0
        self.batches = 0
        self.transactions = 0
        self.dead_letters = 0
        self.fenced = 0
        self.snapshots = 0
        self.deltas = 0
        #: snapshots and deltas not stored (each logged as "snapshot not written")
        self.snapshot_failures = 0
        #: snapshots and deltas removed by the worker's own retention (``--prune-snapshots``)
        self.snapshots_pruned = 0
        #: entity-versions records stored (store/versions.py), and those not stored (each logged as
        #: "versions record not written"; history folds their blocks instead)
        self.versions_written = 0
        self.versions_failures = 0
        #: parts of open blocks' versions records written by live batches (history reads the open block)
        self.versions_open_parts = 0
        #: groups of old touched-index blocks moved out of etcd (store/touched.py, ``group_oldest``),
        #: and groupings that failed (logged as "touched-index blocks not grouped"; retried later)
        self.touched_groups = 0
        self.touched_group_failures = 0
        #: merges of the hash -> groups runs beside them (store/touched_runs.py)
        self.touched_run_merges = 0
        self.batch_sizes: Counter[int] = Counter()
        self.lag: dict[int, int] = {}
        self.started = time.monotonic()


class _Listener(kafka_adapter.ConsumerRebalanceListener):
    def __init__(self, worker: DeriveWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.worker.derivers.pop(tp.partition, None)
        if revoked:
            log.info("partitions given up (rebalance)", extra={"partitions": sorted(tp.partition for tp in revoked),
                                                               "worker": self.worker.worker_id})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            log.info("partitions assigned: loading their checkpoints and state",
                     extra={"partitions": sorted(tp.partition for tp in assigned), "worker": self.worker.worker_id})
        # Exceptions here are only logged by aiokafka: catch and stop the worker ourselves.
        try:
            for tp in assigned:
                await self.worker.take_partition(tp)
        except Exception as exc:  # noqa: BLE001
            log.exception("loading a partition failed; stopping the worker")
            self.worker.failure = exc
            self.worker.stop_requested.set()


class DeriveWorker:
    """Consume the events topic and keep etcd equal to the fold of the log.

    No I/O in ``__init__``; ``run()`` until ``stop()`` (SIGTERM finishes the
    current batch, commits it, and leaves the group).
    """

    def __init__(self, settings: Settings, *, worker_id: str | None = None, retention: Retention | None = None,
                 snapshot_every_events: int = SNAPSHOT_EVERY_EVENTS, snapshot_every_seconds: float = SNAPSHOT_EVERY_SECONDS,
                 delta_every_events: int = DELTA_EVERY_EVENTS, max_records: int = 5000, group_id: str = GROUP_ID, instance_id: str | None = None,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS, touched_every_events: int = BLOCK_EVENTS,
                 snapshots_in_child: bool = True, deltas_in_child: bool = False,
                 full_snapshots_in_child: bool = False,
                 snapshot_retention: tuple[int, int] | None = None, versions: bool = True,
                 touched_group: tuple[int, int] = (GROUP_BLOCKS, KEEP_BLOCKS)) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.retention = retention
        self.snapshot_every_events = snapshot_every_events
        self.snapshot_every_seconds = snapshot_every_seconds
        self.delta_every_events = delta_every_events
        #: events per block of the touched-entity index (``history``'s; 0: none)
        self.touched_every_events = touched_every_events
        #: with the index, store each block's entity versions too (store/versions.py: ``history``
        #: reads them instead of folding the block; ``--no-versions``: off)
        self.versions = versions
        #: ``(group, keep)``: closed blocks moved from etcd into the snapshots topic ``group`` at a
        #: time once more than ``keep + group`` of a cluster are there (``touched.group_oldest``)
        self.touched_group = touched_group
        #: blocks closed by cluster since its blocks were last grouped (a cluster is looked at after
        #: each ``group`` closes; a worker's first close looks at once: blocks an earlier one left)
        self._closed_since: dict[str, int] = {}
        self._grouping: asyncio.Task[None] | None = None
        self.max_records = max_records
        self.group_id = group_id
        #: static group membership (Kafka KIP-345): a worker restarted with the same id gets its
        #: partitions back at once, without a rebalance; None: dynamic membership
        self.instance_id = instance_id
        self.session_timeout_ms = session_timeout_ms
        self.derivers: dict[int, PartitionDeriver] = {}
        self.stats = WorkerStats()
        self.stop_requested = asyncio.Event()
        self.failure: BaseException | None = None
        #: True while ``run()`` loops (liveness); partitions being restored (readiness)
        self.running = False
        self.restoring: set[int] = set()
        self._consumer: kafka_adapter.GroupConsumer | None = None
        self._producer: kafka_adapter.Producer | None = None
        self._etcd: etcd_adapter.EtcdClient | None = None
        self._pins: PartitionMap | None = None
        self._snapshots: SnapshotWriter | None = None
        self._last_snapshot: dict[str, float] = {}
        #: encode snapshots and deltas in a forked child while the fold goes on (offload.py)
        self.snapshots_in_child = snapshots_in_child
        #: with ``snapshots_in_child``, deltas in children too; by default a delta is encoded in this
        #: process and only stored in the background (:meth:`_offload_snapshot`)
        self.deltas_in_child = deltas_in_child
        #: with ``snapshots_in_child``, full snapshots encoded whole in children (the way before
        #: reducer/sections.py); by default built in this process from the last one's sections
        self.full_snapshots_in_child = full_snapshots_in_child
        #: ``(keep_recent, thin_every)``: after each full snapshot stored, thin the cluster's older
        #: ones as ``kmevents snapshots prune`` does (store/snapshot_retention.py); None: keep all
        self.snapshot_retention = snapshot_retention
        #: children that failed since the last one that did not (CHILD_FAILURES_BEFORE_IN_PROCESS)
        self._child_failures = 0
        self._snapshot_jobs: deque[asyncio.Task[None]] = deque()
        #: entity-versions records being compressed and stored (:meth:`_store_versions`), compressed in
        #: one thread of their own: the default executor's threads each kept a malloc arena and a
        #: compressor (+50 MiB of peak RSS at the quick profile for no time saved)
        self._versions_jobs: deque[asyncio.Task[None]] = deque()
        self._versions_thread: concurrent.futures.ThreadPoolExecutor | None = None
        #: full snapshots whose store failed, ``(cluster, offset)``: deltas against them are not stored
        self._unstored: set[tuple[str, int]] = set()
        #: after being fenced, wait this long before taking the partition anew (if still ours)
        self.retake_after_seconds = 10.0

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        # The live state is many small dicts that live for long and hold no
        # reference cycles: collect rarely for the worker's whole life.
        collect_rarely()
        k = self.settings.kafka
        await kafka_adapter.ensure_topics(k)
        self._etcd = etcd_adapter.client(self.settings.etcd)
        await self._etcd.connect()
        self._pins = PartitionMap(self.settings, 0, client=self._etcd)
        await self._fit_txn_ops()
        producer = self._producer = kafka_adapter.producer(k, max_request_size=k.snapshot_max_message_bytes)
        await producer.start()
        self._snapshots = SnapshotWriter(self.settings, producer, self._etcd)
        if self.versions and self.touched_every_events:
            self._versions_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kmevents-versions")
        consumer = self._consumer = kafka_adapter.consumer(
            k, group_id=self.group_id, max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 4), max_poll_interval_ms=600_000,
            **({"group_instance_id": self.instance_id} if self.instance_id else {}),
        )
        consumer.subscribe([k.events_topic], listener=_Listener(self))
        await consumer.start()
        log.info("derivation worker started: joining the consumer group",
                 extra={"worker": self.worker_id, "group": self.group_id, "topic": k.events_topic,
                        "instance_id": self.instance_id, "etcd_prefix": self.settings.etcd.prefix})

    async def _fit_txn_ops(self) -> None:
        """Size transactions to what this etcd accepts: an etcd still at its default
        ``--max-txn-ops`` of 128 under kmevents' default of 1024 slows the worker, never stops it."""
        assert self._etcd is not None
        e = self.settings.etcd
        accepted = await etcd_adapter.txn_ops_limit(self._etcd, e.max_txn_ops)
        if accepted < e.max_txn_ops:
            log.warning("etcd accepts fewer operations per transaction than configured; using its limit",
                        extra={"configured": e.max_txn_ops, "accepted": accepted,
                               "hint": "start etcd with --max-txn-ops equal to KMEVENTS_ETCD__MAX_TXN_OPS "
                                       "(1024 by default): derivation is about twice as fast"})
            e.max_txn_ops = accepted

    async def stop(self) -> None:
        self.stop_requested.set()
        await self.snapshots_written()
        await self.versions_written()
        await self.blocks_grouped()
        if self._versions_thread is not None:
            self._versions_thread.shutdown()
            self._versions_thread = None
        for closer in (self._consumer, self._producer):
            if closer is not None:
                try:
                    await closer.stop()
                except Exception:  # noqa: BLE001
                    log.warning("error while stopping a Kafka client", exc_info=True)
        self._consumer = self._producer = None
        if self._etcd is not None:
            await self._etcd.close()
            self._etcd = None

    async def __aenter__(self) -> DeriveWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _group_consumer(self) -> kafka_adapter.GroupConsumer:
        if self._consumer is None:
            raise RuntimeError("the worker's consumer is not running: start() it (or it was stopped)")
        return self._consumer

    def _started_producer(self) -> kafka_adapter.Producer:
        if self._producer is None:
            raise RuntimeError("the worker's producer is not running: start() it (or it was stopped)")
        return self._producer

    # -- partitions ----------------------------------------------------------
    async def take_partition(self, tp: TopicPartition) -> None:
        """Load checkpoint (and state) from etcd + snapshots + log, then seek after the checkpoint."""
        assert self._etcd is not None
        d = PartitionDeriver(self.settings, self._etcd, tp.partition, worker_id=self.worker_id,
                             retention=self.retention, snapshot_every_events=self.snapshot_every_events,
                             delta_every_events=self.delta_every_events,
                             touched_every_events=self.touched_every_events, versions=self.versions, pins=self._pins,
                             dead_letter_sink=self._send_dead_letters)
        self.restoring.add(tp.partition)
        try:
            await self._take(d, tp)
        finally:
            self.restoring.discard(tp.partition)

    async def _take(self, d: PartitionDeriver, tp: TopicPartition) -> None:
        ckpt = await d.load_checkpoint()
        await d.load_generations()
        if d.pins is not None:
            await d.pins.refresh()
        if ckpt.offset >= 0:
            # the touched-entity index's open blocks resume from their last closed ones: their
            # records up to the checkpoint are re-folded, from a snapshot before them
            await d.load_block_ends()
            snaps, snap_chains = await self._load_snapshots(d, list(ckpt.chains))
            start = min((o for o, _ in snap_chains.values()), default=-1) + 1 if len(snap_chains) == len(
                ckpt.chains) else 0
            # Streamed: memory holds one batch of records besides the states (issue 14, M4).
            d.begin_restore(snaps, snap_chains, start=start)
            if start <= ckpt.offset:
                async for batch in kafka_adapter.iter_range(self.settings.kafka, tp.topic, tp.partition,
                                                            start, ckpt.offset, max_bytes=8 * 1024 * 1024):
                    d.restore_batch(batch)
                    await asyncio.sleep(0)
            d.end_restore()
        # Seek first: it fails when the group gave the partition away while this take ran, and
        # then no deriver may stay behind for a partition this worker does not own.
        self._group_consumer().seek(tp, ckpt.offset + 1)
        self.derivers[tp.partition] = d
        log.info("partition taken", extra={"partition": tp.partition, "checkpoint": ckpt.offset,
                                           "clusters": len(ckpt.chains), "worker": self.worker_id})

    async def _load_snapshots(self, d: PartitionDeriver, clusters: list[str]
                              ) -> tuple[dict[str, ClusterState], dict[str, tuple[int, str]]]:
        """The newest snapshot at or before the checkpoint of each cluster, when there is one
        (before the cluster's open block of the touched-entity index when that is resumed:
        ``PartitionDeriver.restore_ceiling``).

        Index and chunks are read through the snapshot store, the reader replay uses too.
        """
        assert self._etcd is not None
        states: dict[str, ClusterState] = {}
        chains: dict[str, tuple[int, str]] = {}
        for cluster in clusters:
            # Full snapshots only: the state restored becomes the base of this worker's deltas.
            entries = [e for e in await index_entries(self.settings, self._etcd, cluster, d.generation)
                       if e["offset"] <= d.checkpoint.offset and e.get("kind", "full") == "full"]
            ceiling = d.restore_ceiling(cluster, [int(e["offset"]) for e in entries])
            entries = [e for e in entries if e["offset"] <= ceiling]
            if not entries:
                continue
            best = entries[-1]
            data = await read_bytes(self.settings, best)
            if data is None:
                log.warning("snapshot chunks missing; folding from the log instead", extra={"cluster": cluster})
                continue
            states[cluster] = ClusterState.from_snapshot(data)
            states[cluster].mark_base(int(best["offset"]))
            chains[cluster] = (best["offset"], best["chain"])
        return states, chains

    # -- the loop ------------------------------------------------------------
    async def run(self) -> None:
        """Consume until ``stop()``; a fenced partition is given up, nothing is retried."""
        assert self._consumer is not None
        self.running = True
        try:
            await self._loop()
        finally:
            self.running = False
            await self.snapshots_written()
            await self.versions_written()
            await self.blocks_grouped()
        if self.failure is not None:
            # A partition could not be taken (the listener stopped us): the process must
            # end non-zero so that its supervisor restarts it.
            raise self.failure

    async def _loop(self) -> None:
        while not self.stop_requested.is_set():
            before = dict(self.derivers)
            try:
                batch = await self._group_consumer().getmany(timeout_ms=200, max_records=self.max_records)
            except kafka_adapter.CorruptRecordException as exc:
                # a batch the broker serves damaged: past it only by losing events; a restart would
                # fetch the same bytes, so the worker stops with what is wrong (exit 1)
                raise kafka_adapter.damaged_batch(
                    f"the events topic ({exc})", ", and nothing can be derived past it without losing events") from None
            if self.failure is not None:
                raise self.failure
            work = self._route(before, batch)
            # Partitions are independent (own checkpoint, own transactions): their etcd
            # round trips overlap.
            await asyncio.gather(*(self._process_partition(tp, d, records) for tp, d, records in work))
            await self._timed_snapshots()
            self._update_lag()

    def _route(self, before: dict[int, PartitionDeriver], batch: dict[TopicPartition, list[ConsumerRecord]]
               ) -> list[tuple[TopicPartition, PartitionDeriver, list[ConsumerRecord]]]:
        """Pair each partition's fetched records with the deriver that folds them.

        Records follow a deriver's checkpoint only when that deriver had sought its position
        before the fetch began, i.e. it is the one in ``before`` (taken before ``getmany``).
        Records of a partition with no deriver (being taken, fenced, given up) are dropped: the
        take seeks to its checkpoint when it ends. Records of a partition (re)taken while the
        fetch ran may predate the new deriver's seek: dropped too, and read again from right
        after what the deriver holds.
        """
        work: list[tuple[TopicPartition, PartitionDeriver, list[ConsumerRecord]]] = []
        for tp, records in batch.items():
            d = self.derivers.get(tp.partition)
            if d is None:
                continue
            if d is not before.get(tp.partition):
                self._group_consumer().seek(tp, d.folded_offset + 1)
                continue
            work.append((tp, d, records))
        return work

    async def _process_partition(self, tp: TopicPartition, d: PartitionDeriver, records: list[ConsumerRecord]) -> None:
        """Fold ``records`` with ``d``, the deriver they were routed to (:meth:`_route`).

        Never with whichever deriver holds the partition by the time this runs: a take that
        ended in between sought its own position after these records were fetched, and they
        may start past its checkpoint (a fold with a hole the checkpoint's compare cannot see).
        """
        if not self._holds(tp, d):
            return  # given up or taken anew since routing: the new deriver reads from its own seek
        try:
            # in steps that end where a snapshot or delta falls due, each taken at its offset
            # (PartitionDeriver.process ``until_due``)
            rest: list[ConsumerRecord] = records
            # the records reach the partition's end as the fetch saw it: the worker keeps up
            hw = self._group_consumer().highwater(tp) if records else None
            live = hw is not None and records[-1].offset + 1 >= hw
            while True:
                out = await d.process(rest, until_due=True, live=live)
                if out.consumed >= len(rest):
                    break
                await self._side_outputs(d, out)
                self._tally(out)
                rest = rest[out.consumed:]
        except FencedError as exc:
            log.error("fenced: giving the partition up", extra={"partition": tp.partition, "error": exc.message})
            self.stats.fenced += 1
            if not self._holds(tp, d):
                return  # a newer deriver took the partition while this one wrote: it stays
            del self.derivers[tp.partition]
            self._group_consumer().pause(tp)
            # The write is never retried. If Kafka still assigns us the partition after
            # a pause (a repair fenced us, or the other owner went away), take it anew:
            # reload checkpoint and state from etcd, so nothing is applied twice.
            asyncio.get_running_loop().call_later(
                self.retake_after_seconds, lambda: asyncio.ensure_future(self._retake(tp)))
            return
        await self._side_outputs(d, out)
        self._tally(out)
        self.stats.batches += 1
        self.stats.batch_sizes[len(records)] += 1
        try:
            await self._group_consumer().commit({tp: d.checkpoint.offset + 1})
        except Exception:  # noqa: BLE001 - informational only (lag display)
            log.debug("offset commit failed", exc_info=True)

    def _holds(self, tp: TopicPartition, d: PartitionDeriver) -> bool:
        """Whether ``d`` is still the partition's deriver."""
        return self.derivers.get(tp.partition) is d

    async def _retake(self, tp: TopicPartition) -> None:
        if self._consumer is None or self.stop_requested.is_set() or tp.partition in self.derivers:
            return
        if tp not in self._consumer.assignment():
            return
        try:
            await self.take_partition(tp)
            self._group_consumer().resume(tp)
        except Exception:  # noqa: BLE001 - the next rebalance will try again
            log.exception("re-taking a fenced partition failed", extra={"partition": tp.partition})

    async def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """To the dead-letter topic, keyed ``partition:offset`` (the deriver calls this before the
        checkpoint passes their records: after a crash they are sent again, never lost)."""
        k = self.settings.kafka
        for dl in letters:
            await self._started_producer().send_and_wait(k.deadletter_topic, dl.to_bytes(k.events_topic),
                                                         key=dl.dlq_key)
            self.stats.dead_letters += 1
            log.warning("dead letter", extra={"partition": dl.partition, "offset": dl.offset, "error": dl.error})

    def _tally(self, out: BatchOutcome) -> None:
        """Count what one step of a batch did (a batch is folded in steps that end where a snapshot
        or delta falls due)."""
        self.stats.events += out.applied
        self.stats.transactions += out.transactions
        self.stats.versions_open_parts += out.open_parts

    async def _side_outputs(self, d: PartitionDeriver, out: BatchOutcome) -> None:
        await self._send_dead_letters(out.dead_letters[out.sent:])
        for cluster, first, last, raw in out.versions:
            await _fewer_than(self._versions_jobs, MAX_VERSIONS_JOBS)
            self._versions_jobs.append(asyncio.get_running_loop().create_task(
                self._store_versions(d, cluster, first, last, raw)))
        self._group_blocks(d, out.closed)
        for cluster in out.snapshots_due:
            await self._try_snapshot(d, cluster)
        for cluster in out.deltas_due:
            await self._try_snapshot(d, cluster, delta=True)

    async def _timed_snapshots(self) -> None:
        now = time.monotonic()
        for d in list(self.derivers.values()):
            for cluster in d.clusters:
                last = self._last_snapshot.setdefault(cluster, now)
                if now - last >= self.snapshot_every_seconds and d.since_snapshot[cluster] > 0:
                    await self._try_snapshot(d, cluster)
                    d.since_snapshot[cluster] = 0

    async def _try_snapshot(self, d: PartitionDeriver, cluster: str, *, delta: bool = False) -> None:
        # A snapshot only bounds replay work: failing to write one never stops derivation.
        try:
            if self.snapshots_in_child and offload.available():
                await _fewer_than(self._snapshot_jobs, MAX_SNAPSHOT_CHILDREN)
                job = self._offload_snapshot(d, cluster, delta=delta)
                if job is not None:
                    self._snapshot_jobs.append(job)
                return
            await self.snapshots_written()
            if delta:
                await self.write_delta(d, cluster)
            else:
                await self.write_snapshot(d, cluster)
        except Exception as exc:  # noqa: BLE001
            self.stats.snapshot_failures += 1
            log.warning("snapshot not written", extra={"cluster": cluster, "delta": delta, "error": str(exc)[:300]})

    def _offload_snapshot(self, d: PartitionDeriver, cluster: str, *, delta: bool) -> asyncio.Task[None] | None:
        """Encode the snapshot (or delta) of the state as it is now, at the committed checkpoint
        (here, or in a forked child: processors/offload.py), and start a task that stores it
        (compressed in a thread, or as the child gives it back), after the snapshots before it,
        while the fold goes on. None when a delta has nothing to be taken against."""
        got = d.snapshot_encoder(cluster, delta=delta, in_child=self.full_snapshots_in_child and not delta)
        if got is None:
            return None
        offset, base, head, encode = got
        occurred = d.folds[cluster].state.max_occurred_at or None  # (the state at ``offset``: in the entry)

        def encoded() -> bytes:
            data = encode()
            return len(data).to_bytes(8, "little") + compress(data)

        # A delta is encoded here, now, and only its store goes on in the background: a fork costs
        # the worker ~0.15 s at the large profile's full size (its page tables, then a fault on the
        # first write to every page, copy-on-write) and the child copies every page it reads (its
        # reference counts): at 1.5M events a forked delta cost ~0.39 s in its child plus the
        # worker's faults, against ~0.16 s here; the deltas' children were ~21 % of the derive's CPU
        # (BENCHMARKS.md, "Where the derive's CPU goes at full size"). A full snapshot is built here
        # too, from the last one's sections and the entities changed since (reducer/sections.py),
        # and only compressed in a thread (zstandard releases the GIL) while the fold goes on: a
        # child re-encoded all 114 MB (~1.5 s) for the ~10-15 % of the entities that changed.
        child: offload.Child | offload.Done | offload.InThread
        if base is None and not self.full_snapshots_in_child:
            box = [_gc_paused(encode)]
            d.mark_base(cluster, offset)  # right after the build: the next one starts from here
            child = offload.InThread(lambda: _compressed(box))
        elif base is None:
            # The base's copies of the indexes are made before the fork, not after: then every
            # page they read (reference counts) and every old copy they free was copied for the
            # child (8 % of the worker's py-spy samples at 1.5M events).
            d.mark_base(cluster, offset)
            try:
                child = offload.spawn(encoded)
            except BaseException:
                d.folds[cluster].state.drop_base()  # no deltas against a snapshot nobody stores
                raise
        elif self.deltas_in_child:
            child = offload.spawn(encoded)
        else:
            child = offload.Done(_gc_paused(encoded))
        before = self._snapshot_jobs[-1] if self._snapshot_jobs else None
        return asyncio.get_running_loop().create_task(
            self._store_offloaded(d, cluster, child, before, offset=offset, base=base, head=head,
                                  occurred=occurred))

    async def _store_offloaded(self, d: PartitionDeriver, cluster: str,
                               child: offload.Child | offload.Done | offload.InThread,
                               before: asyncio.Task[None] | None, *, offset: int, base: int | None, head: str,
                               occurred: str | None = None) -> None:
        assert self._snapshots is not None
        try:
            try:
                data = await child.result()
            except offload.ChildFailed:
                self._child_failed()
                raise
            self._child_failures = 0
            if before is not None:
                await before  # stored in order: a delta's base is in the index before the delta
            if base is not None and (cluster, base) in self._unstored:
                raise RuntimeError(f"its base snapshot at offset {base} was not stored")
            await self._snapshots.write_stored(
                cluster=cluster, generation=d.generation, partition=d.partition, offset=offset, chain_head=head,
                stored=data[8:], size=int.from_bytes(data[:8], "little"),
                reducer_version=d.checkpoint.reducer_version, base=base, max_occurred_at=occurred)
        except Exception as exc:  # noqa: BLE001 - as _try_snapshot: derivation goes on
            if base is None:
                self._unstored.add((cluster, offset))
                state = d.folds[cluster].state if cluster in d.folds else None
                if state is not None and state.base_offset == offset:
                    state.drop_base()  # no deltas against a snapshot nobody can read
            self.stats.snapshot_failures += 1
            log.warning("snapshot not written", extra={"cluster": cluster, "delta": base is not None,
                                                       "error": str(exc)[:300]})
            return
        if base is None:
            self._last_snapshot[cluster] = time.monotonic()
            self.stats.snapshots += 1
            await self._thin_snapshots(cluster, d.generation)
        else:
            self.stats.deltas += 1

    async def _thin_snapshots(self, cluster: str, generation: str) -> None:
        """With ``snapshot_retention``: remove the cluster's snapshots the retention does not keep
        (the newest full one, just stored, always stays). Failing never stops derivation."""
        if self.snapshot_retention is None or self._etcd is None or self._producer is None:
            return
        from kmevents.store import snapshot_retention

        keep_recent, thin_every = self.snapshot_retention
        try:
            p = await snapshot_retention.plan_for(self.settings, self._etcd, cluster, generation,
                                                  keep_recent=keep_recent, thin_every=thin_every)
            if p.drop or p.unreclaimed:
                done = await snapshot_retention.prune(self.settings, self._etcd, self._producer, p.drop,
                                                      p.unreclaimed)
                self.stats.snapshots_pruned += done["removed"]
                log.info("snapshots pruned", extra={"cluster": cluster, "removed": done["removed"],
                                                    "removed_bytes": done["removed_bytes"], "kept": len(p.keep)})
        except Exception as exc:  # noqa: BLE001 - pruning only saves disk
            log.warning("snapshots not pruned", extra={"cluster": cluster, "error": str(exc)[:300]})

    def _child_failed(self) -> None:
        self._child_failures += 1
        if self.snapshots_in_child and self._child_failures >= CHILD_FAILURES_BEFORE_IN_PROCESS:
            self.snapshots_in_child = False
            log.error("snapshot children keep failing: this worker encodes its snapshots in-process from now "
                      "on (the fold pauses while it does; `kmevents process --snapshots-in-process` starts it so)",
                      extra={"worker": self.worker_id, "failed_in_a_row": self._child_failures})

    async def _store_versions(self, d: PartitionDeriver, cluster: str, first: int, last: int, raw: bytes) -> None:
        """Compress (in a thread) and store the versions record of the block ``first..last``, committed
        already. A failure is logged and counted, never retried and never fatal: history folds that
        block instead (store/versions.py)."""
        assert self._snapshots is not None
        try:
            stored = await asyncio.get_running_loop().run_in_executor(self._versions_thread, compress, raw,
                                                                      versions_store.LEVEL)
            await versions_store.write(self._snapshots, cluster=cluster, generation=d.generation,
                                       partition=d.partition, first=first, last=last, stored=stored, size=len(raw),
                                       reducer_version=d.checkpoint.reducer_version)
        except Exception as exc:  # noqa: BLE001 - as snapshots: derivation goes on
            self.stats.versions_failures += 1
            log.warning("versions record not written", extra={
                "cluster": cluster, "partition": d.partition, "first": first, "last": last,
                "error": str(exc)[:300]})
            return
        self.stats.versions_written += 1

    def _group_blocks(self, d: PartitionDeriver, closed: list[str]) -> None:
        """Count the blocks ``closed`` (committed already) and, for a cluster that closed ``group``
        since it was last looked at, group its oldest blocks in the background (one grouping at a
        time: a cluster passed over is looked at with its next close)."""
        group, _ = self.touched_group
        due = []
        for cluster in closed:
            n = self._closed_since[cluster] = self._closed_since.get(cluster, group) + 1
            if n >= group:
                due.append(cluster)
        if due and (self._grouping is None or self._grouping.done()):
            for cluster in due:
                self._closed_since[cluster] = 0
            self._grouping = asyncio.get_running_loop().create_task(self._group_oldest(d, due))

    async def _group_oldest(self, d: PartitionDeriver, clusters: list[str]) -> None:
        """``touched.group_oldest`` for each of ``clusters``. A failure is logged and counted, and
        the cluster is looked at again with its next close: its blocks stay in etcd meanwhile."""
        assert self._etcd is not None and self._snapshots is not None
        group, keep = self.touched_group
        for cluster in clusters:
            try:
                n, merged = await group_and_merge(self.settings, self._etcd, self._snapshots, cluster, d.generation,
                                                  d.partition, keep=keep, group=group, level0=self._level0)
            except Exception as exc:  # noqa: BLE001 - the blocks stay in etcd, readable as before
                self.stats.touched_group_failures += 1
                self._closed_since[cluster] = group
                log.warning("touched-index blocks not grouped", extra={
                    "cluster": cluster, "partition": d.partition, "error": str(exc)[:300]})
                continue
            if n:
                self.stats.touched_groups += n
                log.info("touched-index blocks grouped", extra={"cluster": cluster, "groups": n, "blocks": n * group})
            if merged:
                self.stats.touched_run_merges += merged
                log.info("touched-index runs merged", extra={"cluster": cluster, "merges": merged})

    async def _level0(self, hash_sets: list[array], number: int) -> array:
        """A group's postings of the hash -> groups index (``touched_runs.level0``: one sort of its ~770k
        hashes at the large profile, ~0.5-0.8 s that would stop the fold) in a forked child, as the
        snapshots are (``snapshots_in_child`` and a platform that can fork: processors/offload.py); here
        otherwise, and when the child fails (counted with the snapshot children's failures)."""
        if self.snapshots_in_child and offload.available():
            try:
                data = await offload.spawn(lambda: touched_runs.level0(hash_sets, number).tobytes()).result()
            except offload.ChildFailed as exc:
                log.warning("a group's postings not sorted in a child: sorted here", extra={"error": str(exc)})
                self._child_failed()
            else:
                out = array("Q")
                out.frombytes(data)
                return out
        return touched_runs.level0(hash_sets, number)

    async def blocks_grouped(self) -> None:
        """Wait until the grouping of old touched-index blocks under way, if any, is done."""
        if self._grouping is not None:
            await asyncio.gather(self._grouping, return_exceptions=True)

    async def versions_written(self) -> None:
        """Wait until the versions records being compressed or stored, if any, are stored (or failed)."""
        await _fewer_than(self._versions_jobs, 1)

    async def snapshots_written(self) -> None:
        """Wait until the snapshots being encoded or stored, if any, are stored (or failed)."""
        await _fewer_than(self._snapshot_jobs, 1)

    async def write_snapshot(self, d: PartitionDeriver, cluster: str) -> None:
        """The cluster's state at the committed checkpoint, through the snapshot store."""
        assert self._snapshots is not None
        offset, head, data = d.snapshot_bytes(cluster)
        occurred = d.folds[cluster].state.max_occurred_at or None
        try:
            await self._snapshots.write(cluster=cluster, generation=d.generation, partition=d.partition,
                                        offset=offset, chain_head=head, state_bytes=data,
                                        reducer_version=d.checkpoint.reducer_version, max_occurred_at=occurred)
        except BaseException:
            d.folds[cluster].state.drop_base()  # no deltas against a snapshot nobody can read
            raise
        self._last_snapshot[cluster] = time.monotonic()
        self.stats.snapshots += 1
        await self._thin_snapshots(cluster, d.generation)

    async def write_delta(self, d: PartitionDeriver, cluster: str) -> None:
        """What changed in the cluster since its last full snapshot, at the committed checkpoint."""
        assert self._snapshots is not None
        got = d.delta_bytes(cluster)
        if got is None:
            return
        offset, base, head, data = got
        await self._snapshots.write(cluster=cluster, generation=d.generation, partition=d.partition, offset=offset,
                                    chain_head=head, state_bytes=data, reducer_version=d.checkpoint.reducer_version,
                                    base=base, max_occurred_at=d.folds[cluster].state.max_occurred_at or None)
        self.stats.deltas += 1

    def _update_lag(self) -> None:
        if self._consumer is None:
            return
        for tp in self._consumer.assignment():
            hw = self._consumer.highwater(tp)
            d = self.derivers.get(tp.partition)
            if hw is not None and d is not None:
                self.stats.lag[tp.partition] = max(0, hw - (d.checkpoint.offset + 1))
