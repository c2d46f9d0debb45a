"""The touched-entity index: which blocks of a cluster's log touched which entities.

``kmevents history KIND/ID`` needs every event that touched an entity (and the
entities linked to it). Without help that is a fold of the whole log. The worker
records, per *block* of about ``BLOCK_EVENTS`` events of a cluster, a set of 64-bit
hashes of what the block's events touched, and writes it in the same etcd
transaction as the checkpoint that passes the block's last offset, at
``<prefix>/<generation>/_touched/<cluster>/<first:020d>``. History then folds only
the blocks whose set holds one of its needles, each from the nearest snapshot
before it (replay/history.py).

What a block's set holds (``needle_*`` build the same hashes on the reading side):

- ``key(kind, id)`` of every entity the reducer marked dirty (``take_dirty``) for an
  event of the block, removed ones included;
- ``name(kind, value)`` of the ``NAME_FIELDS`` of each such entity still in the state
  at the flush that collected it (``agent/HOST``, ``pod/NAME``), and of the ids' own
  tails after a ``/`` for entities gone by then (a pod's name, a task's id);
- ``corr(id)`` of each applied event's ``correlation_id``.

A hash may collide (a block folded for nothing, ~n/2^64); the set never misses: the
reading side folds a matching block with the very hook of the full scan, so a
false positive costs time only. Kinds whose dirty marks depend on when the state is
read (``role``: its totals are materialised once per flush) are not served.

Value layout (``encode``/``decode``)::

    b"KMT1" | u32 header length | header JSON | zstd(sorted unique u64, little-endian)

with the header ``{"first", "last", "events", "max_occurred_at", "min_occurred_at", "latest_occurred_at",
"count"}``:
the block covers offsets ``first..last`` of the partition (other clusters' records may sit in
between); ``max_occurred_at`` is the largest string ``occurred_at`` of its applied events
(history's "held for ... by the end of the log"); ``min_occurred_at`` the smallest of every event
of the block that decoded, applied or fold-failed (null: none had a time). A read by occurrence
(``state --at T``, a report followed to T, a search to T) must read on for late arrivals; a block
whose ``min_occurred_at`` is after T holds none, so the read stops after the last block that may
(``Block.may_hold_by``, replay/occurrence.py). Blocks written before the field existed do not say
(``Block.timed`` False): a read goes through them. ``latest_occurred_at`` is the latest time of the
same events: a search from a time T (``kmevents search --since 5m``) starts at the first block that
may hold an event at or after T (``Block.may_hold_from``), not at the log's first record.

The open block: with every batch that changed a cluster, the worker also writes the block it has
not closed yet, as far as that batch, at ``<prefix>/<generation>/_touched_open/<cluster>`` (one key,
overwritten; same layout). History treats it as the block after the last closed one (when it
follows it), so the records past the last closed block are folded only when they touched what
it looks for: without it, every history folded them, from a whole state (~1 s at the large
profile).

Groups: closed blocks do not stay in etcd. A block is ~24 KB at the large profile, ~25 bytes an
event of the log: at that cluster's 270 events/s, ~570 MB a day, which would fill etcd's quota
(4 GiB as kmevents starts it) in about a week and pass the live state's own size within a day.
So the worker moves the oldest closed blocks, ``GROUP_BLOCKS`` at a time, into the snapshots topic
once more than ``KEEP_BLOCKS + GROUP_BLOCKS`` of a cluster are in etcd (:func:`group_oldest`):
their values packed back to back (``pack_group``) as chunks, then in one etcd transaction a *group
entry* at ``<prefix>/<generation>/_touched_groups/<cluster>/<first:020d>``::

    {"cluster", "first", "last", "blocks", "snapshot_partition", "chunk_offsets", "chunk_key",
     "bytes", "stored_bytes", "codec": "none", "kind": "touched", "min_occurred_at"}

(``min_occurred_at``/``latest_occurred_at``: the earliest/latest of its blocks', when all of them say
theirs) is written and the
blocks' keys deleted (only if no entry is there yet: a fenced worker and its successor cannot both
group them). A reader (:func:`read_blocks`) reads the group entries and the blocks left at one etcd
revision, and a group's blocks from its chunks: the same blocks as before they moved. A group whose
chunks cannot be read reads as a range with no index (history folds it: slower, never wrong). Etcd
then holds ~``KEEP_BLOCKS`` blocks and an entry per ``GROUP_BLOCKS`` blocks (~300 bytes a 256,000
events), whatever the log's length.

A worker that takes a partition (a start, a rebalance, a retake after fencing) resumes
each cluster's open block from the end of the last closed one (``last_closed``): it
re-folds the block's records up to the checkpoint from a full snapshot before them,
feeding their dirty sets to the block and writing nothing else, so blocks tile the log
(processors/derive.py, ``restore_ceiling``).

Worked example: block ``{first 4000, last 4999}`` holds key(pod, ns/a),
name(pod, a), corr(uid-a); ``history pod/ns/a`` folds 4000..4999 from the delta
at 4000 (or the snapshot before it), ``history pod/ns/b`` skips the block.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import struct
import sys
from array import array
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from kmevents import layout
from kmevents.store import touched_runs

if TYPE_CHECKING:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.settings import Settings

MAGIC: Final = b"KMT1"
#: Events of a cluster per block (about one delta interval's quarter: a block costs one
#: etcd key of ~5-20 KB, and history folds at most this many events past the snapshot it
#: starts from for each block it needs).
BLOCK_EVENTS: Final = 1_000
#: Closed blocks moved into the snapshots topic at once (one group entry in etcd each), and the
#: newest closed blocks of a cluster left in etcd (a restart resumes from the last one:
#: ``last_closed`` reads etcd's greatest keys).
GROUP_BLOCKS: Final = 256
KEEP_BLOCKS: Final = 64
GROUP_MAGIC: Final = b"KMG1"
#: Fields of an entity's value that name it the way people do (``agent/HOST``, ``pod/NAME``);
#: the same as replay/history.py's ``NAME_FIELDS``.
NAME_FIELDS: Final = ("hostname", "name", "task_id")
#: Kinds a block's set does not serve exactly (see the module docstring).
UNSERVED_KINDS: Final = frozenset({"role"})


def _h(tag: bytes, *parts: str) -> int:
    """blake2b-64 of ``tag`` and each part length-prefixed: ("a\0b", "c") and ("a", "b\0c")
    hash apart. The worker hashes about three per event: ``key``/``name``/``corr`` hash the
    same bytes, from a copy of a hash that has the tag and kind already
    (tests/unit/processors/test_touched_hashes.py)."""
    h = hashlib.blake2b(tag, digest_size=8)
    for p in parts:
        b = p.encode()
        h.update(len(b).to_bytes(4, "little") + b)
    d = h.digest()
    return int.from_bytes(d, "little")


_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes
_u32 = struct.Struct("<I").pack
#: a blake2b-64 that has hashed ``tag + len(kind) + kind``, for each (tag, kind) seen (kinds are
#: few): a hash copies it and adds its part, the bytes ``_h`` hashes in one piece
_heads: dict[tuple[bytes, str], Any] = {}
_CORR = _blake2b(b"c\0", digest_size=8)


def _head(tag: bytes, kind: str) -> Any:
    b = kind.encode()
    got = _heads[(tag, kind)] = _blake2b(tag + _u32(len(b)) + b, digest_size=8)
    return got


# No cache of the hashes: the ids and names of a flush are mostly new to a cache of the last
# 65,536 (hit rates 54 % and 46 % at the large profile), and a miss cost more than a hash.
def _h2(tag: bytes, kind: str, part: str) -> int:
    h = (_heads.get((tag, kind)) or _head(tag, kind)).copy()
    b = part.encode()
    h.update(_u32(len(b)) + b)
    return _from_bytes(h.digest(), "little")


def key(kind: str, id: str) -> int:
    return _h2(b"k\0", kind, id)


def name(kind: str, value: str) -> int:
    return _h2(b"n\0", kind, value)


def corr(cid: str) -> int:
    h = _CORR.copy()
    b = cid.encode()
    h.update(_u32(len(b)) + b)
    return _from_bytes(h.digest(), "little")


def id_tails(id: str) -> list[str]:
    """What ``id`` may be called by its tails after a ``/`` (``ns/name`` -> ``name``)."""
    out = []
    i = id.find("/")
    while i >= 0:
        out.append(id[i + 1:])
        i = id.find("/", i + 1)
    return out


def entity_hashes(kind: str, id: str, value: dict[str, Any] | None) -> list[int]:
    """The hashes one dirty entity adds to its block (see the module docstring)."""
    out = [key(kind, id)]
    if value is None:
        out.extend(name(kind, t) for t in id_tails(id))
    elif kind not in ("offer", "inverse_offer"):
        for f in NAME_FIELDS:
            v = value.get(f)
            if type(v) is str:
                out.append(name(kind, v))
    return out


@dataclass
class Block:
    """One block of the index: offsets ``first..last`` and the sorted hashes it holds."""

    first: int
    last: int
    events: int = 0
    max_occurred_at: str | None = None
    hashes: array = field(default_factory=lambda: array("Q"))
    #: the earliest ``occurred_at`` of the block's decoded events (None: none had one), when
    #: ``timed`` (the header says it; blocks written before it existed do not)
    min_occurred_at: str | None = None
    timed: bool = False
    #: the latest ``occurred_at`` of the same events, when ``timed_latest``
    latest_occurred_at: str | None = None
    timed_latest: bool = False

    def holds(self, needle: int) -> bool:
        h = self.hashes
        i = bisect.bisect_left(h, needle)
        return i < len(h) and h[i] == needle

    def holds_any(self, needles: Iterable[int]) -> bool:
        return any(self.holds(n) for n in needles)

    def may_hold_by(self, at: str) -> bool:
        """Whether an event of the block may have occurred at or before ``at`` (a canonical
        time): True unless the block's earliest time is known and later."""
        return not self.timed or (self.min_occurred_at is not None and self.min_occurred_at <= at)

    def may_hold_from(self, since: str) -> bool:
        """Whether an event of the block may have occurred at or after ``since`` (a canonical time):
        True unless the block's latest time is known and earlier (or none of its events had one)."""
        return not self.timed_latest or (self.latest_occurred_at is not None and self.latest_occurred_at >= since)


