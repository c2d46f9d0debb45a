"""Which groups of the touched-entity index hold a hash, found without reading the groups.

The worker moves a cluster's old index blocks into *groups* of ``touched.GROUP_BLOCKS`` blocks
(store/touched.py). A history used to read every group's blocks first: ~25 bytes an event of the
log, ~1 s by itself at ~10M events and growing with the log. This module keeps, beside the groups,
an index from hash to group, so that a history from a command reads only the groups that hold one
of the hashes it asks about (replay/history.py: ``read_index(lazy=True)``, ``history_of``), whatever the
log's length.

The index is a set of *runs*, merged level by level (a log-structured merge):

- each group has a *number* (one past the previous group's, in its entry); a *posting* is one u64:
  a hash's top 48 bits, then the number of a group holding it (its low 16 bits);
- when the worker writes a group, it writes a level-0 run of it in the same etcd transaction as
  the group's entry: the group's postings (its blocks' distinct hashes, sorted);
- once ``FANIN`` runs of one level are there, it merges the oldest ``FANIN`` of them into one run of
  the next level and deletes theirs in the same transaction (only if its key is new: a fenced worker
  and its successor cannot both merge them), then tombstones their parts in the snapshots topic
  (compacted: it reclaims them). Their groups' numbers differ, so their postings do: a merge is one
  sort of sorted pieces (C's, not a Python loop a posting).

So a cluster has at most ``FANIN - 1`` runs a level, ~``3 * log4(groups)`` in all: ~15 for a week of
the large profile's cluster (~650 groups). A run's postings are sorted and cut into *parts* by their
top ``bits`` (``bits_for``: ~``PART_POSTINGS`` postings a part), each part one record of the
snapshots topic (``encode_part``: ``PART_MAGIC | u32 count | zstd(u64 postings)``). A needle costs
one record read a run (the part its top bits name), cached for the history's other needles. Two
hashes that share their top 48 bits answer for each other: a group read for nothing, about once in
2**48 / (the group's hashes) needles, never a wrong answer.

A run's entry, at ``<prefix>/<generation>/_touched_runs/<cluster>/<level:02d>/<first:020d>``
(``first``: its first group's first offset)::

    {"cluster", "kind": "touched-run", "level", "first", "last", "groups": [[number, first offset], ...],
     "bits", "postings", "snapshot_partition", "parts": [[offsets of the part's chunks], ...]}

A reader takes what it cannot use (a damaged entry, a part gone from the topic) as "any of its
groups may hold the hash": it reads those groups whole. A group that no run covers (grouped before
runs existed, or whose run was lost) is read whole as before. Never wrong, at worst slower.

Worked example: groups 0..3 at offsets 0, 256000, 512000 and 768000, each with its level-0 run; the
fourth makes four runs of level 0, merged into one run of level 1 whose ``groups`` are
``[[0, 0], [1, 256000], [2, 512000], [3, 768000]]``; a hash ``h`` held by blocks of the second and the
fourth group has two postings there, ``(h & ~0xFFFF) | 1`` and ``(h & ~0xFFFF) | 3``, in the part
``h >> (64 - bits)``: a history that asks for ``h`` reads that part and the groups at 256000 and 768000.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import operator
import struct
import sys
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from kmevents import layout

if TYPE_CHECKING:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.settings import Settings

log = logging.getLogger("kmevents.store.touched_runs")

PART_MAGIC: Final = b"KMP2"
#: Runs of one level merged at once.
FANIN: Final = 4
#: Postings a part holds about (a part is then ~64 KB raw, one small fetch).
PART_POSTINGS: Final = 8_192
#: At most 2**MAX_BITS parts a run (its etcd entry lists their offsets).
MAX_BITS: Final = 12
#: A posting is one u64: the hash's top 48 bits, then the group's number (its low 16 bits).
NUMBER_BITS: Final = 16
MAX_NUMBER: Final = (1 << NUMBER_BITS) - 1
PREFIX_MASK: Final = ((1 << 64) - 1) ^ MAX_NUMBER
KIND: Final = "touched-run"


def bits_for(postings: int, per_part: int = PART_POSTINGS) -> int:
    """The top bits that cut ``postings`` into parts of about ``per_part`` (at most ``MAX_BITS``)."""
    bits = 0
    while bits < MAX_BITS and postings > per_part << bits:
        bits += 1
    return bits


def part_of(h: int, bits: int) -> int:
    return h >> (64 - bits) if bits else 0


def part_range(p: int, bits: int) -> tuple[int, int]:
    """The postings of part ``p``: ``[lo, hi)``."""
    return (p << (64 - bits), (p + 1) << (64 - bits)) if bits else (0, 1 << 64)


# -- parts ----------------------------------------------------------------------------------

def encode_part(postings: array) -> bytes:
    """A part's postings (sorted u64) as stored."""
    from kmevents.store.snapshots import compress

    a = array("Q", postings)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        a.byteswap()
    return PART_MAGIC + struct.pack("<I", len(a)) + compress(a.tobytes(), 3)


