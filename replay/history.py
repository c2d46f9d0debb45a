"""One entity's causal history: every event that touched it, in log order.

"Touched" is decided by the reducer itself: after each event, ``take_dirty()``
names the entities it changed. The history follows the links between
entities so the causal chain reads end to end:

- a pod pulls in its tasks (``pod.task_id`` over time, the k8sm annotations)
  and events whose ``correlation_id`` is the pod's uid;
- a task pulls in its pod (``task.pod``) and the offer it was launched from
  (``task.offer_id``): offer -> accept -> launch -> STAGING -> RUNNING -> LOST
  -> pod evicted.

An entity may be named by its id or by what people call it: ``agent/HOST``
(every agent id the host ever had: an agent that re-registers after a restart
gets a new id), ``node/HOST``, ``pod/NAME`` (in any namespace), ``task/TASK_ID``
(the Mesos task id without its framework), ``framework/NAME``.

Two passes over the log: the first finds the related entities (an offer is
made before anyone knows which task it will carry), the second collects the
events. Each entry carries the event's two times and lag, its actor, the
annotations it produced, and the resulting state of each related entity it
touched; ``lasted`` says how long the condition it put the entity in held
(until the entity's next condition, or "still" at the end of the log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import Source

from kmevents.jsonobj import obj
from kmevents.reducer import ClusterState, condition
from kmevents.selectors import Selector
from kmevents.timespec import iso_of_ms, lag_seconds, micros_of

Key = tuple[str, str]

#: A history reads the whole log twice: its passes show a progress bar (on a terminal) from this
#: many records on; a point-in-time replay only from 200,000 (it is quicker per record).
PROGRESS_FROM = 20_000


@dataclass
class Related:
    targets: set[Key] = field(default_factory=set)
    keys: set[Key] = field(default_factory=set)
    correlation: set[str] = field(default_factory=set)


def _link(st: ClusterState, key: Key, rel: Related) -> None:
    kind, id = key
    v = st.entity(kind, id)
    if v is None:
        return
    if kind == "pod":
        if v.get("uid"):
            rel.correlation.add(str(v["uid"]))
        if v.get("task_id"):  # k8sm's task id; the task entity's id carries its framework too
            for task in st.task_ids(str(v["task_id"])):
                rel.keys.add(("task", task))
            rel.correlation.add(str(v["task_id"]))
    if kind == "task":
        if v.get("pod"):
            rel.keys.add(("pod", str(v["pod"])))
        if v.get("offer_id"):
            rel.keys.add(("offer", str(v["offer_id"])))
            rel.correlation.add(str(v["offer_id"]))


#: Fields of an entity's value that name it the way people do (``agent/HOST``, ``pod/NAME``).
NAME_FIELDS = ("hostname", "name", "task_id")


def named(kind: str, id: str, value: dict[str, Any] | None, name: str) -> bool:
    """Is the entity ``kind/id`` the one ``name`` means: its id, or one of ``NAME_FIELDS``?"""
    if id == name:
        return True
    if value is None or kind in ("offer", "inverse_offer"):  # offers have ids only
        return False
    return any(value.get(f) == name for f in NAME_FIELDS)


async def related(src: Source, cluster: str, kind: str, ids: list[str], selector: Selector | None,
                  progress: bool = True, progress_from: int | None = None) -> Related:
    """Pass 1: the targets (by id, name or label selector) and the entities/correlation ids
    linked to them. A name that is no id becomes every entity it names (see ``named``)."""
    rel = Related()
    rel.targets = {(kind, i) for i in ids}
    rel.keys = set(rel.targets)
    seen_ids: set[str] = set()  # the given ids that are ids of entities
    wanted = set(ids)

    def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        for k in st.take_dirty():
            if k[0] == kind and k not in rel.targets:
                v = st.entity(*k)
                if (selector is not None and v is not None and selector.matches(v.get("labels"))) or (
                        wanted and v is not None and any(named(kind, k[1], v, n) for n in wanted)):
                    rel.targets.add(k)
                    rel.keys.add(k)
            elif k[0] == kind and k[1] in wanted:
                seen_ids.add(k[1])
            if k in rel.keys:
                before = len(rel.keys)
                _link(st, k, rel)
                if len(rel.keys) > before:  # a task's pod -> that pod's links too
                    for k2 in list(rel.keys):
                        _link(st, k2, rel)

    await replay(src, cluster, Target(), on_event=hook, progress=progress,
                 progress_from=PROGRESS_FROM if progress_from is None else progress_from,
                 label="history 1/2: finding links")
    # a name that matched entities by name is no entity of its own: drop it (agent/HOST -> agent/<ids>)
    for i in wanted - seen_ids:
        if any(k[0] == kind and k[1] != i for k in rel.targets):
            rel.targets.discard((kind, i))
            rel.keys.discard((kind, i))
    return rel


async def collect(src: Source, cluster: str, rel: Related, progress: bool = True,
                  extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                  progress_from: int | None = None) -> list[dict[str, Any]]:
    """Pass 2: the events that touched a related entity or carry a related correlation id.

    ``extra(event)``: more fields for the event's entry (the API marks what a
    namespace-limited token may see of the event itself)."""
    entries: list[dict[str, Any]] = []
    open_cond: dict[Key, tuple[int, str, str]] = {}  # key -> (entry index, condition, since)
    last_time = [""]

    def hook(rec: LogRecord, ev: dict[str, Any], anns: list[dict[str, Any]], st: ClusterState) -> None:
        dirty = st.take_dirty()
        occ = ev.get("occurred_at") if type(ev.get("occurred_at")) is str else None
        if occ:
            last_time[0] = max(last_time[0], occ)
        touched = sorted(k for k in dirty if k in rel.keys)
        corr = ev.get("correlation_id")
        if not touched and corr not in rel.correlation:
            return
        results = {}
        for k in touched:
            v = st.entity(*k)
            cond = condition(v)
            results[f"{k[0]}/{k[1]}"] = {"condition": cond, "value": None if v is None else orjson.loads(orjson.dumps(v))}
            since = (v or {}).get("since") or occ or ""
            prev = open_cond.get(k)
            if prev is None or prev[1] != cond:
                if prev is not None:
                    entries[prev[0]]["results"][f"{k[0]}/{k[1]}"]["lasted_seconds"] = _secs(prev[2], since)
                open_cond[k] = (len(entries), cond, since)
        lag = lag_seconds(occ, rec.timestamp)
        entries.append({
            "offset": rec.offset, "event_id": ev.get("event_id"), "type": ev.get("type"),
            "occurred_at": occ, "recorded_at": iso_of_ms(rec.timestamp),
            "ingest_lag_seconds": None if lag is None else round(lag, 6),
            "actor": ev.get("actor"), "correlation_id": corr, "causation_id": ev.get("causation_id"),
            "reason": _reason(ev), "results": results,
            "annotations": [{"kind": a.get("kind"), "message": a.get("message")} for a in anns],
            **(extra(ev) if extra is not None else {}),
        })

    await replay(src, cluster, Target(), on_event=hook, progress=progress,
                 progress_from=PROGRESS_FROM if progress_from is None else progress_from,
                 label="history 2/2: collecting")
    for k, (i, _cond, since) in open_cond.items():
        r = entries[i]["results"][f"{k[0]}/{k[1]}"]
        r["lasted_seconds"] = None
        r["still_at_end"] = True
        r["held_for_seconds_by_end"] = _secs(since, last_time[0])
    return entries


def _reason(ev: dict[str, Any]) -> str | None:
    pl = obj(ev, "payload")
    st = obj(pl, "status")
    parts = [str(x) for x in (st.get("state"), st.get("reason"), pl.get("reason"), st.get("message") or pl.get("message"))
             if x]
    return " ".join(parts) if parts else None


def _secs(a: str, b: str) -> float | None:
    try:
        return round((micros_of(b) - micros_of(a)) / 1e6, 6)
    except ValueError:
        return None
