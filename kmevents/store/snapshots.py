"""The snapshot store: folded states kept to bound replay (DESIGN.md rule 7). Writer, reader, codec.

The worker writes a cluster's state at a committed checkpoint (:class:`SnapshotWriter`):
the canonical bytes (``ClusterState.to_snapshot``), zstd-compressed, as 1 MiB chunks to
the snapshots topic (keyed ``cluster/offset/i/n``, on the partition of the events it
folds), then an index entry in etcd at
``<prefix>/<generation>/_snapshots/<cluster>/<offset:020d>``::

    {"cluster", "offset", "chain", "snapshot_partition", "chunk_offsets",
     "bytes", "reducer_version", "codec", "stored_bytes", "kind", "base"}

``codec`` is ``"zstd"`` when the chunks hold compressed bytes (``bytes`` is the
canonical size, ``stored_bytes`` the stored one); absent in entries of older
versions (the chunks hold the bytes as they are). Archives keep snapshots in
the same codec (kmevents/replay/archive.py).

``kind`` is ``"full"`` (absent in older entries: full) or ``"delta"``: a cumulative
delta (kmevents/reducer/delta.py) of what changed since the full snapshot at offset
``base`` of the same cluster and generation. The worker writes one every
``--delta-every`` events between full snapshots; a delta's state is its base's,
loaded (and held, read-only, for the next delta against it), forked and patched.
Only full snapshots go into archives and restore a worker.

Every reader — the worker taking a partition, replay's point-in-time reads, verify,
the API, archive export — finds them through a :class:`Snapshots`: ``entries``
(oldest first), ``state_bytes`` and ``load``, and ``best`` (the newest usable one
at or before a target). :class:`SnapshotStore` is the one over etcd's index and the
topic; archives offer theirs through the same interface (kmevents/replay/snapshots.py).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import io
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from kmevents import frozen, layout
from kmevents.reducer import REDUCER_VERSION, ClusterState, SnapshotError

if TYPE_CHECKING:  # the clients (and the settings' pydantic) load where used: reading archives alone needs none
    import zstandard

    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.settings import Settings
    from kmevents.store import hosts, touched

log = logging.getLogger("kmevents.store.snapshots")

#: Chunks of a stored snapshot in the snapshots topic (under its 8 MiB message limit).
CHUNK_BYTES: Final = 1024 * 1024
#: The worker's codec: zstd level 1 (~0.1 s and 7.4x smaller for a 49 MB state;
#: writing one is 0.2 s against 0.75 s for 49 raw 1 MiB chunks, measured on the local stack).
CODEC: Final = "zstd"
WORKER_LEVEL: Final = 1


# -- the codec --------------------------------------------------------------------

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compressor at ``level`` (an instance is not for simultaneous use: the worker
    compresses a full snapshot in a thread while its loop compresses a delta)."""
    by_level = getattr(_local, "c", None)
    if by_level is None:
        by_level = _local.c = {}
    z = by_level.get(level)
    if z is None:
        import zstandard

        z = by_level[level] = zstandard.ZstdCompressor(level=level)
    return z