#: ``encode``'s ``min_occurred_at`` when the caller does not know it: the header leaves it out
UNTIMED: Final = object()


def encode(first: int, last: int, events: int, max_occurred_at: str | None, hashes: Iterable[int], *,
           min_occurred_at: Any = UNTIMED, latest_occurred_at: Any = UNTIMED) -> bytes:
    from kmevents.store.snapshots import compress

    arr = array("Q", sorted(set(hashes)))
    if arr.itemsize != 8:  # pragma: no cover - every platform kmevents runs on
        raise RuntimeError("array('Q') is not 64-bit here")
    raw = arr.tobytes() if sys.byteorder == "little" else _swapped(arr)
    fields = {"first": first, "last": last, "events": events, "max_occurred_at": max_occurred_at, "count": len(arr)}
    if min_occurred_at is not UNTIMED:
        fields["min_occurred_at"] = min_occurred_at
    if latest_occurred_at is not UNTIMED:
        fields["latest_occurred_at"] = latest_occurred_at
    head = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return MAGIC + struct.pack("<I", len(head)) + head + compress(raw, 3)


def _swapped(arr: array) -> bytes:  # pragma: no cover - big-endian hosts only
    b = array("Q", arr)
    b.byteswap()
    return b.tobytes()


class IndexError_(ValueError):
    """A stored block that cannot be decoded (the reader then treats its range as not indexed)."""


