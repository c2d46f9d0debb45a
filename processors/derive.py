"""Folding one partition of the log into etcd with an exactly-once effect.

:class:`PartitionDeriver` owns one Kafka partition for one worker. It keeps
each cluster's :class:`~kmevents.reducer.ClusterState` of that partition in
memory, folds records in offset order, and writes whole entity values plus
the partition's checkpoint in etcd transactions guarded by the checkpoint's
``mod_revision`` (DESIGN.md rule 3).

Exactly-once, worked through (partition 0, checkpoint at offset 41, rev 900):

1. records 42..60 are folded; entity writes coalesce per key; the batch and
   ``checkpoint{offset: 60}`` go into one transaction that compares
   ``mod(checkpoint) == 900``. It commits at revision 950: every key it wrote
   now has ``mod_revision == 950`` and so does the checkpoint.
2. crash before step 1 commits: nothing of 42..60 is in etcd; the restart reads
   checkpoint 41 and refolds 42.. — applied once.
3. record 61 (an agent lost with 400 tasks) does not fit one transaction: its
   writes go out in chunks guarded by ``mod == 950`` without moving the
   checkpoint, the last chunk carries ``checkpoint{offset: 61}``. A crash in
   between leaves keys with ``mod_revision > 950`` (ahead of the checkpoint:
   readers and verify recognise them) and the restart re-applies 61, writing
   the same whole values again.
4. a stale worker still holding rev 900 after someone else committed 950 fails
   the compare and raises :class:`~kmevents.errors.FencedError`: it gives the
   partition up and never retries the write.

This module does no Kafka I/O: the consumer loop (``worker.py``) feeds it
records, takes the snapshots it says are due, stores the entity-versions records
of the touched-index blocks it closed (``BatchOutcome.versions``, once committed:
kmevents/store/versions.py), and gives it the sink its dead letters go to, each
batch's before the transaction whose checkpoint passes their records (so a crash
in between sends them again, never loses them).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from kmevents.processors.batch import Limits, fits, op_size, split

from kmevents import chain, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.errors import EnvironmentProblem, FencedError
from kmevents.folding import APPLIED, FAILED, Fold
from kmevents.reducer import REDUCER_VERSION, ClusterState, Retention
from kmevents.reducer.sections import Sections
from kmevents.settings import Settings
from kmevents.store import hosts as host_directory
from kmevents.store import snapshots as snapshot_store
from kmevents.store import touched as touched_index
from kmevents.store import versions as versions_store
from kmevents.store.checkpoint import Checkpoint, read_checkpoint
from kmevents.store.generations import current_generation, pointer_value
from kmevents.store.partition_map import PartitionMap
from kmevents.store.touched import BLOCK_EVENTS, Accumulator, Block, entity_hashes
from kmevents.store.versions import Capture

log = logging.getLogger("kmevents.processors.derive")

_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS

#: What a batch writes per key: an entity (read from its state at commit), or its value already
#: encoded (an entity read at the flush, the ``current`` pointer, a touched-index block), or
#: None (an entity read at the flush and gone: the key is deleted).
Pending = tuple[ClusterState, str, str] | bytes | None

#: A batch is committed before the next event once it holds this many fewer
#: keys than a transaction allows: room for that event's own writes.
FLUSH_RESERVE = 24


class Record(Protocol):
    """What the deriver needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass
class DeadLetter:
    """A record that could not be decoded or folded, keyed by its position."""

    partition: int
    offset: int
    error: str
    key: bytes | None
    value: bytes | None

    def to_bytes(self, topic: str) -> bytes:
        return _dumps({
            "topic": topic, "partition": self.partition, "offset": self.offset, "error": self.error,
            "key_b64": base64.b64encode(self.key or b"").decode(),
            "value_b64": base64.b64encode(self.value or b"").decode(),
        }, option=_SORT)

    @property
    def dlq_key(self) -> bytes:
        return f"{self.partition}:{self.offset}".encode()


@dataclass
class BatchOutcome:
    """What one call of :meth:`PartitionDeriver.process` did."""

    applied: int = 0
    skipped: int = 0
    transactions: int = 0
    #: the open blocks' versions parts the batch wrote (a live batch: ``process``'s ``live``)
    open_parts: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: how many of ``dead_letters`` went to the deriver's sink already
    sent: int = 0
    snapshots_due: list[str] = field(default_factory=list)
    deltas_due: list[str] = field(default_factory=list)
    #: how many of the records given were folded (all of them unless ``until_due`` stopped early)
    consumed: int = 0
    #: the entity-versions records of the touched-index blocks the batch closed,
    #: ``(cluster, first, last, raw bytes)``, to be stored (store/versions.py); committed already
    versions: list[tuple[str, int, int, bytes]] = field(default_factory=list)
    #: the cluster of each touched-index block the batch closed (the worker groups old ones:
    #: ``touched.group_oldest``)
    closed: list[str] = field(default_factory=list)


