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
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from kmevents.reducer.packed import PackedTable
from kmevents.reducer.state import ClusterState

ENTITY_JSON_FACTOR = 4
#: a packed entity (reducer/packed.py) is its bytes plus the bytes object and its table slot
PACKED_OVERHEAD = 320
BYTES_PER_KEY = 256
SAMPLE = 16


def estimate_bytes(st: ClusterState) -> int:
    """Estimated bytes ``st`` keeps alive (see the module docstring); cheap, an upper bound.

    Reads forked tables without copying them (``dict.values`` of the storage)."""
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
        sizes = [len(v) + PACKED_OVERHEAD if type(v) is bytes else _dict_bytes([v])
                 for v in itertools.islice(dict.values(t), 0, None, step)]
        held += sum(sizes) * n // len(sizes)
    keys = len(st._seen_new) + len(st._seen_old) + sum(len(i) for i in st._terminal.values())
    return held + BYTES_PER_KEY * keys + 4096


def _dict_bytes(values: list[Any]) -> int:
    return sum(ENTITY_JSON_FACTOR * len(orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)) for v in values)
