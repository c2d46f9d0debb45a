"""The per-partition checkpoint kept in etcd beside the state it vouches for.

``offset`` is the last offset of the partition whose effect is fully in etcd
(-1: nothing yet). ``chains`` maps each cluster of the partition to its chain
head after that offset. ``reducer_version`` says which fold derived the state.
``annotations`` counts the fold's annotations by kind so far (they are a
recomputable output of the fold; verify lists them). ``worker`` names the
worker that wrote it (for operators; fencing uses the key's mod revision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter


@dataclass
class Checkpoint:
    partition: int
    offset: int = -1
    chains: dict[str, str] = field(default_factory=dict)
    reducer_version: int = 0
    generation: str = ""
    annotations: dict[str, int] = field(default_factory=dict)
    worker: str = ""
    #: etcd mod_revision of the checkpoint key when read (0: absent); not stored.
    mod_revision: int = 0

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "partition": self.partition, "offset": self.offset, "chains": self.chains,
                "reducer_version": self.reducer_version, "generation": self.generation,
                "annotations": self.annotations, "worker": self.worker,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, mod_revision: int = 0) -> Checkpoint:
        d: dict[str, Any] = orjson.loads(data)
        return cls(
            partition=int(d["partition"]), offset=int(d["offset"]), chains=dict(d.get("chains", {})),
            reducer_version=int(d.get("reducer_version", 0)), generation=str(d.get("generation", "")),
            annotations=dict(d.get("annotations", {})), worker=str(d.get("worker", "")),
            mod_revision=mod_revision,
        )


async def read_checkpoint(client: etcd_adapter.EtcdClient, prefix: str, generation: str, partition: int, *,
                          revision: int = 0) -> Checkpoint | None:
    """The checkpoint of ``partition`` under ``generation`` (None: never written), at ``revision``
    (0: the latest)."""
    _, kvs = await etcd_adapter.range_at(client, layout.checkpoint_key(f"{prefix}/{generation}", partition),
                                         revision=revision)
    if not kvs:
        return None
    return Checkpoint.from_bytes(kvs[0].value, mod_revision=kvs[0].mod_revision)


async def read_checkpoints(client: etcd_adapter.EtcdClient, prefix: str, generation: str | None = None, *,
                           revision: int = 0) -> tuple[int, dict[int, Checkpoint]]:
    """Every partition's checkpoint under ``generation`` (default: the live one), read at one
    revision, which is returned first."""
    cp = layout.checkpoints_prefix(f"{prefix}/{generation or layout.live_generation()}")
    rev, kvs = await etcd_adapter.range_at(client, cp, range_end=etcd_adapter.prefix_end(cp), revision=revision)
    out = {}
    for kv in kvs:
        ck = Checkpoint.from_bytes(kv.value, mod_revision=kv.mod_revision)
        out[ck.partition] = ck
    return rev, out


def partitions_of_clusters(checkpoints: dict[int, Checkpoint]) -> dict[str, int]:
    """``cluster -> partition`` as the checkpoints' chains say (each names its clusters)."""
    return {cluster: ck.partition for ck in checkpoints.values() for cluster in ck.chains}
