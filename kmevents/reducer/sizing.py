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
the estimate is an upper bound. It costs 1-2 ms (tests/unit/replay/test_warm.py
holds it to the measured size).
"""

from __future__ import annotations

import itertools

import orjson

from kmevents.reducer.state import ClusterState

ENTITY_JSON_FACTOR = 4
BYTES_PER_KEY = 256
SAMPLE = 16


def estimate_bytes(st: ClusterState) -> int:
    """Estimated bytes ``st`` keeps alive (see the module docstring); cheap, an upper bound.

    Reads forked tables without copying them (``dict.values`` of the storage)."""
    json_bytes = 0
    for t in st._tables.values():
        n = dict.__len__(t)
        if n == 0:
            continue
        step = max(1, n // SAMPLE)
        sizes = [len(orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS))
                 for v in itertools.islice(dict.values(t), 0, None, step)]
        json_bytes += sum(sizes) * n // len(sizes)
    keys = len(st._seen_new) + len(st._seen_old) + sum(len(i) for i in st._terminal.values())
    return ENTITY_JSON_FACTOR * json_bytes + BYTES_PER_KEY * keys + 4096
