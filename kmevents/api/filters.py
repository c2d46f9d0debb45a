"""Which entities a list returns: URL kinds, filters, and what a token may see. Pure functions.

Filters (all given ones must hold):

- ``state``: the entity's condition, as ``kmevents history`` names it: a task's
  ``state`` (``TASK_RUNNING``), an agent's/offer's/framework's ``status``, a
  pod's/namespace's ``phase`` (``Deleted``/``Evicted`` for a pod that was), a
  node's ``Ready``/``NotReady``; several comma-separated values mean any of them;
- ``agent``: an agent id or host name (tasks, offers, executors, pods, nodes, agents);
- ``framework``: a framework id (tasks, offers, executors) or a framework's id/name;
- ``namespace``: pods, RCs, services, namespaces, and tasks of pods;
- ``role``: a Mesos role the entity's resources (or a framework's roles) are in;
- ``labelSelector``: Kubernetes selector syntax over the entity's ``labels``
  (RCs and services have no labels of their own here: their ``selector`` is matched).

Visibility. A token limited to namespaces sees namespaced entities of those
namespaces only (tasks through their pod); cluster-scoped kinds (agents,
offers, frameworks, nodes, roles, executors, the master) are refused with 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kmevents.reducer.conditions import condition
from kmevents.selectors import Selector

#: URL path segment -> reducer kind.
KIND_PATHS: dict[str, str] = {
    "tasks": "task", "agents": "agent", "offers": "offer", "frameworks": "framework", "pods": "pod",
    "namespaces": "namespace", "nodes": "node", "replicationcontrollers": "rc", "services": "service",
    "roles": "role", "executors": "executor", "inverseoffers": "inverse_offer",
}
PATH_OF_KIND = {v: k for k, v in KIND_PATHS.items()}
NAMESPACED = frozenset({"pod", "rc", "service", "namespace", "task"})


def namespace_of(kind: str, value: dict[str, Any] | None, id: str = "") -> str | None:
    """The Kubernetes namespace an entity belongs to, or None (cluster-scoped, or a non-pod task)."""
    v = value or {}
    if kind in ("pod", "rc", "service"):
        ns = v.get("namespace")
        return str(ns) if ns else (id.split("/", 1)[0] if "/" in id else None)
    if kind == "namespace":
        return str(v.get("name") or id) or None
    if kind == "task":
        pod = v.get("pod")
        if isinstance(pod, str) and "/" in pod:
            return pod.split("/", 1)[0]
        ns = (v.get("labels") or {}).get("k8s.mesosphere.io/namespace")
        return str(ns) if ns else None
    return None


def _roles(kind: str, v: dict[str, Any]) -> set[str]:
    if kind == "agent":
        return {r for f in ("total_by_role", "allocated_by_role", "offered_by_role") for r in (v.get(f) or {})}
    if kind in ("task", "offer"):
        return set(v.get("resources") or {})
    if kind == "framework":
        return set(v.get("roles") or [])
    if kind == "role":
        return {str(v.get("name"))}
    return set()


def _agents(kind: str, v: dict[str, Any], id: str) -> set[str]:
    out = {str(v[f]) for f in ("agent_id", "hostname", "binding_host", "node_name") if v.get(f)}
    if kind == "agent":
        out.add(id)
    if kind == "node":
        out.add(str(v.get("name") or id))
    return out


@dataclass(frozen=True)
class EntityFilter:
    states: frozenset[str] | None = None
    agent: str | None = None
    framework: str | None = None
    namespace: str | None = None
    role: str | None = None
    selector: Selector | None = None

    def matches(self, kind: str, id: str, v: dict[str, Any]) -> bool:
        if self.states is not None and condition(v) not in self.states:
            return False
        if self.agent is not None and self.agent not in _agents(kind, v, id):
            return False
        if self.framework is not None:
            fws = {str(v.get("framework_id"))} if v.get("framework_id") else set()
            if kind == "framework":
                fws |= {id, str(v.get("name"))}
            if self.framework not in fws:
                return False
        if self.namespace is not None and namespace_of(kind, v, id) != self.namespace:
            return False
        if self.role is not None and self.role not in _roles(kind, v):
            return False
        if self.selector is not None:
            labels = v.get("labels")
            if labels is None and kind in ("rc", "service"):
                labels = v.get("selector")
            if not self.selector.matches(labels if isinstance(labels, dict) else {}):
                return False
        return True

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("agent", "framework", "namespace", "role")
                 if getattr(self, k) is not None]
        if self.states is not None:
            parts.append("state=" + ",".join(sorted(self.states)))
        if self.selector is not None:
            parts.append(f"labelSelector={self.selector.text}")
        return "&".join(sorted(parts))


def visible(namespaces: frozenset[str] | None, kind: str, id: str, v: dict[str, Any] | None) -> bool:
    """May a token limited to ``namespaces`` (None: all) see this entity?"""
    if namespaces is None:
        return True
    if kind not in NAMESPACED:
        return False
    return namespace_of(kind, v, id) in namespaces


def event_namespaces(ev: dict[str, Any]) -> set[str]:
    """Every namespace an event's payload names (``namespace`` fields anywhere in it)."""
    out: set[str] = set()
    stack: list[Any] = [ev.get("payload")]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, val in o.items():
                if k == "namespace" and isinstance(val, str):
                    out.add(val)
                elif isinstance(val, (dict, list)):
                    stack.append(val)
        elif isinstance(o, list):
            stack.extend(x for x in o if isinstance(x, (dict, list)))
    labels_ns = ((ev.get("payload") or {}).get("status") or {}).get("labels") if isinstance(
        ev.get("payload"), dict) else None
    if isinstance(labels_ns, dict) and labels_ns.get("k8s.mesosphere.io/namespace"):
        out.add(str(labels_ns["k8s.mesosphere.io/namespace"]))
    return out


