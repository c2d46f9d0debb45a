"""The persistent cluster -> partition map (DESIGN.md rule 2), kept in etcd.

Each cluster is pinned to one partition of the events topic, so one cluster's
events are totally ordered and the coordinate of any state is
``(cluster, partition, offset)``. The map is never hash-modulo: adding
partitions later moves nothing. A new cluster gets the least-loaded partition
(fewest clusters; ties go to the lowest number), claimed with an etcd
transaction that succeeds only if nobody pinned that cluster meanwhile.

A cluster whose log already exists is never re-pinned by accident: when its
map key is missing (deleted by hand, lost with a restored etcd) but a
checkpoint vouches for its state, the key is written back with the partition
that checkpoint covers, and a warning says so. Pinning it anywhere else would
split its log in two (worked example: ``c`` lives on partition 2 with a
checkpoint there; its key is deleted; the least-loaded partition is 0; without
this check its next events would go to 0 and every reader of partition 2
would miss them).

Key: ``<etcd prefix>/_meta/partition-map/<cluster>``, value ``{"partition": N}``.
"""

from __future__ import annotations

import logging

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store.checkpoint import partitions_of_clusters, read_checkpoints
from kmevents.store.generations import current_generation

log = logging.getLogger("kmevents.store.partition_map")


class PartitionMap:
    """Cached reads and race-free claims of cluster partitions.

    ``start()`` connects (or uses the ``client`` given, which the caller
    keeps open and closes).
    """

    def __init__(self, settings: Settings, partitions: int, *,
                 client: etcd_adapter.EtcdClient | None = None) -> None:
        self.settings = settings
        self.partitions = partitions
        self._cache: dict[str, int] = {}
        self._client = client
        self._own_client = client is None

    async def start(self) -> None:
        if self._client is None:
            self._client = etcd_adapter.client(self.settings.etcd)
            await self._client.connect()
        await self.refresh()

    async def stop(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.close()
        self._client = None

    def _c(self) -> etcd_adapter.EtcdClient:
        assert self._client is not None, "call start() first"
        return self._client

    async def refresh(self) -> dict[str, int]:
        prefix = layout.partition_map_prefix(self.settings.etcd.prefix)
        _, kvs = await etcd_adapter.range_at(self._c(), prefix, range_end=etcd_adapter.prefix_end(prefix))
        self._cache = {kv.key[len(prefix):].decode(): int(orjson.loads(kv.value)["partition"]) for kv in kvs}
        return dict(self._cache)

    def cached(self, cluster: str) -> int | None:
        """The cluster's partition as last read (None: not pinned, or not yet seen)."""
        return self._cache.get(cluster)

    async def pinned(self, cluster: str) -> int | None:
        """The cluster's partition as etcd has it now (None: not pinned)."""
        _, kvs = await etcd_adapter.range_at(self._c(), layout.partition_map_key(self.settings.etcd.prefix, cluster))
        if not kvs:
            self._cache.pop(cluster, None)
            return None
        p = self._cache[cluster] = int(orjson.loads(kvs[0].value)["partition"])
        return p

    async def claim(self, cluster: str, partition: int) -> int:
        """Pin ``cluster`` to ``partition`` unless it is pinned already; return where it is pinned."""
        key = layout.partition_map_key(self.settings.etcd.prefix, cluster)
        c = self._c()
        t = c.transactions
        ok, _ = await c.transaction(compare=[t.version(key) == 0],
                                    success=[t.put(key, orjson.dumps({"partition": partition}))], failure=[])
        if ok:
            self._cache[cluster] = partition
            return partition
        now = await self.pinned(cluster)
        return partition if now is None else now

    async def partition_for(self, cluster: str) -> int:
        """The cluster's partition, claiming the least-loaded one for a new cluster."""
        p = self._cache.get(cluster)
        if p is not None:
            return p
        for _ in range(10):
            current = await self.refresh()
            if cluster in current:
                return current[cluster]
            derived = await self.derived_partition(cluster)
            if derived is not None:
                log.warning("partition-map key missing for a cluster with derived state: pinned again to the "
                            "partition its checkpoint covers", extra={"cluster": cluster, "partition": derived})
                return await self.claim(cluster, derived)
            load = [0] * self.partitions
            for q in current.values():
                if q < self.partitions:
                    load[q] += 1
            choice = min(range(self.partitions), key=lambda i: (load[i], i))
            got = await self.claim(cluster, choice)
            if got == choice or cluster in self._cache:
                return got
        raise RuntimeError(f"could not pin cluster {cluster!r} to a partition after 10 attempts")

    async def derived_partition(self, cluster: str) -> int | None:
        """The partition whose checkpoint vouches for ``cluster``'s derived state (None: never derived).

        Read through the cluster's ``current`` generation: its base generation's
        checkpoints name the clusters each partition holds.
        """
        prefix = self.settings.etcd.prefix
        gen = await current_generation(self._c(), prefix, cluster)
        if gen is None:
            return None
        _, cps = await read_checkpoints(self._c(), prefix, layout.base_generation(gen))
        return partitions_of_clusters(cps).get(cluster)
