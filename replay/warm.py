"""What a long-lived reader (the API) keeps between point-in-time reads, within bounds.

A read at offset N costs: the snapshot at or before N (fetch ~30-50 MB, parse
0.3-1.5 s), then the fold up to N. A warm process keeps

- **states** (:class:`StateCache`): states already built at an offset (a loaded
  snapshot, or the outcome of an earlier read), never mutated again. A read
  starts from the newest one at or before its target with a copy-on-write
  :func:`fork` (milliseconds, however big the state) instead of reloading the
  snapshot, and folds only the records after it;
- **records** (:class:`RecordCache`): the cluster's raw records of complete
  blocks of offsets already fetched, so a second read in the same range does
  not fetch them from Kafka again. A block rests as four tuples of plain values
  (offsets, timestamps, keys, values), not as record objects: tuples of ints and
  bytes leave the cyclic collector's lists once it has seen them, and each of the
  ~170,000 records a 200 MiB cache holds at the large profile was otherwise an
  object every full pass walked (~85 ms of a ~270 ms pass; BENCHMARKS.md). A read
  gets record objects made from a block as it goes.

Both are least-recently-used and bounded in bytes (states by an estimate, see
:func:`estimate_bytes`; records by their size), states also in entries. Both are exact:
a Kafka offset's record never changes and the fold is deterministic, so a
state at offset M folded on to N equals the fold of the whole prefix to N
(tests/unit/replay/test_warm.py and tests/integration/test_replay_warm.py
compare cached and uncached reads, across snapshots and after new events).

Forks are the reducer's copy-on-write states (``ClusterState.fork``, kmevents/reducer/fork.py).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from kmevents.replay.records import LogRecord

from kmevents.reducer import ClusterState
from kmevents.reducer.sizing import estimate_bytes

# -- states ----------------------------------------------------------------------

@dataclass
class Held:
    """A read-only state at ``offset`` (every record <= offset folded), its chain head."""

    state: ClusterState
    offset: int
    chain: str | None
    snapshot: int | None  # the snapshot it descends from (None: folded from the start)
    last: dict[str, Any] | None = None  # the last event applied (Replayed.last), when known
    bytes: int = 0  # estimate_bytes(state[, root.state]), filled in when it is first held
    #: the held state this one was forked from, or whose fork's fork it is (None: it shares
    #: nothing with another held state). It keeps ``root`` alive: see :class:`StateCache`.
    root: Held | None = None

    def descend(self, state: ClusterState, offset: int, chain: str | None, last: dict[str, Any] | None) -> Held:
        """The held state of ``state``, a frozen fork of this one's state folded on to ``offset``."""
        return Held(state, offset, chain, self.snapshot, last, root=self.root or self)


@dataclass
class _Entry:
    state: ClusterState
    held: Held | None  # a start point (key ("held", cluster, partition, offset))
    value: Any  # a finished read (key ("result", ...))