def event_visible(namespaces: frozenset[str] | None, ev: dict[str, Any]) -> bool:
    """A namespace-limited token sees events that name one of its namespaces, and nothing else."""
    if namespaces is None:
        return True
    return bool(event_namespaces(ev) & namespaces)


def namespace_of_id(kind: str, id: str) -> str | None:
    """The namespace an entity's id alone names (``ns/name`` of pods, RCs and services; a
    namespace's own name), or None when the id does not say (tasks)."""
    if kind in ("pod", "rc", "service") and "/" in id:
        return id.split("/", 1)[0]
    if kind == "namespace":
        return id or None
    return None


def visible_history(namespaces: frozenset[str] | None, entries: list[dict[str, Any]],
                    related: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """What a token limited to ``namespaces`` may see of a history (``replay.history.collect``).

    Each entry's ``results`` keep the entities the token may read directly (an
    entity's namespace is the one its latest value named; a deleted one keeps it);
    an entry stays when one result is left or its event is one the token may see
    (``event_visible``, marked ``_visible`` by the caller). ``related`` keeps the
    keys with a visible result. Without a limit, everything; ``_visible`` is
    removed either way."""
    if namespaces is None:
        for e in entries:
            e.pop("_visible", None)
        return entries, related
    ns_of: dict[str, str | None] = {}
    shown: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in entries:
        results: dict[str, Any] = {}
        for key, res in (e.get("results") or {}).items():
            kind, _, id = key.partition("/")
            value = res.get("value") if isinstance(res, dict) else None
            if value is not None or key not in ns_of:
                ns_of[key] = namespace_of(kind, value, id) if kind in NAMESPACED else None
            if ns_of[key] in namespaces:
                results[key] = res
                seen.add(key)
        if results or e.pop("_visible", False):
            e.pop("_visible", None)
            shown.append({**e, "results": results})
    return shown, [k for k in related if k in seen]