class RunError(ValueError):
    """A stored part or entry that cannot be decoded (the reader then reads the run's groups whole)."""


def decode_part(data: bytes) -> array:
    """The postings of ``encode_part``'s bytes; raises :class:`RunError` when damaged."""
    from kmevents.reducer import SnapshotError
    from kmevents.store.snapshots import decompress

    if data[:4] != PART_MAGIC or len(data) < 8:
        raise RunError("not a part of a touched-index run (magic)")
    (n,) = struct.unpack("<I", data[4:8])
    try:
        raw = decompress(data[8:], "zstd", n * 8)
    except SnapshotError as exc:
        raise RunError(f"damaged part of a touched-index run: {exc.message}") from None
    if len(raw) != n * 8:
        raise RunError(f"damaged part of a touched-index run: {len(raw)} bytes for {n} postings")
    a = array("Q")
    a.frombytes(raw)
    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a


def numbers_of(postings: array, needle: int) -> list[int]:
    """The numbers of the groups whose postings in a part share ``needle``'s top 48 bits (a group that
    holds only another hash with them is read for nothing: ~one in 2**48/its hashes, never wrong)."""
    lo = needle & PREFIX_MASK
    i = bisect.bisect_left(postings, lo)
    out = []
    while i < len(postings) and postings[i] <= lo | MAX_NUMBER:
        out.append(postings[i] & MAX_NUMBER)
        i += 1
    return out


# -- building and merging (pure: the worker's I/O is in ``level0_run``/``merge_due``) ---------

def level0(hash_sets: Iterable[Iterable[int]], number: int) -> array:
    """The postings of group ``number``: the distinct top 48 bits of its blocks' hashes (each block's
    sorted), each with ``number`` in its low 16 bits, sorted. Each step is C's (a sort of sorted runs, not of a set: the
    large profile's ~770k hashes a group in ~0.8 s against ~2.3 s)."""
    if not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"group number {number} past {MAX_NUMBER}")
    hs = array("Q", map(PREFIX_MASK.__and__, sorted(itertools.chain.from_iterable(hash_sets))))
    distinct = itertools.compress(hs, itertools.chain(map(operator.ne, hs, itertools.islice(hs, 1, None)), (True,)))
    return array("Q", map(number.__or__, distinct))


def cut(postings: array, bits: int) -> list[array]:
    """Sorted postings cut into the ``2**bits`` parts by their top bits (empty ones too)."""
    out = []
    start = 0
    for p in range(1 << bits):
        _, hi = part_range(p, bits)
        end = bisect.bisect_left(postings, hi, start)
        out.append(postings[start:end])
        start = end
    return out


def merged_part(p: int, bits: int, inputs: list[tuple[int, Callable[[int], array]]]) -> array:
    """Part ``p`` (of ``2**bits``) of the merge of ``inputs``: each ``(bits, part getter)`` of a run.
    The runs' group numbers differ, so their postings do: the merge is one sort of sorted pieces."""
    lo, hi = part_range(p, bits)
    pieces: list[array] = []
    for rbits, get in inputs:
        if rbits <= bits:
            a = get(p >> (bits - rbits))
            pieces.append(a[bisect.bisect_left(a, lo):bisect.bisect_left(a, hi)])
        else:
            pieces.extend(get(q) for q in range(p << (rbits - bits), (p + 1) << (rbits - bits)))
    return array("Q", sorted(itertools.chain.from_iterable(pieces)))


# -- entries ------------------------------------------------------------------------------