def _head_of(data: bytes) -> tuple[dict[str, Any], int]:
    """The block's header and where its hashes start; raises :class:`IndexError_` when damaged."""
    if data[:4] != MAGIC or len(data) < 8:
        raise IndexError_("not a touched-index block (magic)")
    (n,) = struct.unpack("<I", data[4:8])
    try:
        head = orjson.loads(data[8:8 + n])
        int(head["first"]), int(head["last"]), int(head["count"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise IndexError_(f"damaged touched-index block: {exc}") from None
    if not isinstance(head, dict):  # pragma: no cover - int() of a key raised already
        raise IndexError_("damaged touched-index block: header")
    return head, 8 + n


def _block(head: dict[str, Any], hashes: array) -> Block:
    occ, latest = head.get("min_occurred_at"), head.get("latest_occurred_at")
    return Block(int(head["first"]), int(head["last"]), int(head.get("events") or 0), head.get("max_occurred_at"),
                 hashes, min_occurred_at=occ if type(occ) is str else None, timed="min_occurred_at" in head,
                 latest_occurred_at=latest if type(latest) is str else None, timed_latest="latest_occurred_at" in head)


def decode_head(data: bytes) -> Block:
    """The block of ``encode``'s bytes without its hashes (what a point by occurrence reads: its
    offsets and times); raises :class:`IndexError_` when its header is damaged."""
    head, _ = _head_of(data)
    return _block(head, array("Q"))


def decode(data: bytes) -> Block:
    """The block of ``encode``'s bytes; raises :class:`IndexError_` when they are damaged."""
    from kmevents.reducer import SnapshotError
    from kmevents.store.snapshots import decompress

    head, at = _head_of(data)
    try:
        count = int(head["count"])
        raw = decompress(data[at:], "zstd", count * 8)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, SnapshotError) as exc:
        raise IndexError_(f"damaged touched-index block: {exc}") from None
    arr = array("Q")
    arr.frombytes(raw)
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    if len(arr) != count:
        raise IndexError_(f"damaged touched-index block: {len(arr)} hashes, header says {count}")
    return _block(head, arr)


class Accumulator:
    """The worker's open block of one cluster (processors/derive.py feeds it)."""

    __slots__ = ("first", "events", "max_occurred_at", "min_occurred_at", "latest_occurred_at", "hashes",
                 "failed_pending")

    def __init__(self) -> None:
        #: the block's first offset: the offset after the previous block's last once one closed
        #: (the records in between are other clusters'), else the first record seen
        self.first = -1
        self.events = 0
        self.max_occurred_at: str | None = None
        #: the earliest time of every decoded event (applied or not): what a point by occurrence
        #: may have to fold of the block
        self.min_occurred_at: str | None = None
        #: the latest time of the same events: where a search from a time may start
        self.latest_occurred_at: str | None = None
        self.hashes: set[int] = set()
        #: a fold-failed event since the last applied one: its dirty marks reach history's
        #: hook with the next applied event, so the block stays open until then
        self.failed_pending = False

    def event(self, offset: int, ev: dict[str, Any] | None, *, applied: bool, failed: bool = False) -> None:
        """One record of the cluster: applied, fold-failed, or neither (undecodable); ``ev`` its
        event when it decoded."""
        if self.first < 0:
            self.first = offset
        self.events += 1
        if ev is not None:
            occ = ev.get("occurred_at")
            if type(occ) is str:
                if self.min_occurred_at is None or occ < self.min_occurred_at:
                    self.min_occurred_at = occ
                if self.latest_occurred_at is None or occ > self.latest_occurred_at:
                    self.latest_occurred_at = occ
        if failed:
            self.failed_pending = True
            return
        if not applied:
            return
        self.failed_pending = False
        if ev is None:
            return
        occ = ev.get("occurred_at")
        if type(occ) is str and (self.max_occurred_at is None or occ > self.max_occurred_at):
            self.max_occurred_at = occ
        c = ev.get("correlation_id")
        if type(c) is str:
            self.hashes.add(corr(c))

    def due(self, every: int) -> bool:
        return self.events >= every and not self.failed_pending

    def encode_through(self, last: int) -> bytes:
        """The block so far, through ``last`` (the worker's last folded offset): a closed block's
        value, or the open block's (what history reads of the records past the last closed one)."""
        return encode(self.first, last, self.events, self.max_occurred_at, self.hashes,
                      min_occurred_at=self.min_occurred_at, latest_occurred_at=self.latest_occurred_at)

    def close(self, last: int) -> tuple[int, bytes]:
        """``(first offset, value)`` of the block through ``last``; the accumulator starts over."""
        out = self.first, self.encode_through(last)
        self.first, self.events, self.max_occurred_at, self.hashes = last + 1, 0, None, set()
        self.min_occurred_at = self.latest_occurred_at = None
        return out


def pack_group(values: list[bytes]) -> bytes:
    """Blocks' values (``encode``'s bytes) as one group's bytes: ``GROUP_MAGIC``, then each value
    after its u32 length (little-endian)."""
    return b"".join([GROUP_MAGIC, *(struct.pack("<I", len(v)) + v for v in values)])


def unpack_group(data: bytes) -> list[bytes]:
    """The blocks' values of ``pack_group``'s bytes; raises :class:`IndexError_` when they are damaged."""
    if not data.startswith(GROUP_MAGIC):
        raise IndexError_("not a group of touched-index blocks")
    out, pos = [], len(GROUP_MAGIC)
    while pos < len(data):
        if pos + 4 > len(data):
            raise IndexError_("damaged group of touched-index blocks: cut in a length")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + n > len(data):
            raise IndexError_("damaged group of touched-index blocks: cut in a block")
        out.append(data[pos:pos + n])
        pos += n
    return out


@dataclass(eq=False)
class Span(Block):
    """A group of blocks a history from a command has not read (:class:`Spans`): it answers ``holds``
    with False and notes the needle, which :meth:`Spans.expand` then looks up in the runs."""

    asked: set[int] = field(default_factory=set)

    def holds(self, needle: int) -> bool:
        self.asked.add(needle)
        return False


@dataclass
class Spans:
    """What :func:`read_blocks` left unread of the groups the hash -> groups runs cover
    (store/touched_runs.py): their entries by first offset and the runs' lookup; ``read``: the groups
    read since because a needle asked of them is one of theirs."""

    settings: Any = None
    reader_of: Any = None
    #: readers of small fetches for the runs' parts (None: ``reader_of``'s)
    part_reader_of: Any = None
    lookup: touched_runs.Lookup | None = None
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    read: int = 0

    async def expand(self, blocks: list[Block], needles: Iterable[int] = ()) -> list[Block] | None:
        """``blocks`` with each :class:`Span` that holds a needle asked of it (or one of ``needles``)
        replaced by its group's blocks (dropped when they cannot be read: its range is then not
        indexed); None when none does."""
        spans = [b for b in blocks if isinstance(b, Span)]
        extra = set(needles)
        if not spans or self.lookup is None:
            return None
        asked = set(extra).union(*(s.asked for s in spans))
        await self.lookup.groups_holding(asked)
        due = [s for s in spans if any(s.first in self.lookup.holders(n) for n in s.asked | extra)]
        if not due:
            return None
        out = [b for b in blocks if b not in due]
        for s in due:
            self.read += 1
            out.extend(await _group_blocks(self.settings, self.entries[s.first], self.reader_of))
        return sorted(out, key=lambda b: b.first)


async def _group_blocks(settings: Settings, e: dict[str, Any], reader_of: Any) -> list[Block]:
    """A group's blocks from its chunks (a damaged one left out; none when its chunks cannot be read:
    its range reads as not indexed)."""
    import logging

    from kmevents.store.snapshots import read_bytes

    logger = logging.getLogger("kmevents.store.touched")
    reader = reader_of(int(e["snapshot_partition"])) if reader_of is not None else None
    try:
        data = await read_bytes(settings, e, reader)
        if data is None:
            raise IndexError_("its chunks are missing from the snapshots topic")
        values = unpack_group(data)
    except Exception as exc:  # noqa: BLE001 - (offsets gone from the topic, damaged bytes): folded instead
        logger.warning("touched-index group not readable: its range reads as not indexed", extra={
            "cluster": e.get("cluster"), "first": e.get("first"), "last": e.get("last"), "error": str(exc)})
        return []
    out = []
    for v in values:
        try:
            out.append(decode(v))
        except IndexError_ as exc:
            logger.warning("%s", exc, extra={"key": f"group {e.get('first')}"})
    return out


def _entry_times(e: dict[str, Any]) -> dict[str, Any]:
    """What a group's entry says of its blocks' times, as :class:`Block` fields (a time that is not a
    string, or not there, says nothing)."""
    occ, latest = e.get("min_occurred_at"), e.get("latest_occurred_at")
    return {"min_occurred_at": occ if type(occ) is str else None,
            "timed": "min_occurred_at" in e and (occ is None or type(occ) is str),
            "latest_occurred_at": latest if type(latest) is str else None,
            "timed_latest": "latest_occurred_at" in e and (latest is None or type(latest) is str)}


def _span_of(e: dict[str, Any]) -> Span:
    mx = e.get("max_occurred_at")
    return Span(int(e["first"]), int(e["last"]), 0, mx if type(mx) is str else None, **_entry_times(e))


async def _group_kvs(client: etcd_adapter.EtcdClient, gen_prefix: str, cluster: str) -> tuple[int, list[Any]]:
    """The etcd revision now and the cluster's group entries' key-values there, by first offset."""
    from kmevents.adapters import etcd as etcd_adapter

    gprefix = layout.touched_group_prefix(gen_prefix, cluster)
    rev, _ = await etcd_adapter.range_at(client, gprefix, range_end=etcd_adapter.prefix_end(gprefix), limit=1)
    kvs = []
    async for _, page in etcd_adapter.range_pages(client, gprefix, etcd_adapter.prefix_end(gprefix), page=500,
                                                  revision=rev):
        kvs.extend(page)
    return rev, kvs


async def read_blocks(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                      generation: str | None = None, *, after: int = -1, reader_of: Any = None,
                      spans: Spans | None = None) -> list[Block]:
    """The cluster's blocks, by first offset, those in groups included (damaged ones and groups whose
    chunks cannot be read left out: their range reads as not indexed); ``after``: only those whose
    first offset is past it; ``reader_of``: a kept-open reader of the snapshots topic by partition
    (the API's), else each group's chunks are read by a consumer of their own.

    ``spans``: a group that a hash -> groups run covers (and whose entry says its blocks' latest
    applied time) is not read: it comes as a :class:`Span`, and ``spans`` gets its entry and the runs'
    lookup, to read it when a needle asked of it is one of its hashes (:meth:`Spans.expand`)."""
    import logging

    from kmevents.adapters import etcd as etcd_adapter

    logger = logging.getLogger("kmevents.store.touched")
    gen_prefix = f"{settings.etcd.prefix}/{layout.live_generation() if generation is None else generation}"
    # the groups and the blocks left in etcd at one revision: a grouping in between moves blocks
    # from one to the other in one transaction, so each block is read once, from one or the other
    rev, group_kvs = await _group_kvs(client, gen_prefix, cluster)
    groups = []
    for kv in group_kvs:
        try:
            e = orjson.loads(kv.value)
            if int(e["last"]) > after:
                groups.append(e)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("damaged group entry of the touched-entity index", extra={"key": kv.key.decode()})
    prefix = layout.touched_index_prefix(gen_prefix, cluster)
    start = prefix if after < 0 else layout.touched_index_key(gen_prefix, cluster, after + 1)
    values: list[tuple[bytes, str]] = []
    async for _, kvs in etcd_adapter.range_pages(client, start, etcd_adapter.prefix_end(prefix), page=500,
                                                 revision=rev):
        values.extend((kv.value, kv.key.decode()) for kv in kvs)
    out: list[Block] = []
    if spans is not None:
        runs = await touched_runs.read_runs(client, gen_prefix, cluster, rev)
        spans.settings, spans.reader_of = settings, reader_of
        spans.lookup = touched_runs.Lookup(settings, runs, spans.part_reader_of or reader_of)
        covered = spans.lookup.covered()
        whole = []
        for e in groups:
            if int(e["first"]) in covered and "max_occurred_at" in e:
                spans.entries[int(e["first"])] = e
                out.append(_span_of(e))
            else:
                whole.append(e)
        groups = whole
    for e in groups:
        out.extend(b for b in await _group_blocks(settings, e, reader_of) if b.first > after)
    for value, where in values:
        try:
            b = decode(value)
        except IndexError_ as exc:
            logger.warning("%s", exc, extra={"key": where})
            continue
        if b.first > after:
            out.append(b)
    return sorted(out, key=lambda b: b.first)


#: Closed blocks read from etcd at a time by :func:`heads_newest_first` (~24 KB each at the large profile)
HEADS_PAGE: Final = 32


async def heads_newest_first(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                             generation: str | None = None, *, at: str | None = None, since: str | None = None,
                             reader_of: Any = None) -> AsyncGenerator[Block, None]:
    """The cluster's blocks without their hashes (:func:`decode_head`), the last one first: the open
    block when it follows the closed ones, the closed ones left in etcd, then the groups' (all read
    at one etcd revision; a caller stops when it has what it needs, so the old ones are seldom read).

    ``at``: the time a point by occurrence is read at; ``since``: the time a search starts from. A group
    whose entry's times decide the walk there comes as one block spanning it, its blocks not read
    (:func:`_span_decides`). A group whose chunks cannot be read comes as one untimed block (its records
    may hold anything). A damaged block is left out: the walk sees
    a hole there (replay/occurrence.py reads holes)."""
    from kmevents.adapters import etcd as etcd_adapter

    gen_prefix = f"{settings.etcd.prefix}/{layout.live_generation() if generation is None else generation}"
    rev, opened = await _open_head(client, gen_prefix, cluster)
    prefix = layout.touched_index_prefix(gen_prefix, cluster)
    end = etcd_adapter.prefix_end(prefix)
    newest: int | None = None  # the last offset of the newest closed block seen
    while True:
        _, kvs = await etcd_adapter.range_at(client, prefix, range_end=end, revision=rev, limit=HEADS_PAGE,
                                             descending=True)
        for kv in kvs:
            try:
                b = decode_head(kv.value)
            except IndexError_:
                continue
            if newest is None:
                newest = b.last
                if opened is not None and opened.first == b.last + 1:
                    yield opened  # (else stale: a block closed after it was written)
                opened = None
            yield b
        if len(kvs) < HEADS_PAGE:
            break
        end = kvs[-1].key
    entries = await _group_entries(client, gen_prefix, cluster, rev)
    if opened is not None and newest is None and not entries:
        yield opened  # the cluster's first block, not closed yet
    for e in reversed(entries):
        span = Block(int(e["first"]), int(e["last"]), **_entry_times(e))
        if _span_decides(span, at, since):
            yield span
            continue
        for b in reversed(await _group_heads(settings, e, reader_of)):
            yield b


def _span_decides(span: Block, at: str | None, since: str | None) -> bool:
    """Whether a group's entry alone (``span``: one block spanning it) answers the walk, so its blocks
    need not be read: for a point by occurrence at ``at``, none of its events happened by then, or all
    did (its newest block ends the read either way); for a search from ``since``, none happened at or
    after it, or all did (its first block is passed either way)."""
    lo, hi = span.min_occurred_at, span.latest_occurred_at
    if at is not None:
        return not span.may_hold_by(at) or (span.timed_latest and hi is not None and hi <= at)
    if since is not None:
        return not span.may_hold_from(since) or (span.timed and lo is not None and lo >= since)
    return False


async def _open_head(client: etcd_adapter.EtcdClient, gen_prefix: str, cluster: str) -> tuple[int, Block | None]:
    """The etcd revision the heads are read at, and the open block's head there (None: none, damaged,
    or empty)."""
    from kmevents.adapters import etcd as etcd_adapter

    rev, kvs = await etcd_adapter.range_at(client, layout.touched_open_key(gen_prefix, cluster))
    with contextlib.suppress(IndexError_):
        b = decode_head(kvs[0].value) if kvs else None
        if b is not None and b.last >= b.first:
            return rev, b
    return rev, None


async def _group_entries(client: etcd_adapter.EtcdClient, gen_prefix: str, cluster: str,
                         rev: int) -> list[dict[str, Any]]:
    """The cluster's group entries at ``rev``, by first offset (damaged ones left out: holes)."""
    from kmevents.adapters import etcd as etcd_adapter

    gprefix = layout.touched_group_prefix(gen_prefix, cluster)
    entries = []
    async for _, kvs in etcd_adapter.range_pages(client, gprefix, etcd_adapter.prefix_end(gprefix), page=500,
                                                 revision=rev):
        for kv in kvs:
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                e = orjson.loads(kv.value)
                int(e["first"]), int(e["last"])
                entries.append(e)
    return sorted(entries, key=lambda e: int(e["first"]))


async def _group_heads(settings: Settings, e: dict[str, Any], reader_of: Any) -> list[Block]:
    """A group's block heads by first offset, or one untimed block spanning it when its chunks cannot
    be read (its records may hold anything)."""
    from kmevents.store.snapshots import read_bytes

    reader = reader_of(int(e["snapshot_partition"])) if reader_of is not None else None
    try:
        data = await read_bytes(settings, e, reader)
        if data is None:
            raise IndexError_("its chunks are missing from the snapshots topic")
        heads = []
        for v in unpack_group(data):
            with contextlib.suppress(IndexError_):
                heads.append(decode_head(v))
    except Exception:  # noqa: BLE001 - (offsets gone from the topic, damaged bytes)
        return [Block(int(e["first"]), int(e["last"]))]
    return sorted(heads, key=lambda b: b.first)


def group_times(values: list[bytes]) -> dict[str, Any]:
    """What a group's entry says of its blocks' times (``values``: their bytes): ``min_occurred_at``,
    the earliest of theirs, when every one of them says its own (a damaged block, or one written before
    blocks carried it, may hold any time: then nothing, and a point by occurrence reads the group);
    ``latest_occurred_at``, the latest, likewise (a search from a time skips a group that ends before it)."""
    earliest, latest = [], []
    timed = timed_latest = True
    for v in values:
        try:
            b = decode_head(v)
        except IndexError_:
            return {}
        timed = timed and b.timed
        timed_latest = timed_latest and b.timed_latest
        if b.min_occurred_at is not None:
            earliest.append(b.min_occurred_at)
        if b.latest_occurred_at is not None:
            latest.append(b.latest_occurred_at)
    out: dict[str, Any] = {}
    if timed:
        out["min_occurred_at"] = min(earliest, default=None)
    if timed_latest:
        out["latest_occurred_at"] = max(latest, default=None)
    return out


async def _level0_here(hash_sets: list[array], number: int) -> array:
    return touched_runs.level0(hash_sets, number)


async def group_oldest(settings: Settings, client: etcd_adapter.EtcdClient, writer: Any, cluster: str,
                       generation: str, partition: int, *, keep: int = KEEP_BLOCKS,
                       group: int = GROUP_BLOCKS, level0: Any = _level0_here) -> int:
    """Move the cluster's oldest closed blocks from etcd into groups, ``group`` at a time, while more
    than ``keep + group`` are there (see the module docstring); returns the groups written. ``writer``:
    the worker's :class:`~kmevents.store.snapshots.SnapshotWriter` (chunks to the snapshots topic's
    ``partition``, the events partition's). A group whose entry exists already (another worker
    grouped these blocks) stops it. ``level0(hash_sets, number)``: the group's postings
    (``touched_runs.level0``, ~0.5-0.8 s of CPU at the large profile: the worker computes them in a
    forked child, so its event loop does not stop for them)."""
    from kmevents.adapters import etcd as etcd_adapter

    gen_prefix = f"{settings.etcd.prefix}/{generation}"
    prefix = layout.touched_index_prefix(gen_prefix, cluster)
    end = etcd_adapter.prefix_end(prefix)
    done = 0
    while await etcd_adapter.count_range(client, prefix, end) > keep + group:
        _, kvs = await etcd_adapter.range_at(client, prefix, range_end=end, limit=group)
        firsts, lasts, hash_sets, max_occ = [], [], [], []
        for kv in kvs:
            try:
                b = decode(kv.value)
                firsts.append(b.first)
                lasts.append(b.last)
                hash_sets.append(b.hashes)
                if b.max_occurred_at is not None:
                    max_occ.append(b.max_occurred_at)
            except IndexError_:
                continue  # moved as it is: a reader leaves it out as before
        if not firsts:
            return done
        data = pack_group([kv.value for kv in kvs])
        first = int(kvs[0].key.rsplit(b"/", 1)[1])
        stem = f"{generation}/{cluster}/t{first}"
        chunk_offsets = await writer.send_chunks(stem, data, partition)
        entry = {"cluster": cluster, "first": min(firsts), "last": max(lasts), "blocks": len(kvs),
                 "snapshot_partition": partition, "chunk_offsets": chunk_offsets, "chunk_key": stem,
                 "bytes": len(data), "stored_bytes": len(data), "codec": "none", "kind": "touched"}
        entry.update(group_times([kv.value for kv in kvs]))
        gkey = layout.touched_group_key(gen_prefix, cluster, first)
        ops: dict[bytes, bytes | None] = {}
        number = await _next_group_number(client, gen_prefix, cluster)
        if len(hash_sets) == len(kvs) and number <= touched_runs.MAX_NUMBER:
            # the group's run of the hash -> groups index (store/touched_runs.py), in the same transaction;
            # a group with a damaged block gets none (a history reads it whole, leaving that block out)
            entry["max_occurred_at"] = max(max_occ, default=None)
            entry["number"] = number
            run = await touched_runs.level0_run(writer, generation, cluster, entry["first"], entry["last"], number,
                                                await level0(hash_sets, number), partition)
            ops[touched_runs.run_key(gen_prefix, cluster, 0, run.first)] = orjson.dumps(
                run.entry(cluster), option=orjson.OPT_SORT_KEYS)
        ops[gkey] = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        ops.update((kv.key, None) for kv in kvs)
        ok, _ = await etcd_adapter.txn_if_unchanged(client, gkey, 0, ops)
        if not ok:
            return done
        done += 1
    return done


async def _next_group_number(client: etcd_adapter.EtcdClient, gen_prefix: str, cluster: str) -> int:
    """The number of the cluster's next group: one past the newest group's (the groups before numbers
    existed: their count), so the groups a run names have distinct numbers (store/touched_runs.py)."""
    from kmevents.adapters import etcd as etcd_adapter

    gprefix = layout.touched_group_prefix(gen_prefix, cluster)
    end = etcd_adapter.prefix_end(gprefix)
    _, kvs = await etcd_adapter.range_at(client, gprefix, range_end=end, limit=1, descending=True)
    if not kvs:
        return 0
    with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return int(orjson.loads(kvs[0].value)["number"]) + 1
    return await etcd_adapter.count_range(client, gprefix, end)


async def group_and_merge(settings: Settings, client: etcd_adapter.EtcdClient, writer: Any, cluster: str,
                          generation: str, partition: int, *, keep: int = KEEP_BLOCKS,
                          group: int = GROUP_BLOCKS, level0: Any = _level0_here) -> tuple[int, int]:
    """:func:`group_oldest`, then the merges of the hash -> groups runs that are due
    (``touched_runs.merge_due``; also those a failure left undone); returns ``(groups, merges)``."""
    n = await group_oldest(settings, client, writer, cluster, generation, partition, keep=keep, group=group,
                           level0=level0)
    await cover_groups(settings, client, writer, cluster, generation, partition, level0=level0)
    return n, await touched_runs.merge_due(settings, client, writer, cluster, generation, partition)


async def cover_groups(settings: Settings, client: etcd_adapter.EtcdClient, writer: Any, cluster: str,
                       generation: str, partition: int, *, level0: Any = _level0_here) -> int:
    """Write the level-0 run of each group no run covers (grouped before runs existed, or by a worker
    whose run write failed), oldest first: its blocks read from its chunks, its entry rewritten with
    its number (its place among the groups, when it has none: the numbers the worker gave the groups
    after it start past them) and its blocks' latest applied time, in one transaction with the run, only
    if the entry is unchanged. A group whose chunks or blocks cannot all be read gets none (a history
    reads it whole). Returns the runs written."""
    from kmevents.adapters import etcd as etcd_adapter

    gen_prefix = f"{settings.etcd.prefix}/{generation}"
    rev, kvs = await _group_kvs(client, gen_prefix, cluster)
    covered = {g for r in await touched_runs.read_runs(client, gen_prefix, cluster, rev) for g in r.groups}
    done = 0
    for place, kv in enumerate(kvs):  # (keys are the groups' first offsets, zero-padded: oldest first)
        try:
            e = orjson.loads(kv.value)
            first, number = int(e["first"]), int(e.get("number", place))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if first in covered or number > touched_runs.MAX_NUMBER:
            continue
        blocks = await _group_blocks(settings, e, None)
        if not blocks or len(blocks) != int(e.get("blocks") or 0):
            continue
        run = await touched_runs.level0_run(writer, generation, cluster, first, int(e["last"]), number,
                                            await level0([b.hashes for b in blocks], number), partition)
        times = [b.max_occurred_at for b in blocks if b.max_occurred_at is not None]
        entry = {**e, "number": number, "max_occurred_at": max(times, default=None)}
        ops: dict[bytes, bytes | None] = {
            touched_runs.run_key(gen_prefix, cluster, 0, first): orjson.dumps(run.entry(cluster),
                                                                             option=orjson.OPT_SORT_KEYS),
            kv.key: orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)}
        ok, _ = await etcd_adapter.txn_if_unchanged(client, kv.key, kv.mod_revision, ops)
        done += ok
    return done


