"""Events across time that match filters (``kmevents search``); no fold needed.

Filters (all must hold):

- ``types``: event type globs (``task.*``, ``pod.evicted``);
- ``namespace``: any ``namespace`` field in the payload (pods, RCs, services,
  k8s events), or the namespace part of a ``pod`` reference;
- ``agent``: any ``agent_id`` in the payload, or a host name (``hostname``,
  ``host``, ``binding_host``, or the actor's name for agent/node actors);
- ``selector``: the labels carried by the event (``pod.labels``, ``task.labels``,
  ``namespace.labels``);
- a range of points: offsets, or times (source time by default; log time with ``known``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kmevents.replay.sources import Source

from kmevents.contract import DecodeError, decode_fast
from kmevents.selectors import Selector
from kmevents.timespec import Point, iso_of_ms, lag_seconds


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


def matches(ev: dict[str, Any], f: Filters) -> bool:
    if f.types and not any(fnmatch.fnmatchcase(str(ev.get("type")), t) for t in f.types):
        return False
    pl = ev.get("payload")
    if f.namespace is not None and not any(k == "namespace" and v == f.namespace for k, v in _walk(pl)):
        return False
    if f.agent is not None:
        actor = ev.get("actor") or {}
        hit = isinstance(actor, dict) and actor.get("kind") in ("agent", "node") and actor.get("name") == f.agent
        if not hit:
            hit = any(k in ("agent_id", "hostname", "host", "binding_host") and v == f.agent for k, v in _walk(pl))
        if not hit:
            return False
    if f.selector is not None:
        labels = [v for k, v in _walk(pl) if k == "labels" and isinstance(v, dict)]
        if not any(f.selector.matches(lab) for lab in labels):
            return False
    return True


async def search(src: Source, f: Filters, *, limit: int | None = None,
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """The matching events, oldest first, at most ``limit``; ``keep(event)`` is one more filter
    (the API's: what a namespace-limited token may see), applied before the limit."""
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
    out: list[dict[str, Any]] = []
    if end < start:
        return out
    async for batch in src.batches(start, end):
        for rec in batch:
            try:
                ev = decode_fast(rec.value or b"")
            except DecodeError:
                continue
            occ = ev.get("occurred_at")
            if t_lo is not None and not (type(occ) is str and occ >= t_lo):
                continue
            if t_hi is not None and not (type(occ) is str and occ <= t_hi):
                continue
            if not matches(ev, f) or (keep is not None and not keep(ev)):
                continue
            lag = lag_seconds(occ if type(occ) is str else None, rec.timestamp)
            out.append({"offset": rec.offset, "occurred_at": occ, "recorded_at": iso_of_ms(rec.timestamp),
                        "ingest_lag_seconds": None if lag is None else round(lag, 6), "event": ev})
            if limit is not None and len(out) >= limit:
                return out
    return out
