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
  not fetch them from Kafka again.

Both are bounded (entries, bytes) and least-recently-used. Both are exact:
a Kafka offset's record never changes and the fold is deterministic, so a
state at offset M folded on to N equals the fold of the whole prefix to N
(tests/unit/replay/test_warm.py and tests/integration/test_replay_warm.py
compare cached and uncached reads, across snapshots and after new events).

Copy-on-write: the fold mutates entity dicts in place (reducer/state.py), so a
fork's entity tables are :class:`CowTable` s: they start as shallow copies of
the parent's tables and deep-copy an entity the first time it is read through
them (``t[id]``, ``t.get``, ``t.items()``, ...). The parent's entity dicts are
therefore never reached by the fold. Everything else in the state (dedupe
sets, terminal indexes, aggregates, derived indexes) is copied outright
(~10-30 ms for 200k dedupe keys). :func:`freeze` turns a folded fork back into
plain dicts once the fold is done; the frozen state is read-only (it shares
entity dicts with its parent) and may be forked again.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kmevents.replay.records import LogRecord

from kmevents.reducer import ClusterState, Retention

_ATOMS = (str, int, float, bool, type(None), bytes)


def _copy(v: Any) -> Any:
    """Deep copy of plain data (dicts, lists, tuples, sets of atoms); atoms are shared."""
    t = type(v)
    if t is dict or t is OrderedDict:
        out = v.copy()
        for k, x in v.items():
            if type(x) not in _ATOMS:
                out[k] = _copy(x)
        return out
    if t is list:
        return [x if type(x) in _ATOMS else _copy(x) for x in v]
    if t in _ATOMS:
        return v
    if t is set:
        return v.copy()  # elements are hashable, i.e. atoms or tuples of atoms
    if t is tuple:
        return tuple(x if type(x) in _ATOMS else _copy(x) for x in v)
    if t is Retention:
        return v  # settings, never mutated
    import copy

    return copy.deepcopy(v)