async def last_closed(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str, through: int,
                      generation: str | None = None) -> Block | None:
    """The cluster's block that ends last at or before offset ``through`` (a checkpoint), or None.

    Blocks are keyed by their first offset, so the few greatest keys up to ``through`` are read:
    a block past ``through`` (written by a transaction of a batch whose checkpoint never landed)
    is passed over for the one before it, and so is a damaged one."""
    from kmevents.adapters import etcd as etcd_adapter

    gen = generation or layout.live_generation()
    prefix = f"{settings.etcd.prefix}/{gen}"
    _, kvs = await etcd_adapter.range_at(client, layout.touched_index_prefix(prefix, cluster),
                                         range_end=layout.touched_index_key(prefix, cluster, through + 1),
                                         limit=4, descending=True)
    ends = []
    for kv in kvs:
        try:
            b = decode(kv.value)
        except IndexError_:
            continue  # resumed from the block before it, the new block takes its key
        if b.last <= through:
            ends.append(b)
    return max(ends, key=lambda b: b.last, default=None)


async def read_open(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                    generation: str | None = None) -> Block | None:
    """The cluster's open block as the worker's last committed batch left it (None: none, or damaged).

    It starts where the last closed block ends, unless a block closed since (then it is stale: the
    reader checks that it follows the closed blocks, :func:`following`)."""
    from kmevents.adapters import etcd as etcd_adapter

    gen = generation or layout.live_generation()
    _, kvs = await etcd_adapter.range_at(client, layout.touched_open_key(f"{settings.etcd.prefix}/{gen}", cluster))
    try:
        return decode(kvs[0].value) if kvs else None
    except IndexError_:
        return None


def following(blocks: list[Block], opened: Block | None) -> Block | None:
    """``opened`` (:func:`read_open`) when it is the block right after the last of ``blocks``
    (the closed ones, :func:`read_blocks`); else None: stale, a block closed after it."""
    if opened is not None and opened.first == max(b.last for b in blocks) + 1 and opened.last >= opened.first:
        return opened
    return None


__all__ = ["BLOCK_EVENTS", "GROUP_BLOCKS", "GROUP_MAGIC", "KEEP_BLOCKS", "NAME_FIELDS", "UNSERVED_KINDS", "UNTIMED",
           "Accumulator", "Block", "IndexError_", "Span", "Spans", "corr", "decode", "decode_head", "encode", "entity_hashes",
           "cover_groups", "following", "group_and_merge", "group_oldest", "group_times", "heads_newest_first", "id_tails", "key", "last_closed", "name",
           "pack_group", "read_blocks", "read_open", "unpack_group"]