@dataclass
class Run:
    """A run's etcd entry (see the module docstring); ``key`` where it is stored. ``groups``: its
    groups' first offsets, ``numbers`` the number of each (what its postings carry)."""

    level: int
    first: int
    last: int
    groups: list[int]
    numbers: list[int]
    bits: int
    postings: int
    partition: int
    parts: list[list[int]]
    key: bytes = b""

    @functools.cached_property
    def first_of(self) -> dict[int, int]:
        """Each group's first offset by its number."""
        return dict(zip(self.numbers, self.groups, strict=True))

    def entry(self, cluster: str) -> dict[str, Any]:
        return {"cluster": cluster, "kind": KIND, "level": self.level, "first": self.first, "last": self.last,
                "groups": [[n, g] for n, g in zip(self.numbers, self.groups, strict=True)], "bits": self.bits,
                "postings": self.postings, "snapshot_partition": self.partition, "parts": self.parts}


def parse(value: bytes, key: bytes = b"") -> Run:
    """The run of an entry's bytes; raises :class:`RunError` when damaged."""
    try:
        e = orjson.loads(value)
        groups = [(int(n), int(g)) for n, g in e["groups"]]
        run = Run(int(e["level"]), int(e["first"]), int(e["last"]), [g for _, g in groups], [n for n, _ in groups],
                  int(e["bits"]), int(e["postings"]), int(e["snapshot_partition"]),
                  [[int(o) for o in p] for p in e["parts"]], key)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RunError(f"damaged touched-index run entry: {exc}") from None
    if len(run.parts) != 1 << run.bits or not run.groups or not all(run.parts) \
            or len(set(run.numbers)) != len(run.numbers):
        raise RunError("damaged touched-index run entry: its parts or groups")
    return run


def run_key(gen_prefix: str, cluster: str, level: int, first: int) -> bytes:
    return f"{layout.touched_runs_prefix(gen_prefix, cluster).decode()}{level:02d}/{first:020d}".encode()


async def read_runs(client: etcd_adapter.EtcdClient, gen_prefix: str, cluster: str, revision: int = 0) -> list[Run]:
    """The cluster's runs at ``revision`` (damaged entries left out: their groups read whole), oldest first."""
    from kmevents.adapters import etcd as etcd_adapter

    prefix = layout.touched_runs_prefix(gen_prefix, cluster)
    out = []
    async for _, kvs in etcd_adapter.range_pages(client, prefix, etcd_adapter.prefix_end(prefix), page=500,
                                                 revision=revision):
        for kv in kvs:
            try:
                out.append(parse(kv.value, kv.key))
            except RunError as exc:
                log.warning("%s", exc, extra={"key": kv.key.decode()})
    return sorted(out, key=lambda r: r.first)


# -- the worker's side --------------------------------------------------------------------

async def level0_run(writer: Any, generation: str, cluster: str, group_first: int, group_last: int, number: int,
                     postings: array, partition: int) -> Run:
    """Group ``number``'s level-0 run (``postings``: :func:`level0`) with its parts written (its entry
    is the caller's to write, with the group's)."""
    bits = bits_for(len(postings))
    stem = _stem(generation, cluster, 0, group_first)
    parts = await send_parts(writer, stem, [encode_part(a) for a in cut(postings, bits)], partition)
    return Run(0, group_first, group_last, [group_first], [number], bits, len(postings), partition, parts)


async def send_parts(writer: Any, stem: str, parts: list[bytes], partition: int, first: int = 0) -> list[list[int]]:
    """Parts ``first``, ``first + 1``... to the snapshots topic's ``partition``, keyed ``<stem>/p<i>/0/1`` (as
    ``send_chunks`` keys one chunk), sent together rather than each waited for (a run has up to 4,096);
    their offsets. A part past a chunk's size goes as chunks."""
    from kmevents.store.snapshots import CHUNK_BYTES

    topic = writer.settings.kafka.snapshots_topic
    sent: list[Any] = []
    for i, data in enumerate(parts, first):
        if len(data) > CHUNK_BYTES:
            sent.append(await writer.send_chunks(f"{stem}/p{i}", data, partition))
        else:
            sent.append(await writer.producer.send(topic, data, key=f"{stem}/p{i}/0/1".encode(), partition=partition))
    return [x if isinstance(x, list) else [(await x).offset] for x in sent]


def due(runs: list[Run]) -> list[Run] | None:
    """The ``FANIN`` oldest runs of the lowest level that has ``FANIN`` of them (None: no merge due).
    Runs merged are consecutive groups: a level's runs are, oldest first. Runs whose groups' numbers
    meet (an entry rewritten by hand) are not merged: they stay as they are, each answering for its own."""
    by_level: dict[int, list[Run]] = {}
    for r in runs:
        by_level.setdefault(r.level, []).append(r)
    for level in sorted(by_level):
        rs = by_level[level][:FANIN]
        numbers = [n for r in rs for n in r.numbers]
        if len(rs) == FANIN and len(set(numbers)) == len(numbers):
            return rs
    return None


