"""Where kmevents keeps things in etcd: the one place that builds keys.

Under ``<prefix>`` (``/kmevents/v1`` by default)::

    _meta/partition-map/<cluster>                 {"partition": N}    ingest's cluster pinning
    <generation>/_checkpoints/<partition>         Checkpoint JSON     per Kafka partition
    <generation>/_snapshots/<cluster>/<offset:020d>  index entry      where a snapshot lives
    <generation>/_unreclaimed/<cluster>/<offset:020d>  chunk keys  a pruned snapshot whose tombstones
                                                                   are not all sent yet
    <generation>/_verified/<cluster>              verified point     where the last clean verify got to
    <generation>/_touched/<cluster>/<first:020d>  index block        what a block of offsets touched (history)
    <generation>/_touched_open/<cluster>          index block        the open block so far (history)
    <generation>/_touched_groups/<cluster>/<first:020d>
                                                  JSON               old blocks moved to the snapshots topic
    <generation>/_touched_runs/<cluster>/<level:02d>/<first:020d>
                                                  JSON               which groups hold a hash (history)
    <generation>/_versions/<cluster>/<first:020d>  index entry       where a block's entity versions live (history)
    <generation>/_versions_open/<cluster>/<first:020d>/<from:020d>  record part  the open block's versions,
                                                   a live batch's part each (history)
    <generation>/_hosts/<cluster>/<agent id>      [[offset, host], ...]  which host the log said an agent
                                                   id is on, from which offset (search's names)
    clusters/<cluster>/current               {"generation": "r3"}     which derivation readers use
    clusters/<cluster>/<generation>/<kind>/<id>   entity JSON (whole values)

The generation is ``r<REDUCER_VERSION>`` for live processing; a repair
(``kmevents verify --repair``) builds a fresh generation and then switches
``current`` over, so readers never see a half-rebuilt state (DESIGN.md rule 9).
Entity ids may contain ``/`` (pods are ``namespace/name``): the kind is the
segment right after the generation and the id is everything after it.
"""

from __future__ import annotations

from kmevents.reducer import REDUCER_VERSION


def live_generation() -> str:
    return f"r{REDUCER_VERSION}"


def base_generation(generation: str) -> str:
    """The generation whose partition checkpoints vouch for ``generation``.

    A repair builds ``r<V>.repair-<time>`` for one cluster and switches its
    readers there; the processors keep checkpointing the partition under
    ``r<V>`` (a checkpoint covers every cluster of its partition) while writing
    that cluster's entities under the repaired generation.
    """
    return generation.split(".repair-", 1)[0]


def partition_map_prefix(prefix: str) -> bytes:
    return f"{prefix}/_meta/partition-map/".encode()


def partition_map_key(prefix: str, cluster: str) -> bytes:
    return partition_map_prefix(prefix) + cluster.encode()


def checkpoint_key(prefix: str, partition: int) -> bytes:
    return f"{prefix}/_checkpoints/{partition}".encode()


def checkpoints_prefix(prefix: str) -> bytes:
    return f"{prefix}/_checkpoints/".encode()


def snapshot_index_key(prefix: str, cluster: str, offset: int) -> bytes:
    return f"{prefix}/_snapshots/{cluster}/{offset:020d}".encode()


def snapshot_index_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_snapshots/{cluster}/".encode()


def unreclaimed_key(prefix: str, cluster: str, offset: int) -> bytes:
    return f"{prefix}/_unreclaimed/{cluster}/{offset:020d}".encode()


def unreclaimed_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_unreclaimed/{cluster}/".encode()


def touched_index_key(prefix: str, cluster: str, first: int) -> bytes:
    return f"{prefix}/_touched/{cluster}/{first:020d}".encode()


def touched_index_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_touched/{cluster}/".encode()


def touched_group_key(prefix: str, cluster: str, first: int) -> bytes:
    return f"{prefix}/_touched_groups/{cluster}/{first:020d}".encode()


def touched_group_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_touched_groups/{cluster}/".encode()


def touched_runs_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_touched_runs/{cluster}/".encode()


def touched_open_key(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_touched_open/{cluster}".encode()


def versions_index_key(prefix: str, cluster: str, first: int) -> bytes:
    return f"{prefix}/_versions/{cluster}/{first:020d}".encode()


def versions_index_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_versions/{cluster}/".encode()


def versions_open_key(prefix: str, cluster: str, first: int, start: int) -> bytes:
    return f"{prefix}/_versions_open/{cluster}/{first:020d}/{start:020d}".encode()


def versions_open_prefix(prefix: str, cluster: str, first: int | None = None) -> bytes:
    tail = "" if first is None else f"{first:020d}/"
    return f"{prefix}/_versions_open/{cluster}/{tail}".encode()


def hosts_key(prefix: str, cluster: str, agent_id: str) -> bytes:
    return f"{prefix}/_hosts/{cluster}/{agent_id}".encode()


def hosts_prefix(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_hosts/{cluster}/".encode()


def verified_key(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/_verified/{cluster}".encode()


def current_key(prefix: str, cluster: str) -> bytes:
    return f"{prefix}/clusters/{cluster}/current".encode()


def state_prefix(prefix: str, cluster: str, generation: str) -> bytes:
    return f"{prefix}/clusters/{cluster}/{generation}/".encode()


def entity_key(prefix: str, cluster: str, generation: str, kind: str, id: str) -> bytes:
    return f"{prefix}/clusters/{cluster}/{generation}/{kind}/{id}".encode()


def split_entity_key(state_prefix_bytes: bytes, key: bytes) -> tuple[str, str]:
    """``(kind, id)`` of an entity key under ``state_prefix_bytes``."""
    rest = key[len(state_prefix_bytes):].decode()
    kind, _, id = rest.partition("/")
    return kind, id
