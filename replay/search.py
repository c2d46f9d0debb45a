"""Events across time that match filters (``kmevents search``); no fold needed.

Filters (all must hold):

- ``types``: event type globs (``task.*``, ``pod.evicted``);
- ``namespace``: any ``namespace`` field in the payload (pods, RCs, services,
  k8s events), or the namespace part of a ``pod`` reference;
- ``agent``: any ``agent_id`` in the payload, or a host name (``hostname``,
  ``host``, ``binding_host``, or the actor's name for agent/node actors); a host
  name also matches the ids the log gave that host (``agent.removed`` names only
  the id);
- ``selector``: the labels carried by the event (``pod.labels``, ``task.labels``,
  ``namespace.labels``);
- a range of points: offsets, or times (source time by default; log time with ``known``).
  A range that ends at a source time is read only as far as the touched-entity index says its
  events may lie (``hits``' ``index``), not to the log's end; one that starts at a source time
  from the first block that may hold its events, not from the log's first record.

A host name is learnt from the records before the range too: the workers' host directory
(kmevents/store/hosts.py) says what they said, so the scan need not read them.

Each hit also says what it is about, as ``kubectl get events`` does: ``object``
(``pod/prod/api-x``, ``task/<task id>``, ``agent/<host name>``), ``reason`` and
``message`` (:func:`describe`). ``check_types`` refuses a ``--type`` that names no
event type, with the contract's "did you mean".
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kmevents.replay import occurrence
from kmevents.replay.sources import Source

from kmevents.contract import DecodeError, decode_fast
from kmevents.errors import UsageError
from kmevents.jsonobj import obj
from kmevents.selectors import Selector
from kmevents.store.hosts import learn
from kmevents.timespec import Point, iso_of_ms, lag_seconds

if TYPE_CHECKING:
    from kmevents.store.snapshots import Snapshots

_GLOB = frozenset("*?[")
log = logging.getLogger("kmevents.replay.search")


@dataclass
class Filters:
    types: list[str] | None = None
    namespace: str | None = None
    agent: str | None = None
    selector: Selector | None = None
    start: Point | None = None
    end: Point | None = None
    known: bool = False


def _walk(obj: Any) -> Iterator[tuple[str, Any]]:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                yield k, v
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(x for x in o if isinstance(x, (dict, list)))


def check_types(types: list[str] | None, flag: str = "--type") -> None:
    """Refuse a type that is no event type (``master.elcted``: did you mean ``master.elected``?)
    and a glob that matches none: either would search the whole log to answer "0 events".
    ``flag``: how the caller names the option in the message (the API's query parameter is ``type``)."""
    if not types:
        return  # (the contract's models take ~0.4 s to build: a history without --type needs none)
    from kmevents.contract import EVENT_TYPES, closest_type

    for t in types or []:
        if _GLOB & set(t):
            if not any(fnmatch.fnmatchcase(x, t) for x in EVENT_TYPES):
                prefix = t.split(".", 1)[0]
                family = sorted({x.split(".", 1)[0] for x in EVENT_TYPES})
                near = difflib.get_close_matches(prefix, family, n=1)
                raise UsageError(f"{flag} {t!r} matches no event type"
                                 + (f"; did you mean '{near[0]}.*'?" if near and near[0] != prefix else ""),
                                 hint="families: " + ", ".join(f"{x}.*" for x in family))
        elif t not in EVENT_TYPES:
            nearest = closest_type(t)
            raise UsageError(f"unknown event type {t!r}" + (f"; did you mean {nearest!r}?" if nearest else ""),
                             hint="event types are listed in docs/event-catalogue.md; globs work too (task.*)")


def matches(ev: dict[str, Any], f: Filters, hosts: dict[str, str] | None = None) -> bool:
    """Does ``ev`` pass every filter? ``hosts`` (agent id -> host name, see kmevents/store/hosts.py)
    lets a host name match events that name only the agent's id."""
    if f.types and not any(fnmatch.fnmatchcase(str(ev.get("type")), t) for t in f.types):
        return False
    pl = ev.get("payload")
    if f.namespace is not None and not any(k == "namespace" and v == f.namespace for k, v in _walk(pl)):
        return False
    if f.agent is not None:
        actor = ev.get("actor") or {}
        hit = isinstance(actor, dict) and actor.get("kind") in ("agent", "node") and actor.get("name") == f.agent
        if not hit:
            hit = any(k in ("agent_id", "hostname", "host", "binding_host") and
                      (v == f.agent or (k == "agent_id" and hosts is not None and hosts.get(v) == f.agent))
                      for k, v in _walk(pl))
        if not hit:
            return False
    if f.selector is not None:
        labels = [v for k, v in _walk(pl) if k == "labels" and isinstance(v, dict)]
        if not any(f.selector.matches(lab) for lab in labels):
            return False
    return True


def _ref(kind: str, *parts: Any) -> str:
    return f"{kind}/" + "/".join(str(p) for p in parts if p not in (None, ""))


def describe(ev: dict[str, Any], hosts: dict[str, str] | None = None) -> dict[str, str | None]:
    """What an event is about, like a row of ``kubectl get events``: ``object`` (``pod/ns/name``,
    ``task/<task id>``, ``agent/<host name or id>``, ...), ``reason`` and ``message``."""
    t = str(ev.get("type") or "")
    family = t.split(".", 1)[0]
    pl = obj(ev, "payload")
    h = hosts or {}
    st = obj(pl, "status")
    reason = pl.get("reason") if isinstance(pl.get("reason"), str) else None
    message = pl.get("message") if isinstance(pl.get("message"), str) else None
    subject: str | None = None
    if family == "task":
        task = obj(pl, "task")
        subject = _ref("task", task.get("task_id") or pl.get("task_id") or st.get("task_id"))
        state, why = st.get("state") or task.get("state"), st.get("reason")
        if state or why:
            reason = " ".join(str(x) for x in (state, f"({why})" if state and why else why) if x)
        message = st.get("message") if isinstance(st.get("message"), str) else message
    elif family == "pod":
        pod = obj(pl, "pod")
        subject = _ref("pod", pod.get("namespace"), pod.get("name"))
        if t == "pod.scheduled" and pl.get("host"):
            message = message or f"bound to {pl.get('host')}"
        elif t == "pod.upserted" and pod.get("phase"):
            reason = reason or str(pod.get("phase"))
    elif family == "agent":
        a = obj(pl, "agent")
        aid = a.get("id") or pl.get("agent_id")
        subject = _ref("agent", a.get("hostname") or h.get(str(aid)) or aid)
    elif family in ("offer", "inverse_offer", "framework", "executor"):
        inner = obj(pl, family)
        name = inner.get("name") if family == "framework" else None
        oid = name or inner.get("executor_id" if family == "executor" else "id") or pl.get(f"{family}_id")
        subject = _ref(family, oid)
        if family == "offer" and (inner.get("hostname") or h.get(str(inner.get("agent_id")))):
            message = message or f"on {inner.get('hostname') or h.get(str(inner.get('agent_id')))}"
    elif family == "master":
        m = obj(pl, "master")
        subject = _ref("master", m.get("hostname") or m.get("id") or pl.get("master_id"))
    elif family in ("node", "namespace", "role"):
        inner = obj(pl, family)
        subject = _ref(family, inner.get("name") or pl.get("name"))
    elif family in ("replication_controller", "service"):
        inner = obj(pl, "rc" if family == "replication_controller" else "service")
        subject = _ref("rc" if family == "replication_controller" else "service",
                       inner.get("namespace") or pl.get("namespace"), inner.get("name") or pl.get("name"))
    elif family == "endpoints":
        subject = _ref("endpoints", pl.get("namespace"), pl.get("name"))
    elif t == "k8s_event.recorded":
        inv = obj(pl, "involved")
        subject = _ref(str(inv.get("kind") or "object").lower(), pl.get("namespace") or inv.get("namespace"),
                       inv.get("name"))
    elif t == "k8s_write.recorded":
        res = str(pl.get("resource") or "object")
        subject = _ref(res[:-1] if res.endswith("s") else res, pl.get("namespace"), pl.get("name"))
        reason = " ".join(str(x) for x in (pl.get("verb"), pl.get("subresource")) if x) or None
        message = f"HTTP {pl.get('code')}" + (f" by {pl.get('user')}" if pl.get("user") else "")
    elif family == "scheduler":
        subject = _ref("scheduler", pl.get("identity"))
    elif family == "source":
        subject = _ref("source", pl.get("stream_id"))
    elif family == "cluster":
        subject = _ref("cluster", ev.get("cluster"))
    return {"object": subject if subject and not subject.endswith("/") else None,
            "reason": reason, "message": message}


@dataclass
class HostsInRange:
    """What the workers' host directory gives a scan beginning at ``begin``: agent id -> host as the
    records before it left it (``hosts``), and the changes the records of ``begin..through`` make to
    it, ``(offset, agent id, host)`` by offset: the scan applies each as it passes its offset instead
    of decoding every record to learn it (``through``: the partition's checkpoint; the records past it
    it learns as before)."""

    begin: int
    hosts: dict[str, str]
    changes: list[tuple[int, str, str]]
    through: int


async def _known_hosts(src: Source, index: Snapshots, cluster: str, since: str | None, start: int,
                       end: int) -> HostsInRange | None:
    """Where the scan of ``start..end`` may begin (``since``: its events' earliest time, see
    occurrence.read_start) and what the workers' host directory says of the hosts before and in it
    (the records between their checkpoint and the beginning learnt here). None: no index or directory
    (the scan begins at ``start``, learning from there)."""
    partition = getattr(src, "partition", None)
    if type(partition) is not int:
        return None
    begin = start
    if since is not None:  # (a range from an offset begins there: no walk)
        at = await occurrence.start_from(index, cluster, since, start, end)
        if at is None:
            return None
        begin = at.begin
    try:
        directory = await index.host_directory(cluster, partition)
    except Exception as exc:  # noqa: BLE001 - a directory that cannot be read only costs time
        log.warning("host directory not readable: the search learns the hosts from the range's records",
                    extra={"cluster": cluster, "error": f"{type(exc).__name__}: {exc}"})
        return None
    if directory is None:
        return None
    through = directory.through
    hosts = directory.before(begin)
    if through + 1 < begin:  # records the workers have not folded yet
        async for batch in src.batches(max(through + 1, 0), begin - 1):
            for rec in batch:
                try:
                    learn(decode_fast(rec.value or b""), hosts)
                except DecodeError:
                    continue
    changes = sorted((o, aid, h) for aid, ch in directory.entries for o, h in ch if begin <= o <= through)
    return HostsInRange(begin, hosts, changes, through)


def _type_needles(types: list[str] | None) -> tuple[bytes, ...] | None:
    """Bytes one of which a record's value holds when its event's type can match ``types``: each
    type's literal part before any glob character, after the quote that opens a JSON string (None:
    no such part, e.g. ``*``). A record holding none of them, and no ``\\u`` escape, is passed
    over undecoded."""
    if not types:
        return None
    out = []
    for t in types:
        lit = t
        for i, ch in enumerate(t):
            if ch in _GLOB:
                lit = t[:i]
                break
        if not lit:
            return None
        out.append(b'"' + lit.encode() + (b'"' if lit == t else b""))
    return tuple(out)


async def search(src: Source, f: Filters, *, limit: int | None = None,
                 keep: Callable[[dict[str, Any]], bool] | None = None, index: Snapshots | None = None,
                 cluster: str | None = None) -> list[dict[str, Any]]:
    """Every hit of :func:`hits` in one list: for a bounded ``limit`` (the API caps it at
    10,000). ``kmevents search`` prints :func:`hits` as they come instead."""
    return [h async for h in hits(src, f, limit=limit, keep=keep, index=index, cluster=cluster)]


async def hits(src: Source, f: Filters, *, limit: int | None = None,
               keep: Callable[[dict[str, Any]], bool] | None = None, index: Snapshots | None = None,
               cluster: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """The matching events, oldest first, one at a time as the scan finds them (nothing is
    held but the agent id -> host name map), at most ``limit``; ``keep(event)`` is one more
    filter (the API's: what a namespace-limited token may see), applied before the limit.
    Each hit carries ``object``, ``reason`` and ``message`` (:func:`describe`).

    ``index``/``cluster``: the snapshot store whose touched-entity index says when each block's
    events occurred: a range that ends at a source time is then read to the last block that may
    hold an event by it (replay/occurrence.py), not to the log's last record; one that starts at a
    source time from the first block that may hold an event at or after it; and the workers' host
    directory says which host each agent id is on before the range and as it goes (:func:`_known_hosts`), not a
    scan from the log's first record (so a record whose type cannot match is not decoded). The hits are the same."""
    first, last = await src.covers()
    start, end = first, last
    t_lo = t_hi = None
    if f.start is not None:
        if f.start.offset is not None:
            start = max(first, f.start.offset)
        elif f.known and f.start.time is not None:
            o = await src.offset_for_time(f.start.time.ms)
            start = last + 1 if o is None else o
        else:
            t_lo = f.start.time.iso if f.start.time else None
    if f.end is not None:
        if f.end.offset is not None:
            end = min(last, f.end.offset)
        elif f.known and f.end.time is not None:
            o = await src.offset_for_time(f.end.time.ms + 1)
            end = last if o is None else o - 1
        else:
            t_hi = f.end.time.iso if f.end.time else None
    if index is not None and cluster is not None and t_hi is not None:
        cut = await occurrence.cut_from(src, index, cluster, t_hi, start, end)
        end = cut.end if cut is not None else end
    if end < start:
        return
    hosts: dict[str, str] = {}
    changes: list[tuple[int, str, str]] = []
    through = start - 1  # the records up to it need no decoding to learn hosts: ``changes`` say them
    if index is not None and cluster is not None:
        known = await _known_hosts(src, index, cluster, t_lo, start, end)
        if known is not None:
            start, hosts, changes, through = known.begin, known.hosts, known.changes, known.through
            if end < start:
                return
    needles = _type_needles(f.types)
    one = needles[0] if needles is not None and len(needles) == 1 else None
    c, nc = 0, len(changes)
    found = 0
    async for batch in src.batches(start, end):
        for rec in batch:
            off = rec.offset
            while c < nc and changes[c][0] <= off:
                hosts[changes[c][1]] = changes[c][2]
                c += 1
            value = rec.value or b""
            if off <= through and needles is not None and b"\\u" not in value and (
                    one not in value if one is not None else not any(n in value for n in needles)):
                continue  # (its type matches none; and the directory says what it said of hosts)
            try:
                ev = decode_fast(value)
            except DecodeError:
                continue
            if off > through:
                learn(ev, hosts)
            occ = ev.get("occurred_at")
            if t_lo is not None and not (type(occ) is str and occ >= t_lo):
                continue
            if t_hi is not None and not (type(occ) is str and occ <= t_hi):
                continue
            if not matches(ev, f, hosts) or (keep is not None and not keep(ev)):
                continue
            lag = lag_seconds(occ if type(occ) is str else None, rec.timestamp)
            yield {"offset": rec.offset, "occurred_at": occ, "recorded_at": iso_of_ms(rec.timestamp),
                   "ingest_lag_seconds": None if lag is None else round(lag, 6), **describe(ev, hosts),
                   "event": ev}
            found += 1
            if limit is not None and found >= limit:
                return