class StateCache:
    """Read-only states, least-recently-used, bounded in entries and in estimated bytes.

    Two sorts of entries share one byte budget (``max_bytes``) and one LRU order:

    - **held** states at an offset (:meth:`put`, :meth:`nearest`, :meth:`exact`), at
      most ``entries``: where later reads start;
    - **results** (:meth:`put_result`, :meth:`result`), at most ``results``: a
      finished read by its key, kept whole for a repeated read. Its state is often a
      held one too (an ``offset`` read holds the state it ends at).

    A state in several entries is counted once. A held state and the forks made
    from it (``Held.root``, directly or through other forks) are a *family*: the
    root is charged once, whole, while any member is kept (a member's ``root``
    reference keeps it alive), and each member only for what it does not share
    with the root (``estimate_bytes(state, root)``: a frozen fork shares every
    entity it did not change). A state kept only as a result is counted whole. So
    ``bytes`` is an upper bound of what the entries keep alive together, and a
    family of states a few thousand offsets apart costs little more than one.
    A state estimated above ``max_bytes`` is not kept at all.

    Over the budget, entries go least recently used first, except a family's root while
    other states of its family are kept (:meth:`_victim`), for bytes and for the count of
    entries alike: at the large profile a root is a loaded full snapshot (~270 MiB by
    estimate, 1-2 s to load again) and a member ~14-22 MiB (~30 by estimate), so the old
    order dropped the root first, freed nothing, and the next read before every member loaded
    the snapshot again (BENCHMARKS.md, "Warm reads within an interval at full size").
    """

    def __init__(self, entries: int, max_bytes: int = 1 << 62, results: int = 0) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.results = results
        self._lru: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._refs: dict[int, list[int]] = {}  # id(state) -> [entries holding it, its bytes, family]
        self._families: dict[int, list[int]] = {}  # id(root's state) -> [states kept, root's bytes]
        self.bytes = 0
        self.counts = {"held": 0, "result": 0}
        self.hits = 0
        self.evicted = 0
        self.too_big = 0

    def __len__(self) -> int:
        return len(self._lru)

    def held(self) -> list[Held]:
        """The held states, least recently used first."""
        return [e.held for e in self._lru.values() if e.held is not None]

    def kept(self) -> list[tuple[tuple[Any, ...], ClusterState]]:
        """``(key, state)`` of every entry, least recently used first (``key[0]``: held or result)."""
        return [(k, e.state) for k, e in self._lru.items()]

    def clear(self) -> None:
        while self._lru:
            self._drop(next(iter(self._lru)))

    def nearest(self, cluster: str, partition: int, at_or_before: int, *, touch: bool = True) -> Held | None:
        """The held state of ``cluster``/``partition`` with the highest offset <= ``at_or_before``
        (``touch``: counted as used, i.e. a hit and most recently used)."""
        best: tuple[tuple[Any, ...], Held] | None = None
        for key, e in self._lru.items():
            h = e.held
            if h is not None and key[1] == cluster and key[2] == partition and h.offset <= at_or_before \
                    and (best is None or h.offset > best[1].offset):
                best = (key, h)
        if best is None:
            return None
        if touch:
            self._lru.move_to_end(best[0])
            self.hits += 1
        return best[1]

    def holds(self, cluster: str, partition: int, offset: int) -> bool:
        """Whether a state is held at exactly ``offset`` (not counted as used)."""
        return ("held", cluster, partition, offset) in self._lru

    def exact(self, cluster: str, partition: int, offset: int) -> Held | None:
        e = self._lru.get(("held", cluster, partition, offset))
        if e is None:
            return None
        self._lru.move_to_end(("held", cluster, partition, offset))
        self.hits += 1
        return e.held

    def put(self, cluster: str, partition: int, held: Held) -> bool:
        """Hold ``held`` (read-only from here on); False when it is not kept (over a bound, or off)."""
        if self.entries <= 0:
            return False
        root = held.root or held
        if not root.bytes:
            root.bytes = self._bytes_of(root.state)
        if held.root is not None and not held.bytes:
            held.bytes = estimate_bytes(held.state, held.root.state)
        own = held.bytes if held.root is not None else 0  # a root is its family's charge
        return self._add(("held", cluster, partition, held.offset), _Entry(held.state, held, None), own,
                         (id(root.state), root.bytes))

    def result(self, key: tuple[Any, ...]) -> Any:
        """The finished read kept under ``key``, or None."""
        e = self._lru.get(("result", *key))
        if e is None:
            return None
        self._lru.move_to_end(("result", *key))
        return e.value

    def put_result(self, key: tuple[Any, ...], value: Any, state: ClusterState) -> bool:
        """Keep ``value`` (a finished read whose state is ``state``) for a repeated read."""
        if self.results <= 0:
            return False
        # a state kept already (a held one, most often) adds no bytes: no estimate to make
        nbytes = 0 if id(state) in self._refs else self._bytes_of(state)
        return self._add(("result", *key), _Entry(state, None, value), nbytes)

    def _bytes_of(self, st: ClusterState) -> int:
        ref = self._refs.get(id(st))
        if ref is not None and ref[2] == 0:
            return ref[1]
        fam = self._families.get(id(st))
        return fam[1] if fam is not None else estimate_bytes(st)

    def _add(self, key: tuple[Any, ...], entry: _Entry, nbytes: int,
             family: tuple[int, int] | None = None) -> bool:
        """Keep ``entry``: its state's own ``nbytes`` and, with ``family`` (the id of the
        family's root state, its bytes), the family's charge once."""
        was = self._lru.get(key)
        if was is not None and was.state is entry.state:  # the same state again: nothing to count
            self._lru[key] = entry
            self._lru.move_to_end(key)
            return True
        ref = self._refs.get(id(entry.state))
        if ref is None and nbytes + (family[1] if family and family[0] not in self._families else 0) > self.max_bytes:
            self.too_big += 1
            return False
        if key in self._lru:
            self._drop(key)
        self._lru[key] = entry
        self.counts[key[0]] += 1
        ref = self._refs.get(id(entry.state))
        if ref is None:
            ref = self._refs[id(entry.state)] = [0, nbytes, 0]
            self.bytes += nbytes
            if family is not None:
                ref[2] = family[0]
                fam = self._families.setdefault(family[0], [0, family[1]])
                if fam[0] == 0:
                    self.bytes += fam[1]
                fam[0] += 1
        ref[0] += 1
        limits = {"held": self.entries, "result": self.results}
        for kind, limit in limits.items():
            while self.counts[kind] > limit:
                self._evict(self._victim(kind))
        while self.bytes > self.max_bytes:
            self._evict(self._victim())
        return key in self._lru

    def _victim(self, kind: str | None = None) -> tuple[Any, ...]:
        """The entry (of ``kind``: held or result; None: any) to evict: the least recently used
        that is not the root of a family with other states kept. Dropping such a root frees
        almost nothing (its family keeps it alive and charged) and it is where the family's
        reads start without a load (a full snapshot's: 1-2 s at the large profile), while a
        member costs a fork and a short fold to make again."""
        fams = self._families
        first = None
        for key, e in self._lru.items():
            if kind is not None and key[0] != kind:
                continue
            fam = fams.get(id(e.state))
            if fam is None or fam[0] <= 1:
                return key
            first = first or key
        assert first is not None  # (called only with an entry of ``kind`` kept)
        return first

    def _evict(self, key: tuple[Any, ...]) -> None:
        self._drop(key)
        self.evicted += 1

    def _drop(self, key: tuple[Any, ...]) -> None:
        e = self._lru.pop(key)
        self.counts[key[0]] -= 1
        ref = self._refs[id(e.state)]
        ref[0] -= 1
        if ref[0] == 0:
            self.bytes -= ref[1]
            del self._refs[id(e.state)]
            if ref[2]:
                fam = self._families[ref[2]]
                fam[0] -= 1
                if fam[0] == 0:
                    self.bytes -= fam[1]
                    del self._families[ref[2]]


