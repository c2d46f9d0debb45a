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