async def merge(settings: Settings, writer: Any, generation: str, cluster: str, runs: list[Run],
                partition: int) -> Run | None:
    """The run of ``runs`` merged, its parts written (None: a part of theirs could not be read; they
    stay as they are). Parts are read and written a few at a time: memory is a few parts. Each input
    run's parts are read in order through a consumer of its own: they lie at consecutive offsets, so
    one fetch serves the next ones (one consumer for all, or one a part, fetched 1 MiB a part)."""
    from kmevents.adapters import kafka as kafka_adapter

    readers = [kafka_adapter.PartitionReader(settings.kafka, settings.kafka.snapshots_topic, r.partition,
                                             max_bytes=READ_BYTES) for r in runs]
    try:
        return await _merge(settings, writer, generation, cluster, runs, partition, readers)
    finally:
        for reader in readers:
            await reader.close()


async def _merge(settings: Settings, writer: Any, generation: str, cluster: str, runs: list[Run],
                 partition: int, readers: list[Any]) -> Run | None:
    import asyncio

    held: dict[int, tuple[int, array]] = {}  # each input's last part read (a run with fewer bits serves several)
    bits = bits_for(sum(r.postings for r in runs))
    out: list[list[int]] = []
    batch: list[bytes] = []  # encoded parts not sent yet (sent SEND_PARTS at a time: memory stays small)
    total = 0
    stem = _stem(generation, cluster, runs[0].level + 1, runs[0].first)
    for p in range(1 << bits):
        got: dict[tuple[int, int], array] = {}
        for i, r in enumerate(runs):
            qs = [p >> (bits - r.bits)] if r.bits <= bits else range(p << (r.bits - bits), (p + 1) << (r.bits - bits))
            for q in qs:
                if held.get(i, (-1,))[0] != q:
                    a = await read_part(settings, r, q, lambda _p, i=i: readers[i])
                    if a is None:
                        return None
                    held[i] = (q, a)
                got[(i, q)] = held[i][1]
        merged = merged_part(p, bits, [(r.bits, _getter(got, i)) for i, r in enumerate(runs)])
        total += len(merged)
        batch.append(encode_part(merged))
        if len(batch) >= SEND_PARTS or p == (1 << bits) - 1:
            out.extend(await send_parts(writer, stem, batch, partition, len(out)))
            batch = []
        await asyncio.sleep(0)  # (the worker's loop runs between parts)
    return Run(runs[0].level + 1, runs[0].first, runs[-1].last, [g for r in runs for g in r.groups],
               [n for r in runs for n in r.numbers], bits, total, partition, out)


#: Parts a merge sends at once.
SEND_PARTS: Final = 64


def _getter(parts: dict[tuple[int, int], array], i: int) -> Callable[[int], array]:
    """Input run ``i``'s part ``q`` of those read for one merged part."""
    return lambda q: parts[(i, q)]


async def merge_due(settings: Settings, client: etcd_adapter.EtcdClient, writer: Any, cluster: str,
                    generation: str, partition: int) -> int:
    """Merge the cluster's runs while a merge is due (``due``); returns the merges done. Each merge
    writes its run and deletes the runs it merged in one transaction, only if its key is new; the
    merged runs' parts are then tombstoned."""
    from kmevents.adapters import etcd as etcd_adapter

    gen_prefix = f"{settings.etcd.prefix}/{generation}"
    done = 0
    while (runs := due(await read_runs(client, gen_prefix, cluster))) is not None:
        run = await merge(settings, writer, generation, cluster, runs, partition)
        if run is None:
            log.warning("touched-index runs not merged: a part is unreadable", extra={
                "cluster": cluster, "level": runs[0].level, "first": runs[0].first})
            return done
        key = run_key(gen_prefix, cluster, run.level, run.first)
        ops: dict[bytes, bytes | None] = {key: orjson.dumps(run.entry(cluster), option=orjson.OPT_SORT_KEYS)}
        ops.update((r.key, None) for r in runs)
        ok, _ = await etcd_adapter.txn_if_unchanged(client, key, 0, ops)
        if not ok:
            return done
        done += 1
        await tombstone(writer, generation, cluster, runs)
    return done