def compress(state_bytes: bytes, level: int = WORKER_LEVEL) -> bytes:
    """A snapshot's canonical bytes as stored (codec ``zstd``; the same bytes in any thread)."""
    return _compressor(level).compress(state_bytes)


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (one a thread: an instance is not for simultaneous use). Making
    one costs ~30 us: 45-70 ms of the 1,500 touched-index blocks a history of the large profile reads
    (~5 ms with one; BENCHMARKS.md, History of one entity at full size)."""
    d = getattr(_local, "d", None)
    if d is None:
        import zstandard

        d = _local.d = zstandard.ZstdDecompressor()
    return d


def decompress(stored: bytes, codec: str | None, size: int) -> bytes:
    """A stored snapshot's canonical bytes. ``size`` is its canonical size (the entry's ``bytes``).

    Raises :class:`SnapshotError` for an unknown codec or damaged bytes."""
    if codec in (None, "none"):
        return stored
    if codec != "zstd":
        raise SnapshotError(f"snapshot codec {codec!r} is unknown to this version",
                            hint="replay from the log (--no-snapshots) or upgrade kmevents")
    import zstandard

    try:
        return _decompressor().decompress(stored, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise SnapshotError(f"damaged snapshot bytes: {exc}", hint="replay from the log (--no-snapshots)") from None


class ChunkStream(io.RawIOBase):
    """A stored snapshot's chunks, in order, as one raw binary stream that lets go of each
    chunk once it is read: a load then never holds the stored bytes twice (their join beside
    the chunks), and by its end not at all (~51 MiB of chunks at the large profile's 1.5M
    events, alive beside the whole loaded state before). It holds the only references to
    the chunks when the caller drops its own (``chunks`` is iterated once, here)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = collections.deque(chunks)
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        cur = self._cur
        while not len(cur):
            cur.release()  # (the view of a chunk read whole: the chunk goes with it)
            if not self._chunks:
                self._cur = memoryview(b"")
                return 0
            cur = self._cur = memoryview(self._chunks.popleft())
        n = min(len(b), len(cur))
        b[:n] = cur[:n]
        self._cur = cur[n:]
        return n

    def close(self) -> None:
        self._chunks.clear()
        self._cur.release()
        self._cur = memoryview(b"")
        super().close()


