"""How many bytes a folded state keeps alive, estimated cheaply (the API bounds its caches by it).

How many bytes a held state takes in memory is estimated, not measured (measuring
means walking millions of objects). The estimate: for each entity table, the JSON
size of up to ``SAMPLE`` entities spread over it, scaled to the table's length, times
``ENTITY_JSON_FACTOR``; plus ``BYTES_PER_KEY`` per dedupe key and terminal-index
entry (with the derived indexes they come with). Measured with tracemalloc on
simulated clusters of 5k-100k events, for states loaded from snapshots (the
largest form: their strings are not shared): entity tables take 3.5-3.6x their
JSON bytes, the rest 180-260 bytes per key; the 100k-event state takes 92 MiB and
is estimated at 99 MiB. A state folded from the log takes less (37 MiB there), so
the estimate is an upper bound. A packed entity (pods and tasks at rest,
reducer/packed.py) counts as its bytes plus ``PACKED_OVERHEAD``. It costs 1-2 ms (tests/unit/replay/test_warm.py
holds it to the measured size).

A frozen fork (reducer/fork.py) shares every entity it did not change with the
state it was forked from. :func:`estimate_bytes` with ``base`` counts only what
the fork does not share with ``base``: its entities that are not ``base``'s very
objects, its own tables' hash tables (``sys.getsizeof``: exact), its dedupe window's
copy (its set and bitmap, an int object per digest of the set, its sorted runs),
and its own copies of the bookkeeping (``FORK_BYTES_PER_KEY`` per terminal-index and
derived-index entry: the copies share the keys' objects), counting only the containers
it does not share with ``base``. The API's cache (replay/warm.py) charges ``base`` once
for all the forks that share it. At the large profile's 1.5M events a fork folded ~1,000-4,000
records on is estimated at ~25-30 MiB for the 14-22 MiB it adds to the process (73 MiB
before the shared containers and the exact sizes: BENCHMARKS.md, "Warm reads within an
interval at full size").
"""

from __future__ import annotations

import itertools
import sys
from functools import partial
from operator import is_not
from typing import Any

import orjson

from kmevents.reducer.dedupe import Recent
from kmevents.reducer.packed import PackedTable, written_since
from kmevents.reducer.state import ClusterState

ENTITY_JSON_FACTOR = 4
#: a packed entity (reducer/packed.py) is its bytes plus the bytes object and its table slot
PACKED_OVERHEAD = 320
BYTES_PER_KEY = 256
SAMPLE = 16
#: an int object of a dedupe digest (64 bits: 36 bytes, allocated in 40)
INT_BYTES = 40
#: a fork's own copy of a bookkeeping entry (a set or dict slot; the key objects are shared)
FORK_BYTES_PER_KEY = 96


def estimate_bytes(st: ClusterState, base: ClusterState | None = None) -> int:
    """Estimated bytes ``st`` keeps alive (see the module docstring); cheap, an upper bound.
    With ``base`` (an ancestor ``st`` was forked from, directly or through other forks):
    the bytes ``st`` keeps alive beyond what ``base`` does.

    Reads forked tables without copying them (``dict.values`` of the storage)."""
    if base is not None:
        return _own_bytes(st, base)
    held = 0
    for t in st._tables.values():
        n = dict.__len__(t)
        if n == 0:
            continue
        if isinstance(t, PackedTable) and t.hot_count:  # its unpacked dicts, sampled apart from its bytes
            hot = list(itertools.islice(t._hot, SAMPLE))
            n_hot = t.hot_count
            held += _dict_bytes([dict.__getitem__(t, k) for k in hot]) * n_hot // len(hot)
            n -= n_hot
        step = max(1, n // SAMPLE)
        sizes = [_value_bytes(v) for v in itertools.islice(dict.values(t), 0, None, step)]
        held += sum(sizes) * n // len(sizes)
    keys = len(st._seen_new) + len(st._seen_old) + sum(len(i) for i in st._terminal.values())
    return held + BYTES_PER_KEY * keys + 4096


def _value_bytes(v: Any) -> int:
    """One table value's estimate: packed bytes and their overhead, or a dict's JSON size."""
    return len(v) + PACKED_OVERHEAD if type(v) is bytes else _dict_bytes([v])


def _dict_bytes(values: list[Any]) -> int:
    return sum(ENTITY_JSON_FACTOR * len(orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)) for v in values)


