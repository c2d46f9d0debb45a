"""The host directory: which host each Mesos agent id is on, as the log said it, from which offset.

``kmevents search --agent HOST`` also finds the events that name only an agent's id
(``agent.removed``, a task's status update), and each hit names its agent by host
(``agent/HOST``, an offer "on HOST"). What the log says of an id's host (:func:`host_named`):

- ``agent.added`` / ``agent.reregistered``: ``payload.agent.id`` is on ``payload.agent.hostname``;
- ``offer.offered``: ``payload.offer.agent_id`` on ``payload.offer.hostname``;
- ``pod.scheduled``: ``payload.agent_id`` on ``payload.host``.

The last record that said so before a point wins. A scan learns that as it reads (:func:`learn`),
so a search from a time in the middle of a long log used to read the log from its first record only
to learn names. The worker keeps what it learnt instead, one etcd key per agent id, written in the
transaction that commits the record that changed it (exactly once with the checkpoint)::

    <prefix>/<generation>/_hosts/<cluster>/<agent id>   [[offset, host], ...]

the offsets at which the id's host changed, ascending (an id keeps one host nearly always: about
12,500 keys for the large profile's 1.5M events, one write each). The map at offset ``S``
(:func:`map_before`) takes each id's last change before ``S``: what a scan from the log's first
record would have learnt by ``S``. The worker writes only what it folded; a reader scans the
records past that itself (replay/search.py).

Worked example: ``agent.added`` S1 on host-a at 40, ``offer.offered`` S1 on host-a at 90 (no change),
``agent.reregistered`` S1 on host-b at 700: the key of S1 holds ``[[40, "host-a"], [700, "host-b"]]``;
a search from offset 500 names S1 ``host-a``, one from 800 ``host-b``.

What a reader may trust (:func:`read_known`): the keys and the partition's checkpoint read at one
etcd revision; every change at or before the checkpoint's offset is there (a batch too large for one
transaction writes its keys in several, the checkpoint in the last; a worker that dies in between
leaves changes past the checkpoint, which its successor writes again). ``Known.before`` ignores those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from kmevents import layout
from kmevents.jsonobj import obj

if TYPE_CHECKING:
    from kmevents.adapters import etcd as etcd_adapter

#: The event types that say which host an agent id is on.
LEARNS: Final = frozenset({"agent.added", "agent.reregistered", "offer.offered", "pod.scheduled"})
#: Keys read from etcd at a time.
PAGE: Final = 5_000


def host_named(ev: dict[str, Any]) -> tuple[str, str] | None:
    """``(agent id, host)`` when ``ev`` says which host an agent id is on (see the module docstring)."""
    t = ev.get("type")
    if type(t) is not str or t not in LEARNS:  # (a hostile record's type may be a list: unhashable)
        return None
    pl = obj(ev, "payload")
    if t == "offer.offered":
        o = obj(pl, "offer")
        aid, host = o.get("agent_id"), o.get("hostname")
    elif t == "pod.scheduled":
        aid, host = pl.get("agent_id"), pl.get("host")
    else:
        a = obj(pl, "agent")
        aid, host = a.get("id"), a.get("hostname")
    if type(aid) is str and type(host) is str and host:
        return aid, host
    return None


def learn(ev: dict[str, Any], hosts: dict[str, str]) -> None:
    """Note in ``hosts`` (agent id -> host) what ``ev`` says, if anything."""
    got = host_named(ev)
    if got is not None:
        hosts[got[0]] = got[1]


class Directory:
    """The worker's directory of one cluster: each agent id's changes, and the ids changed since the
    last write (``dirty``)."""

    __slots__ = ("changes", "dirty")

    def __init__(self, changes: dict[str, list[list[Any]]] | None = None) -> None:
        self.changes: dict[str, list[list[Any]]] = changes or {}
        self.dirty: set[str] = set()

    def note(self, offset: int, aid: str, host: str) -> None:
        """The record at ``offset`` says ``aid`` is on ``host``. Changes at or after ``offset`` are
        a fold's that never committed (a worker that wrote part of a batch, then died): this fold
        learns them again, so they go first."""
        got = self.changes.get(aid)
        if got is None:
            self.changes[aid] = [[offset, host]]
            self.dirty.add(aid)
            return
        if got[-1][0] >= offset:
            while got and got[-1][0] >= offset:
                got.pop()
            self.dirty.add(aid)
        if got and got[-1][1] == host:
            return
        got.append([offset, host])
        self.dirty.add(aid)

    def take(self, prefix: str, cluster: str) -> dict[bytes, bytes | None]:
        """The keys of the ids changed since the last take, with their values (None: no change
        left, delete the key); ``prefix``: ``<etcd prefix>/<generation>``."""
        out: dict[bytes, bytes | None] = {}
        for aid in self.dirty:
            got = self.changes.get(aid)
            out[layout.hosts_key(prefix, cluster, aid)] = encode(got) if got else None
        self.dirty = set()
        return out


def encode(changes: list[list[Any]]) -> bytes:
    return orjson.dumps(changes)


def decode(value: bytes) -> list[tuple[int, str]]:
    """One key's changes; a damaged value reads as none (its id is then learnt by scanning, or
    named by its id)."""
    try:
        got = orjson.loads(value)
        return [(int(o), h) for o, h in got if type(h) is str]
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return []


def map_before(entries: Iterable[tuple[str, list[tuple[int, str]]]], before: int) -> dict[str, str]:
    """agent id -> host as the records before offset ``before`` left it (each id's last change there)."""
    out: dict[str, str] = {}
    for aid, changes in entries:
        host = None
        for off, h in changes:
            if off >= before:
                break
            host = h
        if host is not None:
            out[aid] = host
    return out


async def read(client: etcd_adapter.EtcdClient, prefix: str, cluster: str, *,
               revision: int = 0) -> list[tuple[str, list[tuple[int, str]]]]:
    """Every agent id's changes of ``cluster`` at ``revision`` (0: now); ``prefix``: ``<etcd
    prefix>/<generation>``."""
    from kmevents.adapters import etcd as etcd_adapter

    start = layout.hosts_prefix(prefix, cluster)
    cut = len(start)
    out: list[tuple[str, list[tuple[int, str]]]] = []
    async for _, kvs in etcd_adapter.range_pages(client, start, etcd_adapter.prefix_end(start), page=PAGE,
                                                 revision=revision):
        out.extend((kv.key[cut:].decode(errors="replace"), decode(kv.value)) for kv in kvs)
    return out


@dataclass
class Known:
    """The directory as a reader found it: each id's changes, and ``through``, the partition's checkpoint
    then (every record up to it was learnt; -1: none)."""

    entries: list[tuple[str, list[tuple[int, str]]]]
    through: int

    def before(self, offset: int) -> dict[str, str]:
        """agent id -> host as the records before ``offset`` left it, as far as ``through`` (the records
        from ``through + 1`` on are the reader's to learn)."""
        return map_before(self.entries, min(offset, self.through + 1))


async def read_known(client: etcd_adapter.EtcdClient, prefix: str, cluster: str, partition: int) -> Known:
    """The directory of ``cluster`` and its partition's checkpoint at one etcd revision (see the module
    docstring); ``prefix``: ``<etcd prefix>/<generation>`` (the live one: a repair's keeps none)."""
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.store.checkpoint import Checkpoint

    rev, kvs = await etcd_adapter.range_at(client, layout.checkpoint_key(prefix, partition))
    through = Checkpoint.from_bytes(kvs[0].value).offset if kvs else -1
    return Known(await read(client, prefix, cluster, revision=rev), through)


async def load(client: etcd_adapter.EtcdClient, prefix: str, cluster: str) -> Directory:
    """The worker's directory of ``cluster`` as etcd holds it (what the partition's earlier workers wrote)."""
    return Directory({aid: [[o, h] for o, h in changes] for aid, changes in await read(client, prefix, cluster)
                      if changes})


__all__ = ["LEARNS", "Directory", "Known", "read_known", "decode", "encode", "host_named", "learn", "load", "map_before", "read"]
