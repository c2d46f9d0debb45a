"""Entity versions per block: what each event of a block of the log left each entity it changed.

``kmevents history KIND/ID`` shows, for every event that touched an entity (and the entities
linked to it), the entity's value right after the event. Without help, each block of the
touched-entity index (store/touched.py) a history needs is folded from a stored state before it:
one state decoded per snapshot interval the history spans (~0.5-0.75 s each at the large
profile), 4.5-4.9 s for a pod whose history spans six (BENCHMARKS.md, "Entity versions per
block"). The worker knows those values as it folds: for each block of the touched-entity index
it closes, it also stores one *versions record* holding, for each applied event, its
annotations, and for each entity an applied event changed, the entity's canonical bytes right
after it (null once gone). History then reads the records of the blocks it needs instead of
folding them (replay/history.py).

Record layout (canonical bytes, stored zstd-compressed as snapshot chunks are)::

    {"cluster":C,"first":F,"format":2,"last":L}\\n
    {"events":[[offset, annotations|null], ...],           (applied events, ascending)
     "values":[[kind, id, [[offset, length|null], ...]], ...]}\\n  (sorted by kind, id; offsets ascending)
    <the values' canonical bytes, back to back, in the order the second line lists them>

The second line is an index of the values, each by its length in the bytes that follow (null:
gone), so a reader decodes the index and slices the values out as bytes: a value is decoded only
when a history asks for it, and whether a value may name a host or a task id is a substring test
on its bytes (``Versions.may_hold``). Format 1 (the values inline in the second line) decoded
every value of a record: 0.28 s of the 33 records an agent's history read at the large profile,
most of them agents whose host name was only compared (BENCHMARKS.md, "Versions records whose
values decode when read"). Format-1 records stay readable.

A fold-failed event is not applied: its dirty marks (what it changed before failing) go with
the next applied event, as history's hook sees them (the touched-index block stays open until
then). An event's dirty set is every entity that has a version at its offset.

Where records live: the chunks in the snapshots topic (compacted; keyed
``<generation>/<cluster>/v<first>/<i>/<n>``, on the partition of the events), and an index
entry in etcd at ``<prefix>/<generation>/_versions/<cluster>/<first:020d>``::

    {"cluster", "first", "last", "snapshot_partition", "chunk_offsets", "chunk_key",
     "bytes", "stored_bytes", "codec", "reducer_version", "kind": "versions"}

The entry is written after the chunks, so an entry always has its record. A block without an
entry (a worker that predates records, a block whose first records a restart re-folded, a
write that failed) is folded by history as before; an entry is used only when its
``first``/``last`` are a touched block's. The values depend on the reducer: a record whose
``reducer_version`` is not this one is not used.

Worked example: block 4000..4999, event 4002 ``pod.upserted ns/a`` (applied, no annotation), the
pod deleted at 4510::

    {"events":[..., [4002, null], ...],
     "values":[..., ["pod", "ns/a", [[4002, 312], [4510, null]]], ...]}
    ...{"name":"a", ...}...      (the pod's 312 bytes after event 4002, where the lengths before it end)

``history pod/ns/a`` takes event 4002's entry from here: its dirty set holds ``pod/ns/a``,
whose value after it is the version at 4002.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from kmevents import layout

if TYPE_CHECKING:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.reducer import ClusterState
    from kmevents.settings import Settings

Key = tuple[str, str]

FORMAT: Final = 2
#: The formats ``decode`` reads (1: every value inline in the second line).
READABLE: Final = frozenset({1, 2})
#: The records' zstd level: a block's record is ~1.6 MB raw at the large profile, ~0.18 MB at
#: level 3 (BENCHMARKS.md, "Entity versions per block").
LEVEL: Final = 3
#: The newest closed blocks whose records the worker may still be storing (it stores a block's
#: record just after the batch that closed it): history waits for them, a backfill leaves them.
PENDING_BLOCKS: Final = 3


class VersionsError(ValueError):
    """A record that cannot be decoded (history then folds its block)."""


class Capture:
    """One cluster's open block of versions, fed after every record the fold took.

    ``event(offset, dirty, state, anns)`` after an applied event, with the dirty set taken right
    after it (``take_dirty()``, totals brought up to date); ``close(first, last)`` gives the
    record's canonical bytes and starts over. ``complete`` is False when the block's first
    records were not seen (a restart re-folded them): such a block gets no record."""

    __slots__ = ("events", "values", "complete", "parts_through", "_mark", "_fresh", "part_keys")

    def __init__(self, complete: bool = True) -> None:
        self.events: list[tuple[int, list[dict[str, Any]] | None]] = []
        self.values: dict[Key, list[tuple[int, bytes | None]]] = {}
        self.complete = complete
        #: the open block's parts written so far (:meth:`part`): the last offset they cover
        #: (None: none yet), the index in ``events`` and the entities changed since, and the
        #: etcd keys they were written at (deleted when the block closes)
        self.parts_through: int | None = None
        self._mark = 0
        self._fresh: set[Key] = set()
        self.part_keys: list[bytes] = []

    def event(self, offset: int, dirty: Iterable[Key], state: ClusterState,
              anns: list[dict[str, Any]] | None = None) -> None:
        self.events.append((offset, anns or None))
        values = self.values
        fresh = self._fresh
        read = state.entity_bytes
        for k in dirty:
            got = values.get(k)
            if got is None:
                got = values[k] = []
            got.append((offset, read(k[0], k[1])))
            fresh.add(k)

    def part(self, cluster: str, first: int, last: int) -> tuple[int, bytes] | None:
        """The open block's record from where its parts so far end (``first``, the block's first
        offset, when there are none) through ``last``: ``(its first offset, its bytes)``, a record
        of the same format (None when not ``complete``, or when the parts cover ``last`` already)."""
        start = first if self.parts_through is None else self.parts_through + 1
        if not self.complete or last < start:
            return None
        since = start - 1
        values = self.values
        part: dict[Key, list[tuple[int, bytes | None]]] = {}
        for k in self._fresh:
            vs = values[k]
            i = len(vs)
            while i and vs[i - 1][0] > since:
                i -= 1
            part[k] = vs[i:]
        out = encode(cluster, start, last, self.events[self._mark:], part)
        self.parts_through, self._mark, self._fresh = last, len(self.events), set()
        return start, out

    def close(self, cluster: str, first: int, last: int) -> bytes | None:
        """The record of the block ``first..last`` (None when not ``complete``); starts over (the
        parts' keys stay in ``part_keys`` for the caller to delete)."""
        out = encode(cluster, first, last, self.events, self.values) if self.complete else None
        self.events, self.values, self.complete = [], {}, True
        self.parts_through, self._mark, self._fresh = None, 0, set()
        return out


class BlockCaptures:
    """The records of given blocks (``(first, last)`` spans in log order, not overlapping; gaps
    between them allowed) captured by one fold that passes through them, as the worker captures
    them: ``event`` after every applied event (as :meth:`Capture.event`), ``close_through(offset)``
    when the fold has reached ``offset - 1``; ``take()`` gives the records closed so far, each as
    ``(its span's index, canonical bytes)``. Used by the backfill (which builds the records) and by
    ``verify --versions`` (which compares them with the stored ones)."""

    __slots__ = ("cluster", "spans", "i", "cap", "made")

    def __init__(self, cluster: str, spans: list[tuple[int, int]]) -> None:
        self.cluster, self.spans, self.i = cluster, spans, 0
        self.cap = Capture()
        self.made: list[tuple[int, bytes]] = []

    def event(self, offset: int, dirty: Iterable[Key], state: ClusterState,
              anns: list[dict[str, Any]] | None = None) -> None:
        self.close_through(offset)
        if self.i < len(self.spans) and self.spans[self.i][0] <= offset:
            self.cap.event(offset, dirty, state, anns)

    def close_through(self, offset: int) -> None:
        """Close every span that ends before ``offset``."""
        spans = self.spans
        while self.i < len(spans) and spans[self.i][1] < offset:
            first, last = spans[self.i]
            raw = self.cap.close(self.cluster, first, last)
            assert raw is not None  # (a Capture made complete stays so)
            self.made.append((self.i, raw))
            self.i += 1

    def take(self) -> list[tuple[int, bytes]]:
        made, self.made = self.made, []
        return made


def encode(cluster: str, first: int, last: int, events: list[tuple[int, Any]],
           values: dict[Key, list[tuple[int, bytes | None]]]) -> bytes:
    """A record's canonical bytes (see the module docstring)."""
    head = orjson.dumps({"cluster": cluster, "first": first, "format": FORMAT, "last": last},
                        option=orjson.OPT_SORT_KEYS)
    blob: list[bytes] = []
    more = blob.extend
    index = []
    for k in sorted(values):  # (comprehensions: ~1/4 less CPU than a loop with appends, same bytes)
        vs = values[k]
        index.append([k[0], k[1], [[o, None if v is None else len(v)] for o, v in vs]])
        more([v for _, v in vs if v is not None])
    body = orjson.dumps({"events": events, "values": index}, option=orjson.OPT_SORT_KEYS)
    return b"".join((head, b"\n", body, b"\n", *blob))


@dataclass
class Versions:
    """A decoded record: the block ``first..last`` of ``cluster``, its applied events' offsets
    with their annotations, and every version by entity as its canonical bytes (None once gone),
    decoded only when asked for (``value_after``)."""

    cluster: str
    first: int
    last: int
    anns: dict[int, list[dict[str, Any]]]
    applied: list[int]
    values: dict[Key, list[tuple[int, bytes | None]]]
    #: offset -> the entities changed by the event there (built by ``dirty_at``)
    _by_offset: dict[int, set[Key]] | None = field(default=None, repr=False, compare=False)
    #: the versions decoded so far, by entity and offset (each is decoded once; callers share it)
    _decoded: dict[tuple[Key, int], Any] = field(default_factory=dict, repr=False, compare=False)

    def dirty_at(self, offset: int) -> set[Key]:
        """The entities the applied event at ``offset`` changed (its dirty set)."""
        if self._by_offset is None:
            by: dict[int, set[Key]] = {}
            for k, vs in self.values.items():
                for o, _ in vs:
                    s = by.get(o)
                    if s is None:
                        s = by[o] = set()
                    s.add(k)
            self._by_offset = by
        return self._by_offset.get(offset, set())

    def _last_at(self, key: Key, offset: int) -> tuple[int, bytes | None] | None:
        """``key``'s last version at or before ``offset`` in this block, None when there is none."""
        vs = self.values.get(key)
        out = None
        for ov in vs or ():
            if ov[0] > offset:
                break
            out = ov
        return out

    def raw_after(self, key: Key, offset: int) -> tuple[bool, bytes | None]:
        """``(True, bytes)`` of ``key``'s last version at or before ``offset`` in this block
        (None: gone), ``(False, None)`` when the block changed it only later or never."""
        got = self._last_at(key, offset)
        return (False, None) if got is None else (True, got[1])

    def value_after(self, key: Key, offset: int) -> tuple[bool, Any]:
        """As :meth:`raw_after`, the value decoded (once: every call returns the same object)."""
        got = self._last_at(key, offset)
        if got is None:
            return False, None
        o, raw = got
        if raw is None:
            return True, None
        memo = self._decoded
        v = memo.get((key, o))
        if v is None:
            v = memo[(key, o)] = orjson.loads(raw)
        return True, v

    @staticmethod
    def may_hold(raw: bytes | None, needles: Iterable[bytes]) -> bool:
        """False when the value ``raw`` holds none of ``needles`` (strings as ``orjson.dumps`` of
        them): then no field of it equals one of those strings, and it need not be decoded."""
        return raw is not None and any(n in raw for n in needles)


def decode(data: bytes) -> Versions:
    """The record of ``encode``'s bytes (or of format 1's); raises :class:`VersionsError` when they
    are damaged."""
    nl = data.find(b"\n")
    try:
        head = orjson.loads(data[:nl]) if nl > 0 else None
        if type(head) is not dict or head.get("format") not in READABLE:
            raise VersionsError("not a versions record of format 1 or 2")
        if head["format"] == 1:
            body = orjson.loads(memoryview(data)[nl + 1:])
            dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
            values: dict[Key, list[tuple[int, bytes | None]]] = {
                (str(kind), str(id)): [(int(o), None if v is None else dumps(v, option=sort)) for o, v in vs]
                for kind, id, vs in body["values"]}
        else:
            nl2 = data.index(b"\n", nl + 1)
            body = orjson.loads(memoryview(data)[nl + 1:nl2])
            pos = nl2 + 1
            values = {}
            for kind, id, vs in body["values"]:
                got: list[tuple[int, bytes | None]] = []
                for o, n in vs:
                    if n is None:
                        got.append((int(o), None))
                    else:
                        end = pos + int(n)
                        got.append((int(o), data[pos:end]))
                        pos = end
                values[(str(kind), str(id))] = got
            if pos != len(data):
                raise VersionsError(f"damaged versions record: its values end at byte {pos} of {len(data)}")
        anns: dict[int, list[dict[str, Any]]] = {}
        applied = []
        for o, a in body["events"]:
            applied.append(int(o))
            if a:
                anns[int(o)] = a
        return Versions(str(head["cluster"]), int(head["first"]), int(head["last"]), anns, applied, values)
    except VersionsError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise VersionsError(f"damaged versions record: {exc}") from None


def joined(cluster: str, parts: list[Versions], first: int, last: int) -> Versions | None:
    """The open block ``first..last`` from its parts (ascending): None unless they follow each
    other from ``first`` through ``last`` at least (what they hold past ``last`` is left out)."""
    pos = first
    anns: dict[int, list[dict[str, Any]]] = {}
    applied: list[int] = []
    values: dict[Key, list[tuple[int, bytes | None]]] = {}
    for p in parts:
        if pos > last:
            break
        if p.first != pos:
            return None
        applied.extend(o for o in p.applied if o <= last)
        anns.update((o, a) for o, a in p.anns.items() if o <= last)
        for k, vs in p.values.items():
            keep = [(o, v) for o, v in vs if o <= last]
            if keep:
                got = values.get(k)
                if got is None:
                    values[k] = keep
                else:
                    got.extend(keep)
        pos = p.last + 1
    if pos <= last:
        return None
    return Versions(cluster, first, last, anns, applied, values)


# -- the store -------------------------------------------------------------------------

async def write(writer: Any, *, cluster: str, generation: str, partition: int, first: int, last: int,
                stored: bytes, size: int, reducer_version: int) -> dict[str, Any]:
    """Store a record compressed already (``snapshots.compress(raw, LEVEL)``, ``size`` its raw
    length) through the worker's :class:`~kmevents.store.snapshots.SnapshotWriter`: chunks to the
    snapshots topic, then the index entry in etcd; returns the entry."""
    from kmevents.store.snapshots import CODEC

    stem = f"{generation}/{cluster}/v{first}"
    chunk_offsets = await writer.send_chunks(stem, stored, partition)
    entry = {"cluster": cluster, "first": first, "last": last, "snapshot_partition": partition,
             "chunk_offsets": chunk_offsets, "chunk_key": stem, "bytes": size, "stored_bytes": len(stored),
             "codec": CODEC, "reducer_version": reducer_version, "kind": "versions"}
    key = layout.versions_index_key(f"{writer.settings.etcd.prefix}/{generation}", cluster, first)
    await writer.client.put(key, orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
    return entry


async def read_entries(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                       generation: str | None = None, *, after: int = -1) -> dict[tuple[int, int], dict[str, Any]]:
    """The cluster's index entries by ``(first, last)`` (those of other reducer versions left out);
    ``after``: only those of blocks whose first offset is past it."""
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.reducer import REDUCER_VERSION

    gen = generation or layout.live_generation()
    prefix = layout.versions_index_prefix(f"{settings.etcd.prefix}/{gen}", cluster)
    start = prefix if after < 0 else layout.versions_index_key(f"{settings.etcd.prefix}/{gen}", cluster, after + 1)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    async for _, kvs in etcd_adapter.range_pages(client, start, etcd_adapter.prefix_end(prefix), page=500):
        for kv in kvs:
            try:
                e = orjson.loads(kv.value)
                if int(e.get("reducer_version", -1)) == REDUCER_VERSION:
                    out[(int(e["first"]), int(e["last"]))] = e
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # the block is folded instead
    return out


async def read_open(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str, first: int, last: int,
                    generation: str | None = None) -> Versions | None:
    """The worker's open block ``first..last`` as one record, joined from the parts its live
    batches wrote (``Capture.part``); None when they do not cover it (a batch that was not live,
    a restart) or cannot be read."""
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.store.snapshots import SnapshotError, decompress

    gen = generation or layout.live_generation()
    prefix = layout.versions_open_prefix(f"{settings.etcd.prefix}/{gen}", cluster, first)
    parts: list[Versions] = []
    async for _, kvs in etcd_adapter.range_pages(client, prefix, etcd_adapter.prefix_end(prefix), page=1000):
        for kv in kvs:
            try:
                parts.append(decode(decompress(kv.value, "zstd", 0)))
            except (VersionsError, SnapshotError):
                return None
    parts.sort(key=lambda p: p.first)
    return joined(cluster, parts, first, last)


async def read(settings: Settings, entry: dict[str, Any], reader: Any = None) -> Versions | None:
    """The record of ``entry`` decoded, or None when its chunks are missing or damaged."""
    from kmevents.store.snapshots import read_bytes

    data = await read_bytes(settings, entry, reader)
    if data is None:
        return None
    try:
        return decode(data)
    except VersionsError:
        return None


__all__ = ["FORMAT", "LEVEL", "PENDING_BLOCKS", "READABLE", "Capture", "Versions", "VersionsError", "decode", "encode", "joined", "read",
           "read_entries", "read_open", "write"]