#: Snapshot every this many events of a cluster (``--snapshot-every``): a cold
#: point-in-time read folds at most this many (~0.5 s at 40k events/s); with
#: compression the snapshots of the simulator's default cluster take ~150 B
#: per event of the log over its first 200k events and ~0.5 KB per event once
#: retention's limits are reached (BENCHMARKS.md, Replay); the worker spends
#: about as much per event as it did at 50,000 uncompressed.
SNAPSHOT_EVERY_EVENTS = 20_000
#: Between full snapshots, a cumulative delta every this many events of a cluster
#: (``--delta-every``; 0: none): what changed since the last full snapshot, so a cold
#: point-in-time read loads that snapshot, applies one delta and folds at most this
#: many events (kmevents/reducer/delta.py; sizes in BENCHMARKS.md).
#:
#: Until the first full snapshot of a cluster whose fold began from nothing in this worker's
#: life, the deltas due are full snapshots instead, *early* ones: there is no base to take a
#: delta against, the state is still small, and a delta against an early base would hold most
#: of the state. So reads of any offset past the first delta interval (history's folds,
#: points in time) start near it, not from the log's beginning. The full cadence is unchanged.
#: The early ones stop after :data:`EARLY_EVENTS` of the cluster's events even when the first
#: regular full snapshot comes later (a ``--snapshot-every`` above it), once one of them is
#: the state's base: the deltas after that are taken against the last early one.
DELTA_EVERY_EVENTS = 4_000
#: How long the early full snapshots may last (the default full interval): with ``--snapshot-every
#: 1000000`` a worker took a full snapshot at every delta point of its first million events (250
#: of them, each larger than the last), the opposite of what the setting asks; ``bench derive``'s
#: worker, set never to snapshot, built one every 4,000 events for its whole run.
EARLY_EVENTS = SNAPSHOT_EVERY_EVENTS
#: A restore re-folds a cluster's open block of the touched-entity index (the records from the
#: end of its last closed block to the checkpoint) so that the next block it closes starts where
#: that one ended; the fold must then start from a full snapshot before the block's start, not
#: the newest one. It does so when that costs at most this many full snapshot intervals of the
#: cluster's events more (about one, normally); beyond (an index switched off for a while), the
#: range stays unindexed and history folds it as such, correct and slower.
RESUME_REFOLD_INTERVALS = 2