# -- records ---------------------------------------------------------------------

#: ``fetch(lo, hi, status)``: the records in ``[lo, hi]``; ``status["reached"]`` ends at the
#: last offset the fetch surely covered (``hi`` when it completed).
Fetch = Callable[[int, int, dict[str, int]], AsyncIterator[list[LogRecord]]]


def _size(recs: list[LogRecord]) -> int:
    return sum(len(r.value or b"") + len(r.key or b"") + 120 for r in recs)


#: A block of records as it rests in :class:`RecordCache`: their offsets (ascending),
#: timestamps, keys and values, a tuple each.
Block = tuple[tuple[int, ...], tuple[int, ...], tuple[bytes | None, ...], tuple[bytes | None, ...]]


def _rest(recs: list[LogRecord]) -> Block:
    return (tuple(r.offset for r in recs), tuple(r.timestamp for r in recs),
            tuple(r.key for r in recs), tuple(r.value for r in recs))


def _records(block: Block, lo: int, hi: int) -> list[LogRecord]:
    """The records of ``block`` at offsets ``lo..hi``, as record objects."""
    offs, times, keys, values = block
    i, j = bisect_left(offs, lo), bisect_right(offs, hi)
    if i == 0 and j == len(offs):
        return list(map(LogRecord, offs, times, keys, values))
    return list(map(LogRecord, offs[i:j], times[i:j], keys[i:j], values[i:j]))


