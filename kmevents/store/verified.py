"""Where the last clean ``kmevents verify`` of a cluster got to, so the next one need not refold
the whole log (issue 17).

A verify that found no drift records the newest snapshot whose content it checked equal to
its own fold (``snapshot_offset``, with the chain head there): that snapshot is then as good
as the log up to its offset. The next verify still follows the hash chain from the start of
the log (cheap: no decoding) and checks that the chain at ``snapshot_offset`` is the one
recorded, then loads that snapshot and folds only the records after it, checking every
newer snapshot and etcd against that fold. ``kmevents verify --full`` ignores the point and
folds from the start.

Key: ``<prefix>/<generation>/_verified/<cluster>``, value::

    {"cluster", "snapshot_offset", "chain", "checkpoint_offset", "reducer_version", "at"}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter


@dataclass(frozen=True)
class VerifiedPoint:
    """A clean verify's point: the snapshot at ``snapshot_offset`` equals the fold of the log there."""

    cluster: str
    snapshot_offset: int
    chain: str
    #: the checkpoint the run compared etcd at
    checkpoint_offset: int
    reducer_version: int
    #: when (UTC, ISO 8601)
    at: str


def _key(prefix: str, generation: str, cluster: str) -> bytes:
    return layout.verified_key(f"{prefix}/{layout.base_generation(generation)}", cluster)


async def read_point(client: etcd_adapter.EtcdClient, prefix: str, generation: str,
                     cluster: str) -> VerifiedPoint | None:
    _, kvs = await etcd_adapter.range_at(client, _key(prefix, generation, cluster))
    if not kvs:
        return None
    try:
        return VerifiedPoint(**orjson.loads(kvs[0].value))
    except (orjson.JSONDecodeError, TypeError):
        return None  # written by another version: a full verify writes it anew


async def write_point(client: etcd_adapter.EtcdClient, prefix: str, generation: str, cluster: str, *,
                      snapshot_offset: int, chain: str, checkpoint_offset: int,
                      reducer_version: int) -> VerifiedPoint:
    point = VerifiedPoint(cluster, snapshot_offset, chain, checkpoint_offset, reducer_version,
                          dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    await client.put(_key(prefix, generation, cluster), orjson.dumps(asdict(point), option=orjson.OPT_SORT_KEYS))
    return point