def open_stored(stored: bytes | IO[bytes] | list[bytes], codec: str | None) -> IO[bytes]:
    """A stored snapshot (bytes, a binary file positioned at them, or its chunks: a
    :class:`ChunkStream` of them) as a binary stream of its canonical bytes, decompressed
    as it is read (a loader reads it line by line: the whole snapshot is never in memory
    at once). Closing the stream closes the file.

    Raises :class:`SnapshotError` for an unknown codec; damaged bytes raise
    ``zstandard.ZstdError`` while reading (:func:`load_stored` turns it into one)."""
    if isinstance(stored, list):
        stored = io.BufferedReader(ChunkStream(stored), buffer_size=1 << 20)
    if codec in (None, "none"):
        return io.BytesIO(stored) if isinstance(stored, bytes) else stored
    if codec != "zstd":
        raise SnapshotError(f"snapshot codec {codec!r} is unknown to this version",
                            hint="replay from the log (--no-snapshots) or upgrade kmevents")
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stored), buffer_size=1 << 20)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Cyclic GC off while building many objects at once (a snapshot parse is 3-4x faster).

    On the way out the objects made meanwhile go to the oldest generation at once
    (``kmevents.frozen.to_oldest``: moved, not frozen): turned back on, the collector
    would otherwise walk them all in a young collection at the next allocation (0.06 s
    after a load of the large profile's 1.5M-event state, for no garbage: they are the
    state). A later full collection still walks them, as it would have. When objects are
    frozen already (``load_snapshot``'s ``freeze``, the API's collector policy,
    replay/collector.py) the new ones are frozen with them: the unfreeze would thaw those too,
    and leaving the new ones young made the next young collection walk a whole loaded state
    (a point-in-time read ~40 ms dearer at the large profile's full size)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            frozen.to_oldest()
            gc.enable()


def load_snapshot(data: bytes | IO[bytes], *, freeze: bool = True) -> ClusterState:
    """``ClusterState.from_snapshot`` without the collector's passes over the new objects.

    A 49 MB snapshot becomes ~10 million objects: with the collector on, the
    parse takes 3-4x longer. With ``freeze`` (a command that loads once) the
    objects are then moved to the permanent generation (``gc.freeze``), so the
    next collections do not walk them all again (~1 s, paid by whatever runs
    next); reference counting still frees them when the state is dropped.

    A long-lived process (the API) passes ``freeze=False``: ``gc.freeze`` moves
    *every* object alive at that moment, and whatever among them later becomes
    cyclic garbage (a closed connection's transport and protocol, with their
    buffers) is never collected. Measured on a 100k-event cluster (issue 14, H4):
    80 point-in-time reads in a row kept 1,030 MiB with the freezes, 630-680 MiB
    without (their held states bounded alike), at a cost of about a dozen full
    collections over the (bounded) held states.
    """
    import zstandard

    if freeze:
        # whatever is cyclic garbage now (a stopped Kafka consumer's fetch buffers: ~32 MiB at
        # the large profile) would be frozen with the state and never freed; the heap is the
        # command's start here, so a full collection is a few milliseconds
        gc.collect()
    with no_gc():
        try:
            st = ClusterState.from_snapshot(data)
        except zstandard.ZstdError as exc:  # a stream from open_stored
            raise SnapshotError(f"damaged snapshot bytes: {exc}", hint="replay from the log (--no-snapshots)") from None
    if freeze:  # (after no_gc's unfreeze)
        frozen.freeze()
    return st


# -- reading ------------------------------------------------------------------------

async def index_entries(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                        generation: str | None = None) -> list[dict[str, Any]]:
    """The cluster's snapshot index entries, oldest first (each with its etcd ``_key`` and the
    key's ``_rev``, its mod revision)."""
    from kmevents.adapters import etcd as etcd_adapter

    gen = generation or layout.live_generation()
    prefix = layout.snapshot_index_prefix(f"{settings.etcd.prefix}/{gen}", cluster)
    _, kvs = await etcd_adapter.range_at(client, prefix, range_end=etcd_adapter.prefix_end(prefix))
    out = []
    for kv in kvs:
        e = orjson.loads(kv.value)
        e["_key"] = kv.key.decode()
        e["_rev"] = kv.mod_revision
        out.append(e)
    return sorted(out, key=lambda e: int(e["offset"]))


#: The largest fetch a snapshot read asks for (see :func:`fetch_bytes`): a few chunks. With
#: the readers' 32 MiB, a fetch's response and its record batches (~48 MiB at the large
#: profile) were held beside the chunks and, left in reference cycles by the stopped
#: consumer, kept through the load (frozen with the state by ``load_snapshot``).
FETCH_BYTES: Final = 4 * CHUNK_BYTES


def fetch_bytes(entry: dict[str, Any]) -> int:
    """The fetch size of a read of ``entry``'s chunks: what it stores (and some room for the records'
    framing), at most ``FETCH_BYTES``. A fetch brings up to its size from the first offset, other
    snapshots' chunks included, and the consumer prefetches as much again: reading a 0.6 MB delta with
    32 MiB fetches took 0.08 s CPU, 0.006 s sized to it; a 22 MB snapshot 0.10 s, 0.06 s in 8 MiB
    fetches (BENCHMARKS.md, History of one entity at full size). A fetch holds at least one record
    whatever its size, so this only bounds how much comes at once."""
    stored = int(entry.get("stored_bytes") or entry.get("bytes") or 0)
    return max(64 * 1024, min(FETCH_BYTES, stored + 64 * 1024 * (len(entry["chunk_offsets"]) + 1)))


async def read_chunks(settings: Settings, entry: dict[str, Any], reader: Any = None) -> list[bytes] | None:
    """The snapshot's chunks as stored (still compressed), in order, or None when one is
    missing from the topic.

    ``reader``: a ``kafka_adapter.PartitionReader`` of the entry's snapshot partition, kept
    open by a long-lived caller (else a consumer is made for this read).
    """
    from kmevents.adapters import kafka as kafka_adapter

    k = settings.kafka
    offsets = [int(o) for o in entry["chunk_offsets"]]
    want = set(offsets)
    by_offset: dict[int, bytes] = {}
    if reader is not None:
        batches = reader.batches(min(offsets), max(offsets), batch=len(offsets))
    else:
        batches = kafka_adapter.iter_range(k, k.snapshots_topic, int(entry["snapshot_partition"]),
                                           min(offsets), max(offsets), max_bytes=fetch_bytes(entry), batch=len(offsets))
    async for b in batches:
        # only the values, kept as the records go (a record holds its key and headers too)
        by_offset.update((r.offset, r.value or b"") for r in b if r.offset in want)
    if len(by_offset) != len(want):
        log.warning("snapshot chunks missing", extra={"cluster": entry.get("cluster"), "offset": entry.get("offset")})
        return None
    return [by_offset.pop(o) for o in offsets]


async def read_stored(settings: Settings, entry: dict[str, Any], reader: Any = None) -> bytes | None:
    """The snapshot as stored (its chunks joined, still compressed), or None when a chunk is
    missing from the topic (``reader``: as for :func:`read_chunks`)."""
    chunks = await read_chunks(settings, entry, reader)
    return None if chunks is None else b"".join(chunks)


async def read_bytes(settings: Settings, entry: dict[str, Any], reader: Any = None) -> bytes | None:
    """The snapshot's canonical bytes (chunks joined, decompressed), or None when a chunk is
    missing from the topic or the bytes cannot be decoded (``reader``: as for :func:`read_stored`)."""
    stored = await read_stored(settings, entry, reader)
    if stored is None:
        return None
    try:
        return decompress(stored, entry.get("codec"), int(entry["bytes"]))
    except SnapshotError as exc:
        log.warning("snapshot not readable", extra={"offset": entry.get("offset"), "error": exc.message})
        return None


@dataclass
class Loaded:
    """A snapshot loaded for replay: the state at ``offset`` and the chain head there."""

    state: ClusterState
    offset: int
    chain: str
    entry: dict[str, Any]


def is_delta(entry: dict[str, Any]) -> bool:
    return entry.get("kind") == "delta"


class Snapshots:
    """Where replay finds snapshots: ``entries`` (oldest first, each with ``offset``,
    ``chain`` and ``reducer_version``) and ``load`` (the state, or None when unusable)."""

    loads = 0
    #: ``gc.freeze`` after a load (``load_snapshot``); a long-lived reader turns it off
    freeze = True
    #: keep a delta's base loaded (read-only) for the next delta against it, and apply each
    #: delta to a fork of it; a command that reads one point turns it off (:meth:`one_point`)
    hold_bases = True
    #: the base of the last delta loaded: ``(cluster, offset, read-only state)``
    _held_base: tuple[str, int, ClusterState] | None = None

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def index_heads(self, cluster: str, at: str | None = None, *,
                    since: str | None = None) -> AsyncGenerator[touched.Block, None] | None:
        """The touched-entity index's blocks of ``cluster`` without their hashes, the newest first
        (:func:`kmevents.store.touched.heads_newest_first`; ``at``: a point by occurrence's time,
        ``since``: a search's start), or None where no index is kept (archives): what tells a point by
        occurrence where to stop, and a search from a time where to start."""
        return None

    async def host_directory(self, cluster: str, partition: int) -> hosts.Known | None:
        """The workers' host directory of ``cluster`` (kmevents/store/hosts.py: each agent id's host
        changes by offset, as far as the checkpoint of ``partition``), or None where none is kept
        (archives)."""
        return None

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        """The snapshot's canonical bytes (None when they cannot be read)."""
        raise NotImplementedError

    async def state_stream(self, entry: dict[str, Any]) -> IO[bytes] | None:
        """The snapshot's canonical bytes as a stream (see :func:`open_stored`; None when they
        cannot be read). Sources that store them compressed decompress as it is read."""
        data = await self.state_bytes(entry)
        return None if data is None else io.BytesIO(data)

    async def load(self, entry: dict[str, Any]) -> ClusterState | None:
        """The state of a full snapshot or a delta (None when it cannot be read). A delta's
        state is a fork of its held base: fold on from it freely, the base is not touched."""
        if is_delta(entry):
            return await self._load_delta(entry)
        try:
            data = await self.state_stream(entry)
            self.loads += 1
            if data is None:
                return None
            with data:
                return load_snapshot(data, freeze=self.freeze)
        except SnapshotError as exc:
            log.warning("snapshot not loadable: %s", exc, extra={"offset": entry.get("offset")})
            return None

    def one_point(self) -> None:
        """This reader loads one state (a command's single point-in-time read): a delta is
        applied to its base as loaded, neither forked nor held. A fork copies the base's
        indexes and packed tables' maps (~30 MiB at the large profile's 1.5M events) and the
        held base stays beside it: memory for a next read that never comes."""
        self.hold_bases = False

    def drop_held(self) -> None:
        """Let go of the delta base held for the next load (:attr:`hold_bases`): a reader done
        loading (a report, once it found where to start) keeps only what it loaded."""
        self._held_base = None

    async def _load_delta(self, entry: dict[str, Any]) -> ClusterState | None:
        cluster, base_off = str(entry["cluster"]), int(entry["base"])
        if not self.hold_bases:
            # the delta decoded and compacted first: its decoded values never beside the base
            from kmevents.reducer.delta import compact_upserts

            base_entry = await self.base_entry(entry)
            if base_entry is None:
                return None
            doc = await self._delta_document(entry, compact_upserts)
            base = None if doc is None else await self.load(base_entry)
            return None if base is None or doc is None else self._apply(base, doc, entry)
        held = self._held_base
        if held is None or held[0] != cluster or held[1] != base_off:
            base_entry = await self.base_entry(entry)
            if base_entry is None:
                return None
            base = await self.load(base_entry)
            if base is None:
                return None
            self._held_base = held = (cluster, base_off, base.freeze())
        return await self.delta_onto(held[2].fork(), entry)

    async def base_entry(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The index entry of delta ``entry``'s base (a full snapshot), or None (logged)."""
        cluster, base_off = str(entry["cluster"]), int(entry["base"])
        found = next((e for e in await self.entries(cluster) if int(e["offset"]) == base_off and not is_delta(e)), None)
        if found is None:
            log.warning("snapshot delta without its base", extra={"offset": entry.get("offset"), "base": base_off})
        return found

    async def delta_onto(self, base: ClusterState, entry: dict[str, Any]) -> ClusterState | None:
        """The state of delta ``entry``, made from ``base`` (a fork of the state of its base
        snapshot: changed in place and returned); None when the delta cannot be read."""
        doc = await self._delta_document(entry)
        return None if doc is None else self._apply(base, doc, entry)

    async def _delta_document(self, entry: dict[str, Any],
                              then: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """Delta ``entry``'s document (``delta.parse_delta``), passed through ``then``; None
        when it cannot be read or is damaged (logged)."""
        from kmevents.reducer.delta import parse_delta

        data = await self.state_bytes(entry)
        self.loads += 1
        if data is None:
            return None
        try:
            with no_gc():
                doc = parse_delta(data)
                del data  # not held beside its document (up to ~28 MB at the large profile)
                return doc if then is None else then(doc)
        except SnapshotError as exc:
            _delta_not_loadable(exc, entry)
            return None

    @staticmethod
    def _apply(base: ClusterState, doc: dict[str, Any], entry: dict[str, Any]) -> ClusterState | None:
        from kmevents.reducer.delta import apply_delta

        try:
            with no_gc():
                return apply_delta(base, doc)
        except SnapshotError as exc:
            _delta_not_loadable(exc, entry)
            return None

    def holds_base(self, cluster: str, offset: int) -> bool:
        """Whether the full snapshot at ``offset`` is held as a delta's base (a delta against
        it then costs no snapshot load)."""
        h = self._held_base
        return h is not None and h[0] == cluster and h[1] == offset

    async def full_bytes(self, entry: dict[str, Any]) -> bytes | None:
        """The canonical snapshot bytes of the state at ``entry`` (a delta's: rebuilt)."""
        if not is_delta(entry):
            return await self.state_bytes(entry)
        st = await self.load(entry)
        return None if st is None else st.to_snapshot(chain_hash=entry.get("chain"))

    async def best(self, cluster: str, *, at_or_before: int, occurred_bound: str | None = None,
                   after: int | None = None) -> Loaded | None:
        """Newest loadable snapshot with ``offset <= at_or_before`` (and ``> after``, when given: a
        caller whose own fold is at ``after`` gains nothing from one at or before it).

        With ``occurred_bound`` (``--at``, a report's start), also every event in the snapshot
        must have ``occurred_at <= occurred_bound``: its ``max_occurred_at`` only grows with the
        offset, so a binary search over the index finds the newest one. An entry that records
        its state's ``max_occurred_at`` (written since issue 17's report work) is placed without
        loading it; one that does not is loaded to read it (~1-2 s each at the large profile).
        """
        cands = [e for e in await self.entries(cluster)
                 if (after is None or after < int(e["offset"])) and int(e["offset"]) <= at_or_before
                 and int(e.get("reducer_version", REDUCER_VERSION)) == REDUCER_VERSION]
        if occurred_bound is None:
            return await self._newest_loadable(cands)
        lo, hi = 0, len(cands) - 1
        found: tuple[int, ClusterState | None] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            known = cands[mid].get("max_occurred_at")
            st = None
            if not isinstance(known, str):
                st = await self.load(cands[mid])
                if st is None:
                    hi = mid - 1
                    continue
                known = st.max_occurred_at or ""
            if known <= occurred_bound:
                found, lo = (mid, st), mid + 1
            else:
                hi = mid - 1
        if found is None:
            return None
        at, held = found  # (one the index placed may not load: the one before it is within the bound)
        return await self._newest_loadable(cands[:at + 1], held)

    async def _newest_loadable(self, cands: list[dict[str, Any]], held: ClusterState | None = None) -> Loaded | None:
        """The newest of ``cands`` that loads (``held``: the last one's state, loaded already)."""
        for i in range(len(cands) - 1, -1, -1):
            st = held if held is not None and i == len(cands) - 1 else await self.load(cands[i])
            if st is not None:
                return Loaded(st, int(cands[i]["offset"]), str(cands[i]["chain"]), cands[i])
        return None


class SnapshotStore(Snapshots):
    """The processors' snapshots: etcd's index and the snapshots topic. ``client`` is connected."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient, generation: str | None = None,
                 reader_of: Callable[[int], Any] | None = None) -> None:
        """``reader_of(snapshot_partition)``: a kept-open reader of the snapshots topic (optional)."""
        self.settings = settings
        self.client = client
        self.generation = generation
        self.reader_of = reader_of
        self.loads = 0

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        return await index_entries(self.settings, self.client, cluster, self.generation)

    def index_heads(self, cluster: str, at: str | None = None, *,
                    since: str | None = None) -> AsyncGenerator[touched.Block, None] | None:
        from kmevents.store.touched import heads_newest_first

        return heads_newest_first(self.settings, self.client, cluster, self.generation, at=at, since=since,
                                  reader_of=self.reader_of)

    async def host_directory(self, cluster: str, partition: int) -> hosts.Known | None:
        from kmevents.store import hosts

        gen = layout.base_generation(self.generation or layout.live_generation())
        return await hosts.read_known(self.client, f"{self.settings.etcd.prefix}/{gen}", cluster, partition)

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        reader = self.reader_of(int(entry["snapshot_partition"])) if self.reader_of is not None else None
        return await read_bytes(self.settings, entry, reader)

    async def state_stream(self, entry: dict[str, Any]) -> IO[bytes] | None:
        reader = self.reader_of(int(entry["snapshot_partition"])) if self.reader_of is not None else None
        chunks = await read_chunks(self.settings, entry, reader)
        return None if chunks is None else open_stored(chunks, entry.get("codec"))


# -- writing --------------------------------------------------------------------------

class SnapshotWriter:
    """The worker's side: chunks to the snapshots topic, then the index entry in etcd.

    ``producer`` is a started Kafka producer whose requests carry the topic's 8 MiB
    messages; ``client`` a connected etcd client. The index entry is written last, so
    a reader never finds an entry whose chunks are not all in the topic.
    """

    def __init__(self, settings: Settings, producer: Any, client: etcd_adapter.EtcdClient) -> None:
        self.settings = settings
        self.producer = producer
        self.client = client

    async def write(self, *, cluster: str, generation: str, partition: int, offset: int, chain_head: str,
                    state_bytes: bytes, reducer_version: int, base: int | None = None,
                    max_occurred_at: str | None = None) -> dict[str, Any]:
        """Store the canonical ``state_bytes`` of ``cluster`` at ``offset``; returns the index entry.

        ``base``: the bytes are a delta against the full snapshot at that offset.
        ``max_occurred_at``: the state's (its latest event time), recorded in the entry: a reader
        looking for the newest snapshot before a time (:meth:`Snapshots.best`) loads none to find it."""
        return await self.write_stored(cluster=cluster, generation=generation, partition=partition, offset=offset,
                                       chain_head=chain_head, stored=compress(state_bytes), size=len(state_bytes),
                                       reducer_version=reducer_version, base=base, max_occurred_at=max_occurred_at)

    async def write_stored(self, *, cluster: str, generation: str, partition: int, offset: int, chain_head: str,
                           stored: bytes, size: int, reducer_version: int, base: int | None = None,
                           max_occurred_at: str | None = None) -> dict[str, Any]:
        """:meth:`write` of bytes compressed already (``compress``) whose canonical size is ``size``:
        the worker encodes and compresses a snapshot in a child process, and stores it here."""
        # unique to this snapshot (a rebuild into another generation stores the same offsets): the
        # snapshots topic is compacted, and a pruned snapshot's chunks are tombstoned by key
        stem = f"{generation}/{cluster}/{offset}"
        chunk_offsets = await self.send_chunks(stem, stored, partition)
        entry = {"cluster": cluster, "offset": offset, "chain": chain_head, "snapshot_partition": partition,
                 "chunk_offsets": chunk_offsets, "chunk_key": stem, "bytes": size, "reducer_version": reducer_version,
                 "codec": CODEC, "stored_bytes": len(stored), "kind": "full" if base is None else "delta"}
        if base is not None:
            entry["base"] = base
        if max_occurred_at:
            entry["max_occurred_at"] = max_occurred_at
        key = layout.snapshot_index_key(f"{self.settings.etcd.prefix}/{generation}", cluster, offset)
        await self.client.put(key, orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
        return entry


    async def send_chunks(self, stem: str, stored: bytes, partition: int) -> list[int]:
        """``stored`` as 1 MiB chunks keyed ``<stem>/<i>/<n>`` to the snapshots topic's ``partition``;
        their offsets (store/versions.py stores its records so too)."""
        topic = self.settings.kafka.snapshots_topic
        chunks = [stored[i:i + CHUNK_BYTES] for i in range(0, len(stored), CHUNK_BYTES)] or [b""]
        offsets = []
        for i, chunk in enumerate(chunks):
            md = await self.producer.send_and_wait(topic, chunk, key=f"{stem}/{i}/{len(chunks)}".encode(),
                                                   partition=partition)
            offsets.append(md.offset)
        return offsets


def _delta_not_loadable(exc: Exception, entry: dict[str, Any]) -> None:
    """A delta that cannot be read or applied: logged, and the reader takes the snapshot before."""
    log.warning("snapshot delta not loadable: %s", exc, extra={"offset": entry.get("offset")})
