"""The columns ``kmevents get`` prints for each kind, as kubectl prints its kinds.

Every table starts with the name and the condition (``STATUS``/``STATE``: the same
word ``condition()`` gives the API's ``?state=`` filter and ``history``), and ends
with ``AGE`` (since the entity was created, registered, offered or launched) or,
for kinds the log gives no creation time, ``SINCE`` (how long the entity has been
as it is). ``-o wide`` adds the columns after them. Ages are counted to the point
read: now for live state, the target time of a replay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kmevents.reducer.conditions import condition
from kmevents.timespec import humanize_seconds, micros_of


@dataclass
class Context:
    """What the cells need beyond the entity: names of agents and frameworks, the time read."""

    hosts: dict[str, str] = field(default_factory=dict)  # agent id -> host name
    frameworks: dict[str, str] = field(default_factory=dict)  # framework id -> name
    now_micros: int | None = None

    def age(self, t: Any) -> str | None:
        if not isinstance(t, str) or self.now_micros is None:
            return None
        try:
            return humanize_seconds(max(self.now_micros - micros_of(t), 0) / 1e6)
        except ValueError:
            return None

    def host(self, agent_id: Any) -> Any:
        return self.hosts.get(str(agent_id), agent_id) if agent_id else None

    def framework(self, fid: Any) -> Any:
        return self.frameworks.get(str(fid), fid) if fid else None


Cell = Callable[[str, dict[str, Any], Context], Any]


@dataclass(frozen=True)
class Column:
    header: str
    cell: Cell
    wide: bool = False


def _f(name: str) -> Cell:
    return lambda _id, v, _c: v.get(name)


def _cond(_id: str, v: dict[str, Any], _c: Context) -> str:
    return condition(v)


def _age(*fields: str) -> Cell:
    return lambda _id, v, c: c.age(next((v[f] for f in fields if v.get(f)), None))


def _res(kind: str, used: str | None, total: str | None) -> Cell:
    def cell(_id: str, v: dict[str, Any], _c: Context) -> str | None:
        def amount(name: str | None) -> float | None:
            if name is None:
                return None
            r = v.get(name)
            if not isinstance(r, dict):
                return None
            if r and all(isinstance(x, dict) for x in r.values()):  # by role: {"*": {...}}
                return sum(float(x.get(kind) or 0) for x in r.values())
            return float(r.get(kind) or 0)
        u, t = amount(used), amount(total)
        if u is None and t is None:
            return None
        show = _mem if kind == "mem" else (lambda x: f"{x:g}")
        return show(u or 0) if t is None else f"{show(u or 0)}/{show(t)}"
    return cell


def _mem(mb: float) -> str:
    return f"{mb / 1024:.1f}Gi" if mb >= 1024 else f"{mb:g}Mi"


def _pod_ready(_id: str, v: dict[str, Any], _c: Context) -> str | None:
    cs = v.get("containers")
    if not isinstance(cs, list) or not cs:
        return None
    return f"{sum(1 for c in cs if isinstance(c, dict) and c.get('ready'))}/{len(cs)}"


def _restarts(_id: str, v: dict[str, Any], _c: Context) -> int | None:
    cs = v.get("containers")
    if not isinstance(cs, list):
        return None
    return sum(int(c.get("restart_count") or 0) for c in cs if isinstance(c, dict))


def _ports(_id: str, v: dict[str, Any], _c: Context) -> str | None:
    ps = v.get("ports")
    if not isinstance(ps, list):
        return None
    return ",".join(f"{p.get('port')}/{p.get('protocol') or 'TCP'}" for p in ps if isinstance(p, dict)) or None


def _count(name: str) -> Cell:
    return lambda _id, v, _c: len(v[name]) if isinstance(v.get(name), (list, dict)) else 0


def _leader(_id: str, v: dict[str, Any], _c: Context) -> Any:
    leader = v.get("leader") or {}
    return leader.get("hostname") or leader.get("id") if isinstance(leader, dict) else None


def _namespace(_id: str, v: dict[str, Any], _c: Context) -> Any:
    return v.get("namespace") or (_id.split("/", 1)[0] if "/" in _id else None)


def _name(_id: str, v: dict[str, Any], _c: Context) -> Any:
    return v.get("name") or _id.rsplit("/", 1)[-1]


NAMESPACE = Column("NAMESPACE", _namespace)

COLUMNS: dict[str, list[Column]] = {
    "pod": [
        Column("NAME", _name), Column("READY", _pod_ready), Column("STATUS", _cond),
        Column("RESTARTS", _restarts), Column("AGE", _age("created_at", "since")),
        Column("NODE", lambda _i, v, _c: v.get("node_name") or v.get("binding_host"), wide=True),
        Column("TASK", _f("task_id"), wide=True), Column("LABELS", _f("labels"), wide=True),
    ],
    "task": [
        Column("NAME", lambda i, v, _c: v.get("task_id") or i), Column("STATE", _cond),
        Column("POD", _f("pod")), Column("HOST", lambda _i, v, c: c.host(v.get("agent_id"))),
        Column("AGE", _age("launched_at", "first_seen", "since")),
        Column("FRAMEWORK", lambda _i, v, c: c.framework(v.get("framework_id")), wide=True),
        Column("CPUS", _res("cpus", "resources", None), wide=True),
        Column("MEM", _res("mem", "resources", None), wide=True),
        Column("REASON", lambda _i, v, _c: (v.get("status") or {}).get("reason"), wide=True),
        Column("MESSAGE", lambda _i, v, _c: (v.get("status") or {}).get("message"), wide=True),
        Column("ID", lambda i, _v, _c: i, wide=True),
    ],
    "agent": [
        Column("NAME", lambda i, v, _c: v.get("hostname") or i), Column("STATUS", _cond),
        Column("CPUS", _res("cpus", "allocated", "total")), Column("MEM", _res("mem", "allocated", "total")),
        Column("AGE", _age("registered_at", "since")),
        Column("ID", lambda i, _v, _c: i, wide=True), Column("ATTRIBUTES", _f("attributes"), wide=True),
        Column("REREGISTERED", _f("reregistered_count"), wide=True),
        Column("REMOVED", _f("removed_reason"), wide=True),
    ],
    "rc": [
        Column("NAME", _name), Column("DESIRED", _f("replicas")), Column("CURRENT", _f("observed_replicas")),
        Column("SINCE", _age("since")),
        Column("IMAGE", _f("template_image"), wide=True), Column("SELECTOR", _f("selector"), wide=True),
    ],
    "service": [
        Column("NAME", _name), Column("CLUSTER-IP", _f("portal_ip")), Column("PORTS", _ports),
        Column("ENDPOINTS", _count("endpoints_derived")), Column("SINCE", _age("since")),
        Column("SELECTOR", _f("selector"), wide=True),
    ],
    "namespace": [
        Column("NAME", lambda i, v, _c: v.get("name") or i), Column("STATUS", _cond), Column("SINCE", _age("since")),
        Column("LABELS", _f("labels"), wide=True),
    ],
    "node": [
        Column("NAME", lambda i, v, _c: v.get("name") or i), Column("STATUS", _cond),
        Column("PRESSURE", _f("pressure")), Column("SINCE", _age("since")),
        Column("AGENT", lambda _i, v, _c: v.get("agent_id"), wide=True),
        Column("CONDITIONS", _f("conditions"), wide=True), Column("COMPONENTS", _f("components"), wide=True),
    ],
    "offer": [
        Column("NAME", lambda i, _v, _c: i), Column("STATUS", _cond),
        Column("HOST", lambda _i, v, c: v.get("hostname") or c.host(v.get("agent_id"))),
        Column("FRAMEWORK", lambda _i, v, c: c.framework(v.get("framework_id"))),
        Column("CPUS", _res("cpus", "resources", None)), Column("MEM", _res("mem", "resources", None)),
        Column("AGE", _age("offered_at", "since")),
        Column("DECLINED", _f("decline_reason"), wide=True), Column("TASKS", _f("task_ids"), wide=True),
    ],
    "framework": [
        Column("NAME", lambda i, v, _c: v.get("name") or i), Column("STATUS", _cond), Column("ROLES", _f("roles")),
        Column("AGE", _age("registered_at", "since")),
        Column("ID", lambda i, _v, _c: i, wide=True), Column("PRINCIPAL", _f("principal"), wide=True),
        Column("HOSTNAME", _f("hostname"), wide=True), Column("FAILOVER-TIMEOUT", _f("failover_timeout"), wide=True),
    ],
    "role": [
        Column("NAME", lambda i, v, _c: v.get("name") or i), Column("WEIGHT", _f("weight")),
        Column("FRAMEWORKS", _count("frameworks")), Column("SINCE", _age("since")),
        Column("ALLOCATED", _f("allocated"), wide=True), Column("OFFERED", _f("offered"), wide=True),
    ],
    "executor": [
        Column("NAME", lambda i, v, _c: v.get("executor_id") or i), Column("STATUS", _cond),
        Column("HOST", lambda _i, v, c: c.host(v.get("agent_id"))),
        Column("FRAMEWORK", lambda _i, v, c: c.framework(v.get("framework_id"))), Column("SINCE", _age("since")),
        Column("ID", lambda i, _v, _c: i, wide=True),
    ],
    "inverse_offer": [
        Column("NAME", lambda i, _v, _c: i), Column("STATUS", _cond),
        Column("HOST", lambda _i, v, c: c.host(v.get("agent_id"))),
        Column("FRAMEWORK", lambda _i, v, c: c.framework(v.get("framework_id"))), Column("SINCE", _age("since")),
        Column("UNAVAILABILITY", _f("unavailability"), wide=True),
    ],
    "cluster": [
        Column("NAME", lambda i, _v, _c: i), Column("LEADER", _leader),
        Column("SINCE", _age("since")), Column("FAILOVERS", _f("failover_count")),
        Column("HEARTBEAT", lambda _i, v, _c: (v.get("heartbeat") or {}).get("status")),
        Column("SCHEDULER", lambda _i, v, _c: (v.get("scheduler_leader") or {}).get("identity")),
        Column("LEADER-ID", lambda _i, v, _c: (v.get("leader") or {}).get("id"), wide=True),
        Column("OBSERVED", lambda _i, v, _c: {k: x for k, x in (v.get("observed") or {}).items() if k != "digest"},
               wide=True),
    ],
}

#: Kinds whose cells name agents or frameworks by their ids (the listing loads those names).
NEEDS_HOSTS = frozenset({"task", "offer", "executor", "inverse_offer"})
NEEDS_FRAMEWORKS = frozenset({"task", "offer", "executor", "inverse_offer"})


def columns(kind: str, *, wide: bool, namespaced: bool, with_namespace: bool) -> list[Column]:
    cols = [c for c in COLUMNS.get(kind, [Column("NAME", lambda i, _v, _c: i), Column("STATUS", _cond)])
            if wide or not c.wide]
    if namespaced and with_namespace:
        cols.insert(0, NAMESPACE)
    return cols


def rows(kind: str, items: list[tuple[str, dict[str, Any]]], ctx: Context, cols: list[Column], *,
         by_name: bool = True) -> list[list[Any]]:
    """The cells of ``items``; ``by_name``: ordered as kubectl orders them, by namespace and
    name, digits by their value (``agent-2`` before ``agent-10``)."""
    out = [row_cells(id, v, ctx, cols) for id, v in items]
    if by_name:
        out.sort(key=name_order(cols))
    return out


def row_cells(id: str, v: dict[str, Any], ctx: Context, cols: list[Column]) -> list[Any]:
    """One entity's cells."""
    return [c.cell(id, v, ctx) for c in cols]


def name_order(cols: list[Column]) -> Callable[[list[Any]], list[Any]]:
    """The sort key of rows of ``cols`` as kubectl orders them: by namespace and name, digits by
    their value. A namespace's key is made once (a cluster has few)."""
    keys = [n for n, c in enumerate(cols) if c.header in ("NAMESPACE", "NAME")] or [0]
    seen: dict[Any, list[tuple[int, Any]]] = {}

    def key(r: list[Any]) -> list[Any]:
        out = []
        for n in keys:
            v = r[n]
            if cols[n].header == "NAMESPACE":
                k = seen.get(v)
                if k is None:
                    k = seen[v] = _natural(v)
                out.append(k)
            else:
                out.append(_natural(v))
        return out

    return key


_DIGITS = re.compile(r"(\d+)")


def _natural(v: Any) -> list[tuple[int, Any]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(str(v or "")) if p]
