"""The persistent cluster -> partition map (DESIGN.md rule 2), kept in etcd.

Each cluster is pinned to one partition of the events topic, so one cluster's
events are totally ordered and the coordinate of any state is
``(cluster, partition, offset)``. The map is never hash-modulo: adding
partitions later moves nothing. A new cluster gets the least-loaded partition
(fewest clusters; ties go to the lowest number), claimed with an etcd
transaction that succeeds only if nobody pinned that cluster meanwhile.

Key: ``<etcd prefix>/_meta/partition-map/<cluster>``, value ``{"partition": N}``.
"""

from __future__ import annotations

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings


class PartitionMap:
    """Cached reads and race-free claims of cluster partitions. ``start()`` connects."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.settings = settings
        self.partitions = partitions
        self._cache: dict[str, int] = {}
        self._client: etcd_adapter.EtcdClient | None = None

    async def start(self) -> None:
        self._client = etcd_adapter.client(self.settings.etcd)
        await self._client.connect()
        await self.refresh()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def refresh(self) -> dict[str, int]:
        assert self._client is not None, "call start() first"
        prefix = layout.partition_map_prefix(self.settings.etcd.prefix)
        _, kvs = await etcd_adapter.range_at(self._client, prefix, range_end=etcd_adapter.prefix_end(prefix))
        self._cache = {kv.key[len(prefix):].decode(): int(orjson.loads(kv.value)["partition"]) for kv in kvs}
        return dict(self._cache)

    async def partition_for(self, cluster: str) -> int:
        """The cluster's partition, claiming the least-loaded one for a new cluster."""
        p = self._cache.get(cluster)
        if p is not None:
            return p
        assert self._client is not None, "call start() first"
        for _ in range(10):
            current = await self.refresh()
            if cluster in current:
                return current[cluster]
            load = [0] * self.partitions
            for q in current.values():
                if q < self.partitions:
                    load[q] += 1
            choice = min(range(self.partitions), key=lambda i: (load[i], i))
            key = layout.partition_map_key(self.settings.etcd.prefix, cluster)
            t = self._client.transactions
            ok, _ = await self._client.transaction(
                compare=[t.version(key) == 0],
                success=[t.put(key, orjson.dumps({"partition": choice}))],
                failure=[],
            )
            if ok:
                self._cache[cluster] = choice
                return choice
        raise RuntimeError(f"could not pin cluster {cluster!r} to a partition after 10 attempts")
