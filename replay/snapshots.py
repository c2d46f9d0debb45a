"""Reading the processors' snapshots: the index in etcd, the chunks in the snapshots topic.

The worker (processors/worker.py ``write_snapshot``) writes a cluster's
state at a committed checkpoint as chunks to the snapshots topic and then an
index entry at ``<prefix>/<generation>/_snapshots/<cluster>/<offset:020d>``::

    {"cluster", "offset", "chain", "snapshot_partition", "chunk_offsets",
     "bytes", "reducer_version", "codec", "stored_bytes"}

``codec`` is ``"zstd"`` when the chunks hold the zstd-compressed bytes (the
worker's default; ``bytes`` is the uncompressed size, ``stored_bytes`` the
stored one); absent in older entries (the chunks hold the bytes as they are).

Both the worker (when it takes a partition) and replay (to start a
point-in-time query from the newest snapshot at or before the target,
DESIGN.md rule 7) read them through this module. Archives carry snapshots
too (replay/archive.py): :class:`ArchiveSnapshots` offers them to replay the
same way, so a point-in-time read from archives alone is bounded as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from kmevents.replay.warm import load_snapshot

from kmevents import layout
from kmevents.reducer import REDUCER_VERSION, ClusterState, SnapshotError
from kmevents.settings import Settings

if TYPE_CHECKING:  # the clients load where used: reading archives alone needs neither (cold start)
    from kmevents.adapters import etcd as etcd_adapter

log = logging.getLogger("kmevents.replay.snapshots")


async def index_entries(settings: Settings, client: etcd_adapter.EtcdClient, cluster: str,
                        generation: str | None = None) -> list[dict[str, Any]]:
    """The cluster's snapshot index entries, oldest first (each with its etcd ``_key``)."""
    from kmevents.adapters import etcd as etcd_adapter

    gen = generation or layout.live_generation()
    prefix = layout.snapshot_index_prefix(f"{settings.etcd.prefix}/{gen}", cluster)
    _, kvs = await etcd_adapter.range_at(client, prefix, range_end=etcd_adapter.prefix_end(prefix))
    out = []
    for kv in kvs:
        e = orjson.loads(kv.value)
        e["_key"] = kv.key.decode()
        out.append(e)
    return sorted(out, key=lambda e: int(e["offset"]))


async def read_bytes(settings: Settings, entry: dict[str, Any], reader: Any = None) -> bytes | None:
    """The snapshot's bytes (chunks joined), or None when a chunk is missing from the topic.

    ``reader``: a ``kafka_adapter.PartitionReader`` of the entry's snapshot partition, kept
    open by a long-lived caller (else a consumer is made for this read).
    """
    from kmevents.adapters import kafka as kafka_adapter

    k = settings.kafka
    offsets = [int(o) for o in entry["chunk_offsets"]]
    if reader is not None:
        recs = []
        async for b in reader.batches(min(offsets), max(offsets), batch=len(offsets)):
            recs.extend(b)
    else:
        recs = await kafka_adapter.read_range(k, k.snapshots_topic, int(entry["snapshot_partition"]),
                                              min(offsets), max(offsets))
    by_offset = {r.offset: r.value for r in recs}
    if any(o not in by_offset for o in offsets):
        log.warning("snapshot chunks missing", extra={"cluster": entry.get("cluster"), "offset": entry.get("offset")})
        return None
    data = b"".join(by_offset[o] or b"" for o in offsets)
    codec = entry.get("codec")
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=int(entry["bytes"]))
    if codec not in (None, "none"):
        log.warning("snapshot codec unknown: %s", codec)
        return None
    return data


@dataclass
class Loaded:
    """A snapshot loaded for replay: the state at ``offset`` and the chain head there."""

    state: ClusterState
    offset: int
    chain: str
    entry: dict[str, Any]


