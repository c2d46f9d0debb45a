"""Which derivation readers use: a cluster's ``current`` generation pointer (DESIGN.md rule 9).

``<prefix>/clusters/<cluster>/current`` holds ``{"generation": "r3"}``; readers (the API,
verify, the monitor) read the cluster's entities under that generation. The workers
write it when they first fold a cluster; ``kmevents verify --repair`` switches it to a
rebuilt ``r<V>.repair-<time>`` generation. Absent: the live generation.
"""

from __future__ import annotations

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter


def pointer_value(generation: str) -> bytes:
    """The bytes of a ``current`` pointer naming ``generation``."""
    return orjson.dumps({"generation": generation})


def parse_pointer(value: bytes) -> str | None:
    """The generation a pointer's bytes name (None: not a pointer)."""
    try:
        gen = orjson.loads(value).get("generation")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return gen if isinstance(gen, str) and gen else None


async def current_generation(client: etcd_adapter.EtcdClient, prefix: str, cluster: str, *,
                             revision: int = 0) -> str | None:
    """The generation readers of ``cluster`` use, at ``revision`` (0: the latest); None when
    the cluster has no pointer (never derived: readers assume the live generation)."""
    _, kvs = await etcd_adapter.range_at(client, layout.current_key(prefix, cluster), revision=revision)
    return parse_pointer(kvs[0].value) if kvs else None
