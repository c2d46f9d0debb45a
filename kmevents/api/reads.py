"""Reading derived state from etcd for the API, every response at ONE revision.

A request first reads the cluster's pointers (``current`` generation, the
partition map entry, the partition's checkpoint) in one range request per key
**at the revision the first answer carried**; every later read of the same
request passes that revision. So a response is a consistent cut of etcd, and
the checkpoint read at that cut says which offset of the log it reflects::

    X-Kmevents-Revision: 4711         etcd revision of the whole response
    X-Kmevents-Offset:   1200         checkpoint offset (last event whose effect is in etcd)
    X-Kmevents-Partition: 2

Keys ahead of the checkpoint. An event whose effect exceeds one etcd
transaction spans several; until the last one (which carries the checkpoint)
commits, some keys hold values newer than the checkpoint (DESIGN.md rule 3).
They are recognisable: their ``mod_revision`` is newer than the checkpoint
key's. Worked example: checkpoint written at revision 90 (offset 1200);
``agent/S1`` and ``task/t1..t127`` written at revision 95 by the first half of
offset 1201; a read at revision 96 sees those 128 keys with mod_revision 95 >
90: they are flagged ``ahead`` (header ``X-Kmevents-Ahead`` counts them, each
item says so) rather than silently mixed with offset-1200 state.

After a repair (``kmevents verify --repair --yes``) readers use a generation
``r<V>.repair-<time>`` whose keys were all staged after the live checkpoint was
last written; they are vouched for by that generation's own checkpoint (written
after them), until a worker writes the live checkpoint again. So a key is ahead
only when it is newer than both: comparing with the live checkpoint alone
flagged every key of a repaired cluster (``X-Kmevents-Ahead`` = the item count).

Pagination: a continue token carries the revision and the last key returned,
so page 2 is read at the same revision as page 1 (like Kubernetes' list
``continue``); once etcd compacted that revision the token answers 410.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint


@dataclass
class View:
    """Where a response reads: one cluster at one etcd revision."""

    cluster: str
    revision: int
    generation: str
    partition: int | None
    checkpoint: Checkpoint | None
    known: bool  # the cluster was ever ingested or derived
    #: a repaired generation's own checkpoint revision (0: none): it vouches for the staged keys
    staged_revision: int = 0

    @property
    def offset(self) -> int | None:
        return self.checkpoint.offset if self.checkpoint is not None else None

    def ahead(self, kv: etcd_adapter.KV) -> bool:
        """True when ``kv`` was written after the checkpoints this view read (an event in flight)."""
        return self.checkpoint is not None and kv.mod_revision > max(self.checkpoint.mod_revision,
                                                                    self.staged_revision)

    def headers(self, ahead: int = 0) -> dict[str, str]:
        h = {"X-Kmevents-Revision": str(self.revision), "X-Kmevents-Generation": self.generation,
             "X-Kmevents-Source": "etcd"}
        if self.partition is not None:
            h["X-Kmevents-Partition"] = str(self.partition)
        if self.offset is not None:
            h["X-Kmevents-Offset"] = str(self.offset)
            h["X-Kmevents-Checkpoint-Revision"] = str(self.checkpoint.mod_revision)  # type: ignore[union-attr]
        h["X-Kmevents-Ahead"] = str(ahead)
        return h


@dataclass
class Page:
    items: list[tuple[etcd_adapter.KV, dict[str, Any]]] = field(default_factory=list)
    next_token: str | None = None
    scanned: int = 0


class BadToken(ValueError):
    """A continue token that is not one of ours (or belongs to another list)."""


def encode_token(revision: int, kind: str, after: str, query: str) -> str:
    raw = orjson.dumps({"r": revision, "k": kind, "a": after, "q": query})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str, query: str) -> tuple[int, str]:
    """``(revision, last id)`` of a token made by :func:`encode_token` for this list and query.

    Anything else (garbled, forged with other types, a revision etcd cannot hold:
    not in 1..2^63-1) raises :class:`BadToken`, never anything the caller has not
    caught."""
    invalid = "continue token is not valid: pass back the `continue` of the previous page"
    try:
        d = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rev, k, after, q = d["r"], d["k"], d["a"], d["q"]
    except Exception as exc:  # noqa: BLE001 - anything malformed is the caller's error
        raise BadToken(invalid) from exc
    if type(rev) is not int or not all(type(x) is str for x in (k, after, q)):
        raise BadToken(invalid)
    if k != kind or q != query:
        raise BadToken("continue token belongs to another list or other filters: repeat the same query")
    if not 0 < rev < 2**63:
        raise BadToken(f"{invalid} (its revision {rev} is not an etcd revision)")
    return rev, after


class EtcdReader:
    """Reads of one request. ``client`` is connected and shared by the app."""

    def __init__(self, settings: Settings, client: etcd_adapter.EtcdClient) -> None:
        self.settings = settings
        self.client = client
        self.prefix = settings.etcd.prefix

    async def _get(self, key: bytes, revision: int) -> tuple[int, etcd_adapter.KV | None]:
        rev, kvs = await etcd_adapter.range_at(self.client, key, revision=revision)
        return rev, (kvs[0] if kvs else None)

    async def view(self, cluster: str, *, revision: int = 0) -> View:
        """The cluster's pointers, all at one revision (the latest when ``revision`` is 0)."""
        rev, cur = await self._get(layout.current_key(self.prefix, cluster), revision)
        if revision <= 0:
            revision = rev
        _, pm = await self._get(layout.partition_map_key(self.settings.etcd.prefix, cluster), revision)
        generation = layout.live_generation()
        if cur is not None:
            generation = str(orjson.loads(cur.value).get("generation") or generation)
        partition = int(orjson.loads(pm.value)["partition"]) if pm is not None else None
        ckpt = None
        if partition is not None:
            _, ck = await self._get(layout.checkpoint_key(f"{self.prefix}/{layout.live_generation()}", partition),
                                    revision)
            if ck is not None:
                ckpt = Checkpoint.from_bytes(ck.value, mod_revision=ck.mod_revision)
        staged = 0
        if partition is not None and generation != layout.live_generation():
            staged = await staged_revision(self.client, self.prefix, generation, partition, revision)
        return View(cluster, revision, generation, partition, ckpt, known=cur is not None or pm is not None,
                    staged_revision=staged)

    async def entity(self, v: View, kind: str, id: str) -> etcd_adapter.KV | None:
        _, kv = await self._get(layout.entity_key(self.prefix, v.cluster, v.generation, kind, id), v.revision)
        return kv

    async def scan(self, v: View, kind: str, *, after: str | None = None, chunk: int = 500
                   ) -> AsyncIterator[list[etcd_adapter.KV]]:
        """Entity keys of ``kind`` in key order, from just after ``after``, in chunks, at ``v.revision``."""
        base = layout.entity_key(self.prefix, v.cluster, v.generation, kind, "")
        end = etcd_adapter.prefix_end(base)
        start = base + after.encode() + b"\0" if after is not None else base
        while True:
            _, kvs = await etcd_adapter.range_at(self.client, start, range_end=end, revision=v.revision, limit=chunk)
            if not kvs:
                return
            yield kvs
            if len(kvs) < chunk:
                return
            start = kvs[-1].key + b"\0"

    async def clusters(self) -> tuple[int, list[dict[str, Any]]]:
        """Every cluster known to the partition map or with derived state, at one revision."""
        pm = layout.partition_map_prefix(self.settings.etcd.prefix)
        rev, kvs = await etcd_adapter.range_at(self.client, pm, range_end=etcd_adapter.prefix_end(pm))
        out: dict[str, dict[str, Any]] = {}
        for kv in kvs:
            name = kv.key[len(pm):].decode()
            out[name] = {"name": name, "partition": int(orjson.loads(kv.value)["partition"])}
        cp = f"{self.prefix}/clusters/".encode()
        cur = await _current_keys(self.client, cp, rev)
        for kv in cur:
            rest = kv.key[len(cp):].decode()
            name, _, tail = rest.partition("/")
            if tail == "current":
                out.setdefault(name, {"name": name, "partition": None})
        return rev, [out[k] for k in sorted(out)]


async def staged_revision(client: etcd_adapter.EtcdClient, prefix: str, generation: str, partition: int,
                          revision: int = 0) -> int:
    """The mod revision of ``generation``'s own checkpoint for ``partition`` (0 when it has none):
    a repaired generation's staged keys are vouched for up to it (see the module docstring)."""
    _, kvs = await etcd_adapter.range_at(client, layout.checkpoint_key(f"{prefix}/{generation}", partition),
                                         revision=revision)
    return kvs[0].mod_revision if kvs else 0


async def _current_keys(client: etcd_adapter.EtcdClient, cp: bytes, rev: int) -> list[etcd_adapter.KV]:
    """``clusters/<c>/current`` keys: scan cluster names by jumping past each cluster's subtree."""
    out: list[etcd_adapter.KV] = []
    start = cp
    end = etcd_adapter.prefix_end(cp)
    while True:
        _, kvs = await etcd_adapter.range_at(client, start, range_end=end, revision=rev, limit=1)
        if not kvs:
            return out
        name = kvs[0].key[len(cp):].split(b"/", 1)[0]
        _, cur = await etcd_adapter.range_at(client, cp + name + b"/current", revision=rev)
        out.extend(cur)
        start = etcd_adapter.prefix_end(cp + name + b"/")