class CowTable(dict):  # type: ignore[type-arg]
    """An entity table whose values are the parent's until first read, then private copies.

    Every way Python code reads a value goes through an override that copies it
    first; iterating values or items copies the whole table (rare in the fold).
    C-level readers (orjson, ``dict(table)``) see the storage directly; they
    only read. ``__iter__`` is overridden so that ``dict(table)`` and
    ``dict.update(table)`` take the slow path through ``__getitem__``.
    """

    __slots__ = ("_own",)

    def __init__(self, parent: dict[str, Any]) -> None:
        super().__init__(parent)
        self._own: set[str] = set()

    def _mine(self, key: Any) -> Any:
        v = dict.__getitem__(self, key)
        if key not in self._own:
            v = _copy(v)
            dict.__setitem__(self, key, v)
            self._own.add(key)
        return v

    def __getitem__(self, key: Any) -> Any:
        return self._mine(key)

    def get(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._mine(key)
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._own.add(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._mine(key)
        self[key] = default
        return default

    def pop(self, key: Any, *default: Any) -> Any:
        if dict.__contains__(self, key):
            v = self._mine(key)
            dict.__delitem__(self, key)
            return v
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        k, v = dict.popitem(self)
        if k not in self._own:
            v = _copy(v)
        return k, v

    def _all(self) -> None:
        if len(self._own) < dict.__len__(self):
            for k in list(dict.keys(self)):
                self._mine(k)

    def values(self) -> Any:
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        self._all()
        return dict.items(self)

    def __iter__(self) -> Iterator[Any]:
        return dict.__iter__(self)

    def copy(self) -> dict[str, Any]:
        self._all()
        return dict(dict.items(self))

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def __reduce__(self) -> Any:
        self._all()
        return (dict, (dict(dict.items(self)),))


def fork(st: ClusterState) -> ClusterState:
    """A state equal to ``st`` that can be folded on without touching ``st`` (which must not change)."""
    new = ClusterState.__new__(ClusterState)
    tables: dict[str, CowTable] = {}
    by_id: dict[int, CowTable] = {}
    for kind, t in st._tables.items():
        tables[kind] = by_id[id(t)] = CowTable(t)
    for name in ClusterState.__slots__:
        if not hasattr(st, name):
            continue
        v = getattr(st, name)
        if name == "_tables":
            v = tables
        elif id(v) in by_id:
            v = by_id[id(v)]
        else:
            v = _copy(v)
        setattr(new, name, v)
    return new


def freeze(st: ClusterState) -> ClusterState:
    """End a fork's fold: aggregates materialized, tables back to plain dicts. Read-only from here on."""
    st.take_dirty()  # materializes lazy totals (they write into agent and role entities)
    plain: dict[int, dict[str, Any]] = {}
    for kind, t in list(st._tables.items()):
        p = dict(dict.items(t)) if type(t) is CowTable else t
        plain[id(t)] = p
        st._tables[kind] = p
    for name in ClusterState.__slots__:
        if name != "_tables" and hasattr(st, name) and id(getattr(st, name)) in plain:
            setattr(st, name, plain[id(getattr(st, name))])
    return st


def settle() -> None:
    """Keep the collector from walking held states again and again.

    Held states are millions of long-lived objects; each full collection would
    walk them all (~0.1-1 s, paid by whatever read runs then). After a young
    collection (cycles made by the read itself are freed), everything alive is
    moved to the permanent generation (``gc.freeze``, O(1)); reference counting
    still frees what is dropped later (entities and indexes hold no cycles).
    """
    gc.collect(1)
    gc.freeze()


# -- states ----------------------------------------------------------------------


@dataclass
class Held:
    """A read-only state at ``offset`` (every record <= offset folded), its chain head."""

    state: ClusterState
    offset: int
    chain: str | None
    snapshot: int | None  # the snapshot it descends from (None: folded from the start)
    last: dict[str, Any] | None = None  # the last event applied (Replayed.last), when known


class StateCache:
    """Least-recently-used read-only states per (cluster, partition), at most ``entries``."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self.held: OrderedDict[tuple[str, int, int], Held] = OrderedDict()
        self.hits = 0

    def nearest(self, cluster: str, partition: int, at_or_before: int) -> Held | None:
        best: tuple[tuple[str, int, int], Held] | None = None
        for key, h in self.held.items():
            if key[0] == cluster and key[1] == partition and h.offset <= at_or_before \
                    and (best is None or h.offset > best[1].offset):
                best = (key, h)
        if best is None:
            return None
        self.held.move_to_end(best[0])
        self.hits += 1
        return best[1]

    def put(self, cluster: str, partition: int, held: Held) -> None:
        if self.entries <= 0:
            return
        key = (cluster, partition, held.offset)
        self.held[key] = held
        self.held.move_to_end(key)
        while len(self.held) > self.entries:
            self.held.popitem(last=False)


# -- records ---------------------------------------------------------------------

#: ``fetch(lo, hi, status)``: the records in ``[lo, hi]``; ``status["reached"]`` ends at the
#: last offset the fetch surely covered (``hi`` when it completed).
Fetch = Callable[[int, int, dict[str, int]], AsyncIterator[list[LogRecord]]]


def _size(recs: list[LogRecord]) -> int:
    return sum(len(r.value or b"") + len(r.key or b"") + 120 for r in recs)


class RecordCache:
    """One cluster's records of complete blocks of ``block`` offsets, at most ``max_bytes`` in all.

    A block is kept only when the read covered all of it (every offset of the
    block was at or below the end of the log when fetched), so it never
    changes later: records appended afterwards have higher offsets.
    """

    def __init__(self, max_bytes: int, block: int = 1000) -> None:
        self.max_bytes = max_bytes
        self.block = block
        self.blocks: OrderedDict[tuple[Any, int], list[LogRecord]] = OrderedDict()
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
        self.blocks[key] = recs
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
                lo, hi = max(start, blk * B), min(end, blk * B + B - 1)
                out = held if lo == blk * B and hi == blk * B + B - 1 else \
                    [r for r in held if lo <= r.offset <= hi]
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