class RecordCache:
    """One cluster's records of complete blocks of ``block`` offsets, at most ``max_bytes`` in all.

    A block is kept only when the read covered all of it (every offset of the
    block was at or below the end of the log when fetched), so it never
    changes later: records appended afterwards have higher offsets.
    """

    def __init__(self, max_bytes: int, block: int = 1000) -> None:
        self.max_bytes = max_bytes
        self.block = block
        self.blocks: OrderedDict[tuple[Any, int], Block] = OrderedDict()
        self.sizes: dict[tuple[Any, int], int] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self.blocks.clear()
        self.sizes.clear()
        self.bytes = 0

    def _put(self, key: tuple[Any, int], recs: list[LogRecord]) -> None:
        n = _size(recs) + 100
        if n > self.max_bytes:
            return
        if key in self.blocks:
            self.bytes -= self.sizes[key]
        self.blocks[key] = _rest(recs)
        self.sizes[key] = n
        self.bytes += n
        while self.bytes > self.max_bytes:
            old, _ = self.blocks.popitem(last=False)
            self.bytes -= self.sizes.pop(old)

    async def batches(self, source_key: Any, start: int, end: int, last: int,
                      fetch: Fetch) -> AsyncIterator[list[LogRecord]]:
        """The records in ``[start, end]``, from blocks held or ``fetch(lo, hi)``.

        ``last`` is the log's last offset as known now (``end <= last``).
        Missing blocks are fetched whole, from their first offset up to their
        last one or ``last``; only blocks ending at or below what the fetch
        surely covered are kept.
        """
        if self.max_bytes <= 0:
            async for b in fetch(start, end, {}):
                yield b
            return
        B = self.block
        blk = start // B
        while blk * B <= end:
            key = (source_key, blk)
            held = self.blocks.get(key)
            if held is not None:
                self.blocks.move_to_end(key)
                self.hits += 1
                out = _records(held, max(start, blk * B), min(end, blk * B + B - 1))
                if out:
                    yield out
                blk += 1
                continue
            # a run of missing blocks, fetched at once up to the next held one (or the end)
            run_end = blk
            while (run_end + 1) * B <= end and (source_key, run_end + 1) not in self.blocks:
                run_end += 1
            self.misses += run_end - blk + 1
            lo, hi = blk * B, min(run_end * B + B - 1, max(end, last))
            # blocks are kept as soon as the fetch has passed them (memory: one block, not the run)
            cur, cur_recs = blk, []  # type: int, list[LogRecord]
            status = {"reached": lo - 1}
            async for batch in fetch(lo, hi, status):
                out = [r for r in batch if start <= r.offset <= end]
                for r in batch:
                    b = r.offset // B
                    while cur < b:  # a record past block ``cur``: the fetch covered all of it
                        self._put((source_key, cur), cur_recs)
                        cur, cur_recs = cur + 1, []
                    cur_recs.append(r)
                if out:
                    yield out
            covered = min(hi, status["reached"])
            while cur <= run_end and cur * B + B - 1 <= covered:
                self._put((source_key, cur), cur_recs)
                cur, cur_recs = cur + 1, []
            blk = run_end + 1
