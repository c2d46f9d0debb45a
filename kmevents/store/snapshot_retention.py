"""Which stored snapshots to keep as a cluster's log grows, and removing the others.

The worker stores a full snapshot every 20,000 events of a cluster and a delta every 4,000
(processors/derive.py). At the large profile a full snapshot is ~53 MB compressed: the
snapshots topic grows faster than the events topic it summarizes (2.5 GB of snapshots for
1.6 GB of log at 1.5M events, BENCHMARKS.md), forever. Old history needs far fewer of them:
a point-in-time read folds from the snapshot before its offset, so one snapshot per
``thin_every`` offsets bounds that fold, and deltas only pay where reads are frequent.

:func:`plan` keeps, of one cluster's index entries (oldest first):

- the newest ``keep_recent`` full snapshots and every delta based on one of them (the
  worker's next restore and deltas use the newest full; recent time travel stays as fast);
- before them, the first full snapshot of each ``thin_every`` offsets (``offset //
  thin_every``), and no deltas;
- every entry ``also_keep`` names (the last clean verify's snapshot: ``kmevents/store/verified.py``).

:func:`prune` removes the rest: the index entries first (one etcd transaction each, on the
entry's revision as read, so an entry rewritten meanwhile is left alone), then a tombstone (the
chunk's key, no value) for each of their chunks in the snapshots topic. A reader that found
an entry before its removal reads missing chunks and takes the snapshot before it, as for
any unreadable snapshot. The entry's removal writes, in the same etcd transaction, an *unreclaimed* record of its
chunks' keys (``<generation>/_unreclaimed/<cluster>/<offset>``), deleted once their tombstones
are flushed: a prune that fails between the two (Kafka down, the process killed) leaves the
record, and the next prune of that cluster sends those tombstones first. Without it the chunks
stayed in the topic for good, as no index entry named them any more. The topic reclaims the bytes when it is compacted
(``cleanup.policy=compact``, what kmevents creates it with); a topic created with ``delete``
keeps them until its policy is changed (:func:`prune` reports the policy it found).

Chunk keys are ``<generation>/<cluster>/<offset>/<i>/<n>`` (the entry's ``chunk_key`` is the
part before ``/<i>/<n>``); entries written before it name no ``chunk_key`` and their chunks
were keyed ``<cluster>/<offset>/<i>/<n>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from kmevents.store.snapshots import is_delta

#: Defaults of ``kmevents snapshots prune``: the newest 24 full snapshots (480,000 events of a
#: cluster at the worker's default cadence) stay with their deltas, and before them one full
#: snapshot per 100,000 offsets (a cold read there folds at most that many records: ~3 s at the
#: large profile's fold rate).
KEEP_RECENT = 24
THIN_EVERY = 100_000

log = logging.getLogger(__name__)


@dataclass
class Plan:
    keep: list[dict[str, Any]] = field(default_factory=list)
    drop: list[dict[str, Any]] = field(default_factory=list)
    #: records of snapshots removed before whose tombstones were not all sent (:func:`plan_for`)
    unreclaimed: list[dict[str, Any]] = field(default_factory=list)
    #: such records that cannot be read (hand-edited, damaged): ``{"key": ..., "error": ...}``,
    #: left in etcd and named, so that the rest of the prune still runs (:func:`unreclaimed`)
    unreadable: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def brief(e: dict[str, Any]) -> dict[str, Any]:
            return {"offset": int(e["offset"]), "kind": "delta" if is_delta(e) else "full",
                    "stored_bytes": int(e.get("stored_bytes") or 0)}

        return {"keep": [brief(e) for e in self.keep], "drop": [brief(e) for e in self.drop],
                "kept_bytes": sum(int(e.get("stored_bytes") or 0) for e in self.keep),
                "dropped_bytes": sum(int(e.get("stored_bytes") or 0) for e in self.drop),
                "unreclaimed": len(self.unreclaimed), "unreadable_unreclaimed": list(self.unreadable)}


def plan(entries: list[dict[str, Any]], *, keep_recent: int = KEEP_RECENT, thin_every: int = THIN_EVERY,
         also_keep: frozenset[int] = frozenset()) -> Plan:
    """What to keep of one cluster's index ``entries`` (oldest first): see the module docstring."""
    if keep_recent < 1 or thin_every < 1:
        raise ValueError("keep_recent and thin_every must be at least 1")
    fulls = sorted(int(e["offset"]) for e in entries if not is_delta(e))
    recent = set(fulls[-keep_recent:])
    oldest_recent = min(recent, default=None)
    kept_fulls = set(recent)
    buckets: set[int] = set()
    for off in fulls:
        if oldest_recent is not None and off >= oldest_recent:
            break
        if off // thin_every not in buckets:
            buckets.add(off // thin_every)
            kept_fulls.add(off)
    out = Plan()
    for e in entries:
        off = int(e["offset"])
        keep = (off in also_keep or (int(e["base"]) in recent if is_delta(e) else off in kept_fulls))
        (out.keep if keep else out.drop).append(e)
    # a kept delta needs its base
    bases = {int(e["base"]) for e in out.keep if is_delta(e)}
    if bases - {int(e["offset"]) for e in out.keep if not is_delta(e)}:
        moved = [e for e in out.drop if not is_delta(e) and int(e["offset"]) in bases]
        out.drop = [e for e in out.drop if e not in moved]
        out.keep = sorted(out.keep + moved, key=lambda e: int(e["offset"]))
    return out


async def plan_for(settings: Any, client: Any, cluster: str, generation: str, *, keep_recent: int = KEEP_RECENT,
                   thin_every: int = THIN_EVERY, entries: list[dict[str, Any]] | None = None) -> Plan:
    """:func:`plan` for one cluster as stored now: its index entries (read unless given) and the
    last clean verify's snapshot, which always stays. What the command and the worker prune by."""
    from kmevents.store import verified
    from kmevents.store.snapshots import index_entries

    if entries is None:
        entries = await index_entries(settings, client, cluster, generation)
    point = await verified.read_point(client, settings.etcd.prefix, generation, cluster)
    keep = frozenset({point.snapshot_offset}) if point is not None else frozenset()
    out = plan(entries, keep_recent=keep_recent, thin_every=thin_every, also_keep=keep)
    out.unreclaimed = await unreclaimed(settings, client, cluster, generation, unreadable=out.unreadable)
    return out


async def unreclaimed(settings: Any, client: Any, cluster: str, generation: str, *,
                      unreadable: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The cluster's records of removed snapshots whose tombstones were not all sent: each
    ``{"chunk_keys": [...], "partition": p, "offset": o}`` with its etcd ``_key`` and ``_rev``.
    A record that is not of that shape is left out (one bad record must not stop every later
    prune of the cluster): appended to ``unreadable`` with what is wrong, and logged."""
    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter

    prefix = layout.unreclaimed_prefix(f"{settings.etcd.prefix}/{generation}", cluster)
    _, kvs = await etcd_adapter.range_at(client, prefix, range_end=etcd_adapter.prefix_end(prefix))
    out = []
    for kv in kvs:
        key = kv.key.decode(errors="replace")
        try:
            r = record_of(kv.value)
        except ValueError as exc:
            log.warning("unreadable record of a removed snapshot's chunks; left in etcd", extra={
                "key": key, "error": str(exc),
                "hint": "its chunks may still lack tombstones: read it with `etcdctl get KEY`, then remove "
                        "it with `etcdctl del KEY`"})
            if unreadable is not None:
                unreadable.append({"key": key, "error": str(exc)})
            continue
        r["_key"], r["_rev"] = key, kv.mod_revision
        out.append(r)
    return out


def record_of(raw: bytes) -> dict[str, Any]:
    """An unreclaimed record's value checked: ``chunk_keys`` a list of str, ``partition`` and
    ``offset`` ints >= 0; raises ValueError saying what is wrong."""
    try:
        r = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if type(r) is not dict:
        raise ValueError(f"a JSON {type(r).__name__}, not an object")
    keys = r.get("chunk_keys")
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise ValueError("chunk_keys is not a list of strings")
    for name in ("partition", "offset"):
        if type(r.get(name)) is not int or r[name] < 0:
            raise ValueError(f"{name} is not an int >= 0: {r.get(name)!r}")
    return dict(r)


def chunk_keys(entry: dict[str, Any]) -> list[bytes]:
    """The Kafka keys of the entry's chunks, as the writer gave them."""
    n = len(entry["chunk_offsets"])
    stem = entry.get("chunk_key") or f"{entry['cluster']}/{entry['offset']}"
    return [f"{stem}/{i}/{n}".encode() for i in range(n)]


async def prune(settings: Any, client: Any, producer: Any, drop: list[dict[str, Any]],
                unreclaimed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Remove the ``drop`` entries (with ``_key`` and ``_rev`` as :func:`index_entries` gives them):
    each index entry in etcd if it is unchanged since it was read, with an unreclaimed record of
    its chunks in the same transaction; then tombstones for its chunks, and for those of the
    ``unreclaimed`` records an earlier prune left (:func:`plan_for`); then, once the tombstones
    are flushed, the records. What was removed, and the snapshots topic's cleanup policy
    (``compact`` reclaims the bytes)."""
    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter

    removed, changed = [], []
    records = [(r["_key"].encode(), int(r["_rev"]), [k.encode() for k in r["chunk_keys"]], int(r["partition"]))
               for r in unreclaimed or ()]
    for e in drop:
        key = e["_key"].encode()
        tail = layout.snapshot_index_key("", e["cluster"], int(e["offset"])).decode()
        if not e["_key"].endswith(tail):
            raise ValueError(f"index key {e['_key']!r} is not where {tail!r} puts a snapshot's entry")
        gen_prefix = e["_key"][:-len(tail)]
        rkey = layout.unreclaimed_key(gen_prefix, e["cluster"], int(e["offset"]))
        chunks = chunk_keys(e)
        record = orjson.dumps({"chunk_keys": [k.decode() for k in chunks], "offset": int(e["offset"]),
                               "partition": int(e["snapshot_partition"])})
        ok, rev = await etcd_adapter.txn_if_unchanged(client, key, int(e["_rev"]), {key: None, rkey: record})
        if ok:
            removed.append(e)
            records.append((rkey, rev, chunks, int(e["snapshot_partition"])))
        else:
            changed.append(int(e["offset"]))
    topic = settings.kafka.snapshots_topic
    for _, _, chunks, part in records:
        for k in chunks:
            await producer.send(topic, None, key=k, partition=part)
    await producer.flush()
    for rkey, rev, _, _ in records:  # (a record rewritten meanwhile is left for the next prune)
        await etcd_adapter.txn_if_unchanged(client, rkey, rev, {rkey: None})
    policy = None
    try:
        described = await kafka_adapter.describe_topics(settings.kafka, [topic])
        policy = described.get(topic, {}).get("configs", {}).get("cleanup.policy")
    except Exception:  # noqa: BLE001 - the policy is advice, the prune is done
        policy = None
    return {"removed": len(removed), "removed_bytes": sum(int(e.get("stored_bytes") or 0) for e in removed),
            "tombstones": sum(len(r[2]) for r in records),
            "unreclaimed_sent": len(unreclaimed or ()),
            "changed_meanwhile": changed, "cleanup_policy": policy}