class PartitionDeriver:
    """The state, chain heads and checkpoint of one partition owned by this worker."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient, partition: int, *,
                 worker_id: str, retention: Retention | None = None,
                 snapshot_every_events: int = SNAPSHOT_EVERY_EVENTS, delta_every_events: int = DELTA_EVERY_EVENTS,
                 pins: PartitionMap | None = None, touched_every_events: int = BLOCK_EVENTS,
                 versions: bool = True,
                 dead_letter_sink: Callable[[list[DeadLetter]], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        #: where dead letters go before a checkpoint passes their records (None: the caller
        #: sends ``BatchOutcome.dead_letters`` itself, after the batch)
        self.dead_letter_sink = dead_letter_sink
        self.client = client
        self.partition = partition
        self.worker_id = worker_id
        self.retention = retention or Retention()
        self.generation = layout.live_generation()
        self.prefix = settings.etcd.prefix
        self.ckpt_key = layout.checkpoint_key(f"{self.prefix}/{self.generation}", partition)
        self.limits = Limits(settings.etcd.max_txn_ops, settings.etcd.max_request_bytes)
        self.checkpoint = Checkpoint(partition=partition)
        #: each cluster's fold (state + chain head) of this partition
        self.folds: dict[str, Fold] = {}
        #: each cluster's last full snapshot built in this process, to build its next from
        #: (reducer/sections.py)
        self.sections: dict[str, Sections] = {}
        #: the partition map (None: every cluster whose records are here is folded here)
        self.pins = pins
        self.annotations: Counter[str] = Counter()
        self.snapshot_every_events = snapshot_every_events
        self.since_snapshot: Counter[str] = Counter()
        self.delta_every_events = delta_every_events
        self.since_delta: Counter[str] = Counter()
        #: clusters whose fold began from nothing in this worker's life and that have had no
        #: regular full snapshot since: their deltas due are full snapshots (``DELTA_EVERY_EVENTS``)
        self.early: set[str] = set()
        self.folded_offset = -1
        self.known_current: set[str] = set()
        #: each cluster's open block of the touched-entity index (kmevents/store/touched.py): it
        #: goes into the transaction that commits its last offset (0 events: no index)
        self.touched_every_events = touched_every_events
        self.touched: dict[str, Accumulator] = {}
        #: each checkpointed cluster's last closed block at or before the checkpoint (read on a
        #: take): the open block a restore resumes from its end (:meth:`restore_ceiling`)
        self.block_ends: dict[str, Block] = {}
        #: per resumed cluster, the first offset of its open block: the restore feeds it from there
        self._resume_from: dict[str, int] = {}
        #: ``(kind, id)`` the restore's re-folded records of a resumed block marked dirty, not yet hashed
        self._resume_dirty: dict[str, set[tuple[str, str]]] = {}
        #: blocks a restore closed (an open block it re-folded past its size): written with the next batch
        self._restored_blocks: dict[bytes, Pending] = {}
        #: each cluster's open block of entity versions (kmevents/store/versions.py), beside its
        #: touched-index block and closed with it (only with the index: ``versions`` and blocks)
        self.versions = versions and touched_every_events > 0
        self.captures: dict[str, Capture] = {}
        #: with the index: each cluster's host directory (kmevents/store/hosts.py), read from etcd on a
        #: take (:meth:`load_block_ends`); its changes go with the batch
        self.hosts: dict[str, host_directory.Directory] = {}
        #: with versions: per cluster, the dirty sets taken after each applied event since the
        #: entities were last collected for etcd (:meth:`_take_dirty` writes them with the rest):
        #: what the events marked (counted as ``dirty_count`` counted them), and the roles that
        #: bringing the totals up to date marked (which ``dirty_count`` never counts)
        self._taken: dict[str, set[tuple[str, str]]] = {}
        self._taken_totals: dict[str, set[tuple[str, str]]] = {}
        #: with versions: per cluster, what fold-failed events marked dirty since its last applied
        #: event and a collect for etcd took first: it goes with the next applied event's versions
        self._held: dict[str, set[tuple[str, str]]] = {}
        #: per cluster, the parts of an open block an earlier worker wrote (read on a take): deleted
        #: with the cluster's next block close (the resumed block writes none: its record is partial)
        self._stale_parts: dict[str, list[bytes]] = {}
        #: clusters whose readers were switched to a repaired generation of this
        #: reducer version (``r<V>.repair-<time>``, see kmevents/replay/repair.py):
        #: their entities are written there, and ``current`` is left alone.
        self.cluster_generation: dict[str, str] = {}
        #: how long a transaction is retried while etcd is unreachable before the worker gives up
        self.etcd_retry_seconds = 120.0
        self._inflight: asyncio.Task[None] | None = None
        self._inflight_offset = -1

    # -- loading -------------------------------------------------------------
    async def load_checkpoint(self) -> Checkpoint:
        got = await read_checkpoint(self.client, self.prefix, self.generation, self.partition)
        self.checkpoint = got or Checkpoint(partition=self.partition, reducer_version=REDUCER_VERSION,
                                            generation=self.generation)
        self.folded_offset = self.checkpoint.offset
        self.annotations.clear()
        self.annotations.update(self.checkpoint.annotations)
        return self.checkpoint

    async def load_generations(self) -> dict[str, str]:
        """Follow each known cluster's ``current`` pointer when it names a repair of this generation."""
        for cluster in self.checkpoint.chains:
            gen = await current_generation(self.client, self.prefix, cluster)
            if gen is None:
                continue
            self.known_current.add(cluster)
            if gen != self.generation and gen.startswith(f"{self.generation}.repair-"):
                self.cluster_generation[cluster] = gen
        return dict(self.cluster_generation)

    @property
    def clusters(self) -> dict[str, ClusterState]:
        """Each cluster's state in memory (the partition may hold several clusters)."""
        return {c: f.state for c, f in self.folds.items()}

    @property
    def chains(self) -> dict[str, str]:
        """Each cluster's chain head after ``folded_offset``."""
        return {c: f.head or chain.GENESIS for c, f in self.folds.items()}

    def _new_fold(self, cluster: str, state: ClusterState | None = None, head: str = chain.GENESIS) -> Fold:
        f = self.folds[cluster] = Fold(state or ClusterState.empty(cluster, retention=self.retention), head,
                                       partition=self.partition)
        if state is None:
            self.early.add(cluster)
        else:
            self.early.discard(cluster)
        f.annotations = self.annotations
        return f

    # -- restoring -----------------------------------------------------------
    async def load_block_ends(self) -> dict[str, Block]:
        """Read each checkpointed cluster's last closed block of the touched-entity index (none
        when the index is off): the open block a restore resumes, instead of starting a new one
        after the checkpoint and leaving the records in between in no block; and its host directory."""
        self.block_ends = {}
        ckpt = self.checkpoint.offset
        if not self.touched_every_events or ckpt < 0:
            return {}
        for cluster in self.checkpoint.chains:
            # (and its host directory: kmevents/store/hosts.py)
            self.hosts[cluster] = await host_directory.load(self.client, f"{self.prefix}/{self.generation}", cluster)
            b = await touched_index.last_closed(self.settings, self.client, cluster, ckpt, self.generation)
            if b is not None:
                self.block_ends[cluster] = b
        if self.versions:
            self._stale_parts = {}
            prefix = f"{self.prefix}/{self.generation}"
            for cluster in self.checkpoint.chains:
                start = layout.versions_open_prefix(prefix, cluster)
                async for _, kvs in etcd_adapter.range_pages(self.client, start, etcd_adapter.prefix_end(start)):
                    self._stale_parts.setdefault(cluster, []).extend(kv.key for kv in kvs)
        return dict(self.block_ends)

    def restore_ceiling(self, cluster: str, fulls: Sequence[int]) -> int:
        """The newest offset a full snapshot the restore of ``cluster`` starts from may have.

        The checkpoint, unless the cluster's open block is resumed (:meth:`load_block_ends`):
        then the end of its last closed block, so the restore re-folds the block's records.
        ``fulls``: the offsets of the cluster's full snapshots. When the snapshot before the
        block costs more than ``RESUME_REFOLD_INTERVALS`` intervals of the cluster's events
        (estimated from the closed block's density) over the newest one, the block is not
        resumed: its records stay unindexed, logged."""
        ckpt = self.checkpoint.offset
        b = self.block_ends.get(cluster)
        if b is None or b.last >= ckpt:
            return ckpt
        newest = max((o for o in fulls if o <= ckpt), default=-1)
        older = max((o for o in fulls if o <= b.last), default=-1)
        events_per_offset = max(1, b.events) / max(1, b.last - b.first + 1)
        extra = (newest - older) * events_per_offset
        if extra > RESUME_REFOLD_INTERVALS * max(1, self.snapshot_every_events):
            log.warning("touched-entity index: the open block is not resumed; its records stay unindexed",
                        extra={"partition": self.partition, "cluster": cluster, "first": b.last + 1,
                               "last": ckpt, "refold_events": int(extra)})
            del self.block_ends[cluster]
            return ckpt
        return b.last

    def begin_restore(self, snapshots: dict[str, ClusterState] | None = None,
                      snapshot_chains: dict[str, tuple[int, str]] | None = None, *, start: int = 0) -> None:
        """Start rebuilding memory up to the checkpoint: from these snapshots, then the records
        from ``start`` fed to :meth:`restore_batch` (a stream: memory holds one batch)."""
        self.folds = {}
        self._restore_annotations: Counter[str] = Counter()  # recomputed; the checkpoint has the counts
        self._snap_at = {c: o for c, (o, _) in (snapshot_chains or {}).items()}
        for cluster, st in (snapshots or {}).items():
            self._new_fold(cluster, st, (snapshot_chains or {})[cluster][1])
        self._restore_start = start
        self._restored_to = start - 1
        # The open blocks resumed: those whose records past the last closed block this restore folds.
        self.touched, self._resume_from, self._resume_dirty, self._restored_blocks = {}, {}, {}, {}
        self.captures, self._taken, self._taken_totals, self._held = {}, {}, {}, {}
        if self.touched_every_events:
            for cluster, b in self.block_ends.items():
                if self._snap_at.get(cluster, -1) > b.last or start > b.last + 1:
                    continue  # restored from past the block's start (restore_ceiling said why)
                acc = self.touched[cluster] = Accumulator()
                acc.first = self._resume_from[cluster] = b.last + 1
                self._resume_dirty[cluster] = set()
                if self.versions:
                    # its records up to the checkpoint are re-folded, not captured: no record
                    # (unless it starts right after the checkpoint)
                    self.captures[cluster] = Capture(complete=b.last >= self.checkpoint.offset)

    def restore_batch(self, records: Sequence[Record]) -> None:
        """Fold records of the restore (ascending offsets, at most up to the checkpoint).

        Exactly the live fold (:meth:`process`): the same ownership check and the
        same step, so a record that was dead-lettered live is passed over here too."""
        ckpt = self.checkpoint.offset
        for rec in records:
            if rec.offset > ckpt:
                break
            self._restored_to = rec.offset
            cluster = self._cluster_of(rec)
            if cluster is None or rec.offset <= self._snap_at.get(cluster, -1):
                continue
            f = self.folds.get(cluster)
            if f is None:
                if not self._owned_here(cluster):
                    continue
                f = self._new_fold(cluster)
            f.annotations = self._restore_annotations
            outcome = f.step(rec.offset, rec.key, rec.value)
            f.annotations = self.annotations
            dirty = f.state.take_dirty()
            if self.versions:  # what fold-failed records left for the next applied one's versions
                if outcome is APPLIED:
                    self._held.pop(cluster, None)
                elif outcome is FAILED:
                    self._held.setdefault(cluster, set()).update(dirty)
            if rec.offset >= self._resume_from.get(cluster, ckpt + 1):
                # a record of the open block: what process() would have fed it (nothing is written)
                self._resume_dirty[cluster] |= dirty
                acc = self.touched[cluster]
                acc.event(rec.offset, f.event, applied=outcome is APPLIED, failed=outcome is FAILED)
                if acc.due(self.touched_every_events):
                    self._hash_resumed(cluster)
                    first, value = acc.close(rec.offset)
                    self._restored_blocks[
                        layout.touched_index_key(f"{self.prefix}/{self.generation}", cluster, first)] = value
                    if self.versions:  # no record; the next block's first records are re-folded too
                        self.captures[cluster] = Capture(complete=False)
        for cluster in self._resume_dirty:
            self._hash_resumed(cluster)

    def _hash_resumed(self, cluster: str) -> None:
        """The entities the restore's records of ``cluster``'s open block touched, into its hashes
        (their values as they are now, as a live flush takes them)."""
        dirty, state = self._resume_dirty[cluster], self.folds[cluster].state
        hashes = self.touched[cluster].hashes
        for kind, id in dirty:
            hashes.update(entity_hashes(kind, id, state.entity_read(kind, id)))
        dirty.clear()

    def end_restore(self) -> None:
        """Check that the records reached the checkpoint, and that the chains agree with it.

        Raises :class:`EnvironmentProblem` when the read came back short: folding on from a
        partial prefix would commit state and chains that are not the log's."""
        ckpt = self.checkpoint.offset
        if self._restore_start <= ckpt and self._restored_to != ckpt:
            raise EnvironmentProblem(
                f"partition {self.partition}: reading offsets {self._restore_start}..{ckpt} to restore the state "
                f"ended at {self._restored_to}",
                hint="the events topic lost records below the checkpoint (retention?) or the broker "
                     "answered partially; restart the worker, and run `kmevents verify`")
        for cluster, head in self.checkpoint.chains.items():
            f = self.folds.get(cluster)
            mine = f.head if f is not None else None
            if mine != head:
                log.error("chain mismatch on restore", extra={
                    "partition": self.partition, "cluster": cluster, "checkpoint": head, "log": mine})
        self.folded_offset = ckpt

    def restore(self, records: Sequence[Record], snapshots: dict[str, ClusterState] | None = None,
                snapshot_chains: dict[str, tuple[int, str]] | None = None) -> None:
        """Rebuild memory up to the checkpoint from snapshots plus the records after them (in one list).

        ``records`` are this partition's records from the earliest needed offset
        through ``checkpoint.offset``; nothing is written. A cluster with a
        snapshot at offset S skips its records at or before S.
        """
        self.begin_restore(snapshots, snapshot_chains, start=records[0].offset if records else 0)
        self.restore_batch(records)
        self.end_restore()

    # -- which clusters this partition folds ----------------------------------
    def _owned_here(self, cluster: str) -> bool:
        """Whether the partition map lets this partition fold ``cluster`` (as last read).

        A cluster pinned to another partition is not ours: a record of it here was
        written past ingest (raw), and folding it would write that cluster's keys from
        a log its readers never read (DESIGN.md rule 2). A cluster the map does not
        know is folded where its records are (logs written before the map kept it)."""
        if self.pins is None:
            return True
        pinned = self.pins.cached(cluster)
        return pinned is None or pinned == self.partition

    async def _claim(self, cluster: str) -> bool:
        """Live: a cluster seen here first is pinned here; one pinned elsewhere is not ours."""
        if self.pins is None:
            return True
        pinned = self.pins.cached(cluster)
        if pinned is None:
            pinned = await self.pins.claim(cluster, self.partition)
        return pinned == self.partition

    # -- folding -------------------------------------------------------------
    def _cluster_of(self, rec: Record) -> str | None:
        """The record's cluster: its key. None for a record without a key or with one that is
        not UTF-8: it was written past ingest, and no reader selects it (they read a cluster's
        records by key), so folding it would write state nobody can check against the log."""
        if rec.key:
            try:
                return rec.key.decode()
            except UnicodeDecodeError:
                pass
        return None

    async def process(self, records: Sequence[Record], *, until_due: bool = False, live: bool = False
                      ) -> BatchOutcome:
        """Fold ``records`` (one partition, ascending offsets) and commit them to etcd.

        With ``until_due`` it stops right after the record at which a cluster's snapshot or
        delta falls due (``out.consumed`` records folded and committed; the caller passes the
        rest again once it has taken them), so snapshots and deltas lie at their cadence's exact
        offsets however large the batch: taken at the batch's end instead, a delta every 4,000
        events came every ~7,500 offsets with batches of 10,000 records, and a point-in-time
        read folded up to that many records after it.

        Pending writes are keys only; values are encoded when the batch is
        committed, from the state as it is then, which is exactly the state at
        ``folded_offset`` because a batch is committed *before* the next event
        is applied whenever it is close to etcd's operation limit. A batch that
        still ends up over the limits (an event touching many keys) goes out
        in several transactions with the checkpoint in the last one.

        A record that cannot be decoded or folded, that has no key, or that belongs
        to a cluster pinned to another partition, goes to the dead letters with its
        position.

        ``live``: the records end at the partition's end as the fetch saw it (the worker keeps
        up): with versions, the batch also writes what it adds to each open block's record
        (``Capture.part``), so a history of what changed last reads it instead of folding.

        Raises :class:`FencedError` when another worker moved the checkpoint.
        """
        live = live and self.versions
        out = BatchOutcome()
        # Clusters changed in this batch: their dirty sets are collected at flush
        # time only (collecting them materializes agent/role aggregates, which is
        # the costly part of reading state; once per batch is enough).
        touched: dict[str, ClusterState] = {}
        pointers: dict[bytes, None] = {}
        #: writes of the touched-index blocks closed inside the batch (each with its entities' keys),
        #: and any the restore closed
        carried: dict[bytes, Pending] = self._restored_blocks
        self._restored_blocks = {}
        every = self.touched_every_events
        flush_at = max(1, self.limits.op_budget - FLUSH_RESERVE)
        out.consumed = len(records)
        for i, rec in enumerate(records):
            if until_due and (out.snapshots_due or out.deltas_due):
                out.consumed = i
                break
            if rec.offset <= self.folded_offset:
                out.skipped += 1
                continue
            if touched or carried:
                n = len(pointers) + len(carried)
                for st in touched.values():  # (one cluster, mostly: no generator per record)
                    n += st.dirty_count
                for taken in self._taken.values():  # the applied events' sets taken for versions
                    n += len(taken)
                for d in self.hosts.values():
                    n += len(d.dirty)
                if n >= flush_at:
                    await self._flush(self._collect(touched, pointers, carried, out, live=live), out)
                    touched, pointers, carried = {}, {}, {}
            cluster = self._cluster_of(rec)
            if cluster is None:
                out.dead_letters.append(DeadLetter(
                    rec.partition, rec.offset, "unkeyed: the record has no key (or one that is not UTF-8), so its "
                    "cluster is unknown; not folded (the record was written past ingest)", rec.key, rec.value))
                self.folded_offset = rec.offset
                out.applied += 1
                continue
            f = self.folds.get(cluster)
            if f is None:
                if not await self._claim(cluster):
                    pinned = self.pins.cached(cluster) if self.pins is not None else None
                    out.dead_letters.append(DeadLetter(
                        rec.partition, rec.offset,
                        f"misrouted: cluster {cluster!r} is pinned to partition {pinned}, not {self.partition}; "
                        "not folded (the record was written past ingest)", rec.key, rec.value))
                    self.folded_offset = rec.offset
                    out.applied += 1
                    continue
                f = self._new_fold(cluster)
            outcome = f.step(rec.offset, rec.key, rec.value)
            self.folded_offset = rec.offset
            if every:
                acc = self.touched.get(cluster)
                if acc is None:
                    acc = self.touched[cluster] = Accumulator()
                    if self.versions:
                        self.captures[cluster] = Capture()
                ev = f.event
                acc.event(rec.offset, ev, applied=outcome is APPLIED, failed=outcome is FAILED)
                named = None if ev is None else host_directory.host_named(ev)
                if named is not None:
                    hd = self.hosts.get(cluster)
                    if hd is None:  # (a cluster new to the partition: one seen before was read on the take)
                        hd = self.hosts[cluster] = host_directory.Directory()
                    hd.note(rec.offset, *named)
                if outcome is APPLIED and self.versions:
                    self._capture(cluster, f, rec.offset)
                if acc.due(every):  # the block ends here, inside the batch: blocks stay this small
                    self._close_block(cluster, f.state, acc, carried, out)
            if outcome is APPLIED:
                touched[cluster] = f.state
                if cluster not in self.known_current:
                    pointers[layout.current_key(self.prefix, cluster)] = None
                    self.known_current.add(cluster)
            else:
                if outcome is FAILED:
                    # Whatever it touched is written as it now is (its dirty set is collected at flush).
                    touched[cluster] = f.state
                out.dead_letters.append(DeadLetter(rec.partition, rec.offset, f"{outcome}: {f.error}",
                                                   rec.key, rec.value))
            out.applied += 1
            self.since_snapshot[cluster] += 1
            self.since_delta[cluster] += 1
            # Due ones are taken once at the batch's checkpoint: a cluster is listed once, and a
            # full snapshot makes a delta at the same offset pointless (a batch of 10,000
            # records used to encode and store the same delta twice).
            if self.since_snapshot[cluster] >= self.snapshot_every_events:
                if cluster not in out.snapshots_due:
                    out.snapshots_due.append(cluster)
                if cluster in out.deltas_due:
                    out.deltas_due.remove(cluster)
                self.since_snapshot[cluster] = 0
                self.since_delta[cluster] = 0
                self.early.discard(cluster)
            elif 0 < self.delta_every_events <= self.since_delta[cluster]:
                if (cluster in self.early and self.since_snapshot[cluster] > EARLY_EVENTS
                        and f.state.base_offset is not None):
                    self.early.discard(cluster)  # deltas from here on, against the last early snapshot
                if cluster in self.early:
                    # before the first full interval: a full snapshot, small this early (a delta
                    # against an early one would hold most of the state anyway); a cluster restored
                    # from a snapshot, or whose snapshot was not stored, waits for the next full one
                    if cluster not in out.snapshots_due:
                        out.snapshots_due.append(cluster)
                elif cluster not in out.deltas_due and cluster not in out.snapshots_due:
                    out.deltas_due.append(cluster)
                self.since_delta[cluster] = 0
        if touched or pointers or carried or self.folded_offset > self._next_checkpoint_floor():
            await self._flush(self._collect(touched, pointers, carried, out, live=live), out)
        await self.drain()
        return out

    def _next_checkpoint_floor(self) -> int:
        """The offset the checkpoint will have once the transaction in flight lands."""
        return self._inflight_offset if self._inflight is not None else self.checkpoint.offset

    def _collect(self, touched: dict[str, ClusterState], pointers: dict[bytes, None],
                 carried: dict[bytes, Pending], out: BatchOutcome, *, live: bool = False) -> dict[bytes, Pending]:
        """Keys to write for the batch: every changed entity of the touched clusters, plus pointers,
        plus the touched-index blocks closed in the batch (``carried``, with the entities their
        dirty sets named) and each one due now (its versions record into ``out``); ``live``: the
        open blocks' versions parts too (``process``)."""
        pointer = pointer_value(self.generation)
        pending: dict[bytes, Pending] = dict.fromkeys(pointers, pointer)
        if carried:
            pending.update(carried)
        for cluster, d in self.hosts.items():
            if d.dirty:
                pending.update(d.take(f"{self.prefix}/{self.generation}", cluster))
        for cluster, state in touched.items():
            self._take_dirty(cluster, state, pending, now=True)
        every = self.touched_every_events
        for cluster, acc in self.touched.items():
            if every and acc.due(every):
                self._end_block(cluster, acc, pending, out)
            elif acc.events and cluster in touched:
                # the open block so far (its hashes are up to date after _take_dirty): history folds
                # the records past the last closed block only when it names what it looks for
                pending[layout.touched_open_key(f"{self.prefix}/{self.generation}", cluster)] = acc.encode_through(
                    self.folded_offset)
                if live and cluster not in self._held:
                    out.open_parts += self._open_part(cluster, acc, pending)
        return pending

    def _open_part(self, cluster: str, acc: Accumulator, pending: dict[bytes, Pending]) -> int:
        """What the batch added to the open block's versions record, written with the block so far
        (the same transaction: a history finds the parts through the block's last offset). Not
        while a fold-failed event's marks wait for the next applied event's versions (``_held``):
        the next part covers both. How many parts it wrote (0 or 1)."""
        cap = self.captures.get(cluster)
        got = None if cap is None else cap.part(cluster, acc.first, self.folded_offset)
        if cap is None or got is None:
            return 0
        start, raw = got
        key = layout.versions_open_key(f"{self.prefix}/{self.generation}", cluster, acc.first, start)
        pending[key] = snapshot_store.compress(raw, versions_store.LEVEL)
        cap.part_keys.append(key)
        return 1

    def _take_dirty(self, cluster: str, state: ClusterState, pending: dict[bytes, Pending], *,
                    now: bool = False) -> None:
        """The cluster's changed entities into ``pending``, and their hashes into its open block.

        ``now``: the batch is committed right after (nothing is folded in between), so each
        value is encoded here, from the same read that gives its names to the block (a packed
        entity at rest is decompressed once, not once for its names and again for etcd).
        Otherwise (a block closed inside the batch) the entity is read again at commit."""
        prefix = self.prefix
        gen = self.cluster_generation.get(cluster, self.generation)
        acc = self.touched.get(cluster)
        hashes = acc.hashes if acc is not None else None
        dirty = state.take_dirty()
        if self.versions:
            if dirty:  # marks of fold-failed events after the last applied one: not in its versions yet
                held = self._held.get(cluster)
                if held is None:
                    self._held[cluster] = set(dirty)
                else:
                    held |= dirty
            taken = self._taken.pop(cluster, None)
            if taken:
                taken |= dirty
                dirty = taken
            totals = self._taken_totals.pop(cluster, None)
            if totals:
                dirty |= totals
        if now:
            read = state.entity_bytes_read
            index = hashes is not None
            for kind, id in dirty:
                data, value = read(kind, id, value=index)
                pending[layout.entity_key(prefix, cluster, gen, kind, id)] = data  # None: gone, delete the key
                if index:
                    hashes.update(entity_hashes(kind, id, value))  # type: ignore[union-attr]
            return
        for kind, id in dirty:
            pending[layout.entity_key(prefix, cluster, gen, kind, id)] = (state, kind, id)
            if hashes is not None:
                hashes.update(entity_hashes(kind, id, state.entity_read(kind, id)))

    def _close_block(self, cluster: str, state: ClusterState, acc: Accumulator, carried: dict[bytes, Pending],
                     out: BatchOutcome) -> None:
        """Close the cluster's block at the record just folded: its dirty set so far goes into the
        block (and its entities into ``carried``, written with the batch), the block too, and its
        versions record into ``out``."""
        self._take_dirty(cluster, state, carried)
        self._end_block(cluster, acc, carried, out)

    def _end_block(self, cluster: str, acc: Accumulator, into: dict[bytes, Pending], out: BatchOutcome) -> None:
        """The cluster's block through the record just folded: its key into ``into`` (written with
        the batch), its versions record into ``out``; the block and the capture start over."""
        first, value = acc.close(self.folded_offset)
        into[layout.touched_index_key(f"{self.prefix}/{self.generation}", cluster, first)] = value
        out.closed.append(cluster)
        for key in self._stale_parts.pop(cluster, ()):
            into[key] = None  # an earlier worker's parts of an open block (load_block_ends)
        self._close_capture(cluster, first, out, into)

    def _capture(self, cluster: str, f: Fold, offset: int) -> None:
        """After an applied event: its dirty set, taken now (the agents' and roles' totals brought
        up to date), gives the versions of what it changed; the set waits in ``_taken`` for the
        batch's etcd write (:meth:`_take_dirty`), which thus writes the keys it always did."""
        st = f.state
        dirty = st.take_dirty(totals=False)
        taken = self._taken.get(cluster)
        if taken is None:
            self._taken[cluster] = taken = set()
        taken |= dirty
        roles = st.take_dirty()  # the totals brought up to date: the roles they moved
        if roles:
            got = self._taken_totals.get(cluster)
            if got is None:
                self._taken_totals[cluster] = set(roles)
            else:
                got |= roles
            dirty |= roles
        held = self._held.pop(cluster, None)
        if held:
            dirty |= held  # written already; their versions are this event's (as history sees them)
        self.captures[cluster].event(offset, dirty, st, f.anns)

    def _close_capture(self, cluster: str, first: int, out: BatchOutcome, into: dict[bytes, Pending]) -> None:
        """The versions record of the block ``first..folded_offset`` just closed, into ``out``; the
        keys of its open parts, deleted, into ``into`` (the record replaces them)."""
        cap = self.captures.get(cluster)
        if cap is None:
            return
        for key in cap.part_keys:
            into[key] = None
        cap.part_keys = []
        raw = cap.close(cluster, first, self.folded_offset)
        if raw is not None:
            out.versions.append((cluster, first, self.folded_offset, raw))

    def _encode_pending(self, pending: dict[bytes, Pending]) -> dict[bytes, bytes | None]:
        ops: dict[bytes, bytes | None] = {}
        for key, ref in pending.items():
            if type(ref) is tuple:  # an entity, read now
                state, kind, id = ref
                ops[key] = state.entity_bytes(kind, id)  # None: gone, delete the key
            else:  # encoded already, or None: delete
                ops[key] = ref  # type: ignore[assignment]
        return ops

    async def _flush(self, pending: dict[bytes, Pending], out: BatchOutcome) -> None:
        ops = self._encode_pending(pending)
        budget = self.limits.byte_budget
        for key in [k for k, v in ops.items() if op_size(k, v) > budget]:
            # Never a crash loop: a value no etcd request can carry is recorded as an
            # error with its position (the batch's last offset) and left out.
            size = op_size(key, ops.pop(key))
            out.dead_letters.append(DeadLetter(
                self.partition, self.folded_offset,
                f"entity value too large for etcd: {key.decode(errors='replace')} is {size:,} bytes, "
                f"a request carries {budget:,}; raise etcd --max-request-bytes and "
                "KMEVENTS_ETCD__MAX_REQUEST_BYTES", None, None))
        if fits(ops, self.limits):
            await self._commit(ops, out)
        else:
            await self._commit_chunks(list(split(ops, self.limits)), out)

    async def _commit_chunks(self, chunks: list[dict[bytes, bytes | None]], out: BatchOutcome) -> None:
        """Several transactions for one batch: all guarded, the checkpoint only in the last."""
        await self.drain()
        for chunk in chunks[:-1]:
            ok, _ = await self._guarded_txn(chunk, moves_checkpoint=None)
            out.transactions += 1
            if not ok:
                raise FencedError(f"partition {self.partition}: fenced while writing up to offset "
                                  f"{self.folded_offset}", hint="another worker owns this partition now")
        await self._commit(chunks[-1] if chunks else {}, out)

    def _next_checkpoint(self) -> Checkpoint:
        return Checkpoint(
            partition=self.partition, offset=self.folded_offset, chains=dict(self.chains),
            reducer_version=REDUCER_VERSION, generation=self.generation,
            annotations=dict(self.annotations), worker=self.worker_id,
        )

    async def _guarded_txn(self, ops: dict[bytes, bytes | None], *, moves_checkpoint: Checkpoint | None
                           ) -> tuple[bool, int]:
        """The checkpoint-guarded transaction, surviving an etcd restart.

        A transport error leaves the outcome unknown. Retrying blindly could
        misread our own committed write as fencing, so after an error the
        checkpoint is read back: still at the expected revision -> the write did
        not happen, retry it; moved to exactly what we wrote (same worker, same
        offset) -> it did happen; moved to anything else -> fenced.
        """
        delay = 0.2
        deadline = asyncio.get_running_loop().time() + self.etcd_retry_seconds
        while True:
            try:
                return await etcd_adapter.txn_if_unchanged(self.client, self.ckpt_key,
                                                           self.checkpoint.mod_revision, ops)
            except etcd_adapter.TRANSIENT_ERRORS as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("etcd unavailable; retrying the transaction",
                            extra={"partition": self.partition, "error": str(exc)[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
                try:
                    _, kvs = await etcd_adapter.range_at(self.client, self.ckpt_key)
                except etcd_adapter.TRANSIENT_ERRORS:
                    continue
                current_rev = kvs[0].mod_revision if kvs else 0
                if current_rev == self.checkpoint.mod_revision:
                    continue  # the write did not happen: retry it
                if moves_checkpoint is not None and kvs:
                    seen = Checkpoint.from_bytes(kvs[0].value)
                    if seen.worker == moves_checkpoint.worker and seen.offset == moves_checkpoint.offset:
                        return True, current_rev  # it did happen before the connection broke
                return False, current_rev

    async def _commit(self, ops: dict[bytes, bytes | None], out: BatchOutcome) -> None:
        """Send the batch with the next checkpoint; returns once it is *in flight*.

        One transaction is in flight per partition at a time: the next waits
        for this one's revision (its compare needs it), but the fold of the next
        events overlaps this one's round trip to etcd. :meth:`drain` waits for it.
        """
        await self.drain()
        if self.dead_letter_sink is not None and len(out.dead_letters) > out.sent:
            await self.dead_letter_sink(out.dead_letters[out.sent:])
            out.sent = len(out.dead_letters)
        nxt = self._next_checkpoint()
        ops = {**ops, self.ckpt_key: nxt.to_bytes()}
        out.transactions += 1
        self._inflight_offset = nxt.offset
        self._inflight = asyncio.get_running_loop().create_task(self._send(ops, nxt))

    async def _send(self, ops: dict[bytes, bytes | None], nxt: Checkpoint) -> None:
        ok, rev = await self._guarded_txn(ops, moves_checkpoint=nxt)
        if not ok:
            raise FencedError(
                f"partition {self.partition}: the checkpoint moved under this worker "
                f"(expected mod revision {self.checkpoint.mod_revision})",
                hint="another worker owns this partition now; this one gives it up",
            )
        nxt.mod_revision = rev
        self.checkpoint = nxt

    async def drain(self) -> None:
        """Wait for the transaction in flight, if any (re-raising its error, e.g. fencing)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    def snapshot_encoder(self, cluster: str, *, delta: bool = False, in_child: bool = False
                         ) -> tuple[int, int | None, str, Callable[[], bytes]] | None:
        """``(offset, base offset, chain head, encode)`` of a snapshot of ``cluster`` at the
        committed checkpoint, ``encode()`` giving its canonical bytes from the state as it is
        when called (in this process, or in a child forked now, ``in_child``: processors/offload.py).

        A full snapshot (base None) is the base of the next deltas once stored: the caller
        calls :meth:`mark_base` (after forking, or right after ``encode``: in this process a full
        snapshot is built from the last one's sections and the changes since, reducer/sections.py,
        which reads them from the base marked then). A delta is None when there is no base (no
        full snapshot written or loaded yet in this worker's life) or nothing to add."""
        f = self.folds[cluster]
        head = f.head or chain.GENESIS
        state, offset = f.state, self.checkpoint.offset
        if not delta:
            if in_child:  # (a child's sections would be lost with it)
                return offset, None, head, lambda: state.to_snapshot(chain_hash=head)
            sections = self.sections.get(cluster)
            if sections is None:
                sections = self.sections[cluster] = Sections()
            return offset, None, head, lambda: sections.build(state, head)
        base = state.base_offset
        if base is None or base >= offset:
            return None
        return offset, base, head, lambda: state.to_delta(chain_hash=head)

    def mark_base(self, cluster: str, offset: int) -> None:
        """The cluster's state is the base of its next deltas (its full snapshot at ``offset``)."""
        self.folds[cluster].state.mark_base(offset)

    def snapshot_bytes(self, cluster: str) -> tuple[int, str, bytes]:
        """``(offset, chain head, snapshot bytes)`` of a cluster at the committed checkpoint.

        The state becomes the base of the next deltas (``mark_base``); the caller calls
        ``state.drop_base()`` when the snapshot could not be stored."""
        got = self.snapshot_encoder(cluster)
        assert got is not None
        offset, _, head, encode = got
        data = encode()
        self.mark_base(cluster, offset)
        return offset, head, data

    def delta_bytes(self, cluster: str) -> tuple[int, int, str, bytes] | None:
        """``(offset, base offset, chain head, delta bytes)`` of a cluster at the committed
        checkpoint: what changed since its last full snapshot. None when there is no base
        (no full snapshot written or loaded yet in this worker's life) or nothing to add."""
        got = self.snapshot_encoder(cluster, delta=True)
        if got is None:
            return None
        offset, base, head, encode = got
        assert base is not None
        return offset, base, head, encode()

    def stats(self) -> dict[str, Any]:
        return {"partition": self.partition, "checkpoint": self.checkpoint.offset,
                "clusters": sorted(self.clusters), "annotations": dict(self.annotations)}