def _own_bytes(st: ClusterState, base: ClusterState) -> int:
    """What ``st`` holds beyond ``base``: entities that are not ``base``'s objects (all of
    them, not a sample: an identity test a value), its tables' slots and its bookkeeping."""
    own = 0
    for kind, t in st._tables.items():
        n = dict.__len__(t)
        if n == 0:
            continue
        own += sys.getsizeof(t)  # its own hash table (the keys and values are counted apart, or shared)
        theirs = base._tables.get(kind, {})
        written = written_since(t, theirs) if type(t) is PackedTable else None
        if written is not None:  # a copy of base's table: only the ids written since can differ
            get, get_theirs = partial(dict.get, t), partial(dict.get, theirs)
            mine = [v for k in written if (v := get(k)) is not None and get_theirs(k) is not v]
        else:  # at C speed: a Python loop over 360k entities took ~90 ms (1.5M events)
            differs = map(is_not, dict.values(t), map(partial(dict.get, theirs), dict.keys(t)))
            mine = list(itertools.compress(dict.values(t), differs))
        if not mine:
            continue
        if type(mine[0]) is bytes and all(type(v) is bytes for v in mine):
            own += sum(len(v) for v in mine) + PACKED_OVERHEAD * len(mine)
            continue
        step = max(1, len(mine) // SAMPLE)
        sample = mine[::step]
        sizes = [_value_bytes(v) for v in sample]
        own += sum(sizes) * len(mine) // len(sample)
    own += _window_bytes(st._seen_new)
    if st._seen_old is not base._seen_old:  # shared by a fork until its window rotates
        own += _window_bytes(st._seen_old)
    keys = _unshared(st._terminal, base._terminal)
    if st._task_keys is not base._task_keys:
        keys += len(st._task_keys)
    keys += _unshared(st._pods_by_ns, base._pods_by_ns) + _unshared(st._svc_members, base._svc_members)
    keys += _unshared(st._rc_members, base._rc_members, lambda m: len(m[0]) + len(m[1]))
    return own + FORK_BYTES_PER_KEY * keys + 4096


def _window_bytes(w: Any) -> int:
    """A dedupe window half's own memory (a set of digests, or dedupe.Recent): its set and
    bitmap exactly, an int object for each digest of the set, and its sorted runs (a fork's
    copy shares its parent's runs until it spills a new one: counted anyway, an upper bound)."""
    if isinstance(w, Recent):
        return (sys.getsizeof(w._set) + INT_BYTES * len(w._set) + sys.getsizeof(w.bits)
                + sum(map(sys.getsizeof, w._runs)))
    return sys.getsizeof(w) + INT_BYTES * len(w)


def _unshared(mine: dict[Any, Any], theirs: dict[Any, Any], size: Any = len) -> int:
    """The entries of bookkeeping ``mine`` (a dict of containers: one per namespace, RC, service
    or retained kind) that are not ``theirs``: its own slots, and the size of each container
    that is not the very object ``theirs`` holds. A fork copies such a container only when its
    fold first reads it (fork.py ``_LAZY``); the others stay shared with its ancestor: counting
    them all made a fork of the large profile's 1.5M-event state ~73 MiB by estimate against
    ~14-22 MiB it added to the process (BENCHMARKS.md, "Warm reads within an interval at full
    size")."""
    if mine is theirs:
        return 0
    get = theirs.get
    return len(mine) + sum(size(v) for k, v in mine.items() if get(k) is not v)