#: A fetch of a merge's readers: a run's parts are written back to back, so one fetch brings several.
READ_BYTES: Final = 1 << 20


def _stem(generation: str, cluster: str, level: int, first: int) -> str:
    """What the keys of a run's parts start with (the writers' and :func:`part_keys`')."""
    return f"{generation}/{cluster}/r{level}/{first}"


def part_keys(generation: str, cluster: str, run: Run) -> list[bytes]:
    """The keys of ``run``'s parts' chunks in the snapshots topic (the writers' stems)."""
    stem = _stem(generation, cluster, run.level, run.first)
    return [f"{stem}/p{i}/{j}/{len(offs)}".encode() for i, offs in enumerate(run.parts) for j in range(len(offs))]


async def tombstone(writer: Any, generation: str, cluster: str, runs: list[Run]) -> None:
    """Tombstones for the parts of ``runs`` (merged into another: no entry names them), so the compacted
    snapshots topic reclaims them. Best effort: a reader that read their entries before the merge and
    then finds a part gone reads the run's groups whole; a failure leaves the parts in the topic."""
    import asyncio

    topic = writer.settings.kafka.snapshots_topic
    try:
        sent = [await writer.producer.send(topic, None, key=k, partition=r.partition)
                for r in runs for k in part_keys(generation, cluster, r)]
        await asyncio.gather(*sent)
    except Exception as exc:  # noqa: BLE001 - the parts stay in the topic: bytes, not answers
        log.warning("touched-index run parts not tombstoned", extra={"cluster": cluster, "error": str(exc)[:300]})


# -- the reader's side --------------------------------------------------------------------

async def read_part(settings: Settings, run: Run, p: int, reader_of: Any = None) -> array | None:
    """Part ``p`` of ``run`` (None: gone from the topic, or damaged)."""
    from kmevents.store.snapshots import read_stored

    entry = {"chunk_offsets": run.parts[p], "snapshot_partition": run.partition, "codec": "none",
             "stored_bytes": 0, "bytes": 0}
    reader = reader_of(run.partition) if reader_of is not None else None
    try:
        data = await read_stored(settings, entry, reader)
        return None if data is None else decode_part(data)
    except Exception as exc:  # noqa: BLE001 - (offsets gone, damaged bytes): its groups are read whole
        log.warning("touched-index run part not readable", extra={"first": run.first, "part": p, "error": str(exc)})
        return None


@dataclass
class Lookup:
    """The groups holding hashes, by the runs (``groups_holding``); parts read once."""

    settings: Any
    runs: list[Run]
    reader_of: Any = None
    parts_read: int = 0
    _parts: dict[tuple[int, int], array | None] = field(default_factory=dict)
    _answers: dict[int, set[int]] = field(default_factory=dict)

    def covered(self) -> set[int]:
        """The first offsets of the groups some run covers."""
        return {g for r in self.runs for g in r.groups}

    async def groups_holding(self, needles: Iterable[int]) -> set[int]:
        """The first offsets of the groups that may hold one of ``needles`` (a run whose part cannot be
        read answers with all of its groups)."""
        out: set[int] = set()
        for n in set(needles):
            got = self._answers.get(n)
            if got is None:
                got = self._answers[n] = await self._holding(n)
            out |= got
        return out

    def holders(self, needle: int) -> set[int]:
        """The groups ``groups_holding`` found for ``needle`` (looked up already)."""
        return self._answers[needle]

    async def _holding(self, needle: int) -> set[int]:
        out: set[int] = set()
        for i, r in enumerate(self.runs):
            p = part_of(needle, r.bits)
            if (i, p) not in self._parts:
                self._parts[(i, p)] = await read_part(self.settings, r, p, self.reader_of)
                self.parts_read += 1
            got = self._parts[(i, p)]
            if got is None:
                out.update(r.groups)
                continue
            first_of = r.first_of
            out.update(first_of[n] for n in numbers_of(got, needle) if n in first_of)
        return out


__all__ = ["FANIN", "KIND", "MAX_BITS", "MAX_NUMBER", "PART_POSTINGS", "Lookup", "Run", "RunError", "bits_for", "cut",
           "decode_part", "due", "encode_part", "level0", "level0_run", "merge", "merge_due", "merged_part",
           "numbers_of", "parse", "part_keys", "part_of", "part_range", "read_part", "read_runs", "run_key",
           "tombstone"]