class Snapshots:
    """Where replay finds snapshots: ``entries`` (oldest first, each with ``offset``,
    ``chain`` and ``reducer_version``) and ``load`` (the state, or None when unusable)."""

    loads = 0
    #: ``gc.freeze`` after a load (``warm.load_snapshot``); a long-lived reader turns it off
    freeze = True

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        """The snapshot's canonical bytes (None when they cannot be read)."""
        raise NotImplementedError

    async def load(self, entry: dict[str, Any]) -> ClusterState | None:
        data = await self.state_bytes(entry)
        self.loads += 1
        if data is None:
            return None
        try:
            return load_snapshot(data, freeze=self.freeze)
        except SnapshotError as exc:
            log.warning("snapshot not loadable: %s", exc, extra={"offset": entry.get("offset")})
            return None

    async def best(self, cluster: str, *, at_or_before: int, occurred_bound: str | None = None) -> Loaded | None:
        """Newest loadable snapshot with ``offset <= at_or_before``.

        With ``occurred_bound`` (``--at``), also every event in the snapshot must
        have ``occurred_at <= occurred_bound``: its ``max_occurred_at`` only grows
        with the offset, so a binary search over the index finds the newest one.
        """
        cands = [e for e in await self.entries(cluster)
                 if int(e["offset"]) <= at_or_before and int(e.get("reducer_version", REDUCER_VERSION)) == REDUCER_VERSION]
        if occurred_bound is not None:
            lo, hi, found = 0, len(cands) - 1, None
            while lo <= hi:
                mid = (lo + hi) // 2
                st = await self.load(cands[mid])
                if st is None:
                    hi = mid - 1
                    continue
                if (st.max_occurred_at or "") <= occurred_bound:
                    found = Loaded(st, int(cands[mid]["offset"]), str(cands[mid]["chain"]), cands[mid])
                    lo = mid + 1
                else:
                    hi = mid - 1
            return found
        for e in reversed(cands):
            st = await self.load(e)
            if st is not None:
                return Loaded(st, int(e["offset"]), str(e["chain"]), e)
        return None


class SnapshotStore(Snapshots):
    """Finds and loads the newest usable snapshot at or before a target. ``client`` is connected."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient, generation: str | None = None,
                 reader_of: Callable[[int], Any] | None = None) -> None:
        """``reader_of(snapshot_partition)``: a kept-open reader of the snapshots topic (optional)."""
        self.settings = settings
        self.client = client
        self.generation = generation
        self.reader_of = reader_of
        self.loads = 0

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        return await index_entries(self.settings, self.client, cluster, self.generation)

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        reader = self.reader_of(int(entry["snapshot_partition"])) if self.reader_of is not None else None
        return await read_bytes(self.settings, entry, reader)


class ArchiveSnapshots(Snapshots):
    """The snapshots carried by archives (``kmevents archive export`` keeps some)."""

    def __init__(self, archives: list[Any]) -> None:
        """``archives``: ``sources.ArchiveSource`` s (their headers list the snapshots)."""
        self.archives = archives

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        out = []
        for a in self.archives:
            if a.cluster != cluster:
                continue
            for i, meta in enumerate(a.header.get("snapshots") or []):
                out.append({**meta, "cluster": cluster, "_archive": str(a.path), "_index": i})
        return sorted(out, key=lambda e: int(e["offset"]))

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        from kmevents.replay import archive

        try:
            return archive.read_snapshot(entry["_archive"], int(entry["_index"]))
        except (archive.ArchiveError, OSError) as exc:
            log.warning("archive snapshot not readable: %s", exc)
            return None


class CombinedSnapshots(Snapshots):
    """Several places' snapshots as one (archives and the snapshot store of the topic they precede)."""

    def __init__(self, parts: list[Snapshots]) -> None:
        self.parts = parts

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        out = [{**e, "_part": i} for i, p in enumerate(self.parts) for e in await p.entries(cluster)]
        return sorted(out, key=lambda e: int(e["offset"]))

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        return await self.parts[int(entry["_part"])].state_bytes(entry)

    async def load(self, entry: dict[str, Any]) -> ClusterState | None:
        return await self.parts[int(entry["_part"])].load(entry)
