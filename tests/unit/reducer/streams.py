"""Event builders and stream strategies for the reducer tests.

``Log`` builds catalogue-shaped events by hand (one helper per event the
semantic tests need). ``mixed_streams`` composes the shared strategies of
tests/strategies.py: several coherent task lifecycles (offer, launch, pod,
status updates with Mesos re-deliveries) interleaved with random events of
every type, all in one cluster, on the shared small id alphabets so that
events collide on entities.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from kmevents.reducer import ClusterState
from kmevents.reducer.snapshot import snapshot_entities
from tests.strategies import CLUSTERS, event_streams, task_lifecycle

Event = dict[str, Any]
BASE = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def at(us: int) -> str:
    return (BASE + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def res(cpus: float, mem: float, role: str = "*", ports: list[list[int]] | None = None) -> list[dict[str, Any]]:
    out = [{"name": "cpus", "role": role, "scalar": cpus, "ranges": None},
           {"name": "mem", "role": role, "scalar": mem, "ranges": None}]
    if ports:
        out.append({"name": "ports", "role": role, "scalar": None, "ranges": ports})
    return out


class Log:
    """Builds one cluster's events with increasing ids and times."""

    def __init__(self, cluster: str = "c1") -> None:
        self.cluster = cluster
        self.n = 0

    def ev(self, type_: str, payload: dict[str, Any], key: str | None = None) -> Event:
        self.n += 1
        return {
            "event_id": f"e{self.n}", "type": type_, "schema_version": 1, "cluster": self.cluster,
            "source": {"kind": "simulator", "stream_id": "t", "seq": self.n},
            "occurred_at": at(self.n * 1000), "clock": "master", "raw_type": "X", "actor": None,
            "correlation_id": None, "causation_id": None, "dedupe_key": key or f"k{self.n}",
            "redacted": [], "payload": payload,
        }

    def agent_added(self, aid: str, cpus: float = 8.0, mem: float = 8192.0, role: str = "*") -> Event:
        return self.ev("agent.added", {"agent": {"id": aid, "hostname": f"h-{aid}", "port": 5051,
                                                 "resources": res(cpus, mem, role), "attributes": {}}})

    def agent_removed(self, aid: str, reason: str = "lost") -> Event:
        return self.ev("agent.removed", {"agent_id": aid, "reason": reason})

    def offer(self, oid: str, aid: str, cpus: float = 1.0, mem: float = 1024.0, role: str = "*") -> Event:
        return self.ev("offer.offered", {"offer": {"id": oid, "framework_id": "fw", "agent_id": aid,
                                                   "hostname": f"h-{aid}", "resources": res(cpus, mem, role)}})

    def offer_closed(self, kind: str, oid: str, **extra: Any) -> Event:
        return self.ev(f"offer.{kind}", {"offer_id": oid, **extra})

    def launched(self, tid: str, aid: str, cpus: float = 0.5, mem: float = 256.0, role: str = "*",
                 pod: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Event:
        return self.ev("task.launched", {"offer_id": None, "task": {
            "task_id": tid, "name": tid, "framework_id": "fw", "agent_id": aid, "executor_id": "ex",
            "resources": res(cpus, mem, role), "labels": labels or {}, "pod": pod, "data": None}})

    def added(self, tid: str, aid: str, state: str, cpus: float = 0.5, mem: float = 256.0) -> Event:
        return self.ev("task.added", {"task": {
            "task_id": tid, "name": tid, "framework_id": "fw", "agent_id": aid, "executor_id": "ex",
            "resources": res(cpus, mem), "labels": {}, "pod": None, "data": None, "state": state}})

    def status(self, tid: str, state: str, *, uuid: str | None = None, reason: str | None = None,
               aid: str = "a1", labels: dict[str, str] | None = None, data: str | None = None,
               healthy: bool | None = None, source: str = "SOURCE_EXECUTOR", key: str | None = None) -> Event:
        return self.ev("task.status_updated", {"status": {
            "task_id": tid, "state": state, "source": source, "reason": reason, "message": None,
            "uuid": uuid, "healthy": healthy, "timestamp": float(self.n), "agent_id": aid,
            "executor_id": "ex", "labels": labels, "data": data}}, key)

    def pod(self, ns: str, name: str, uid: str, labels: dict[str, str], phase: str = "Running",
            ready: bool = True) -> Event:
        return self.ev("pod.upserted", {"pod": {
            "namespace": ns, "name": name, "uid": uid, "labels": labels, "annotations": {},
            "phase": phase, "node_name": "n1", "ready": ready, "volumes": [], "containers": []}})

    def pod_deleted(self, ns: str, name: str, uid: str) -> Event:
        return self.ev("pod.deleted", {"pod": {"namespace": ns, "name": name, "uid": uid}, "reason": None})

    def rc(self, ns: str, name: str, selector: dict[str, str], replicas: int = 3) -> Event:
        return self.ev("replication_controller.upserted", {"rc": {
            "namespace": ns, "name": name, "replicas": replicas, "selector": selector,
            "template_image": "img:1"}})

    def service(self, ns: str, name: str, selector: dict[str, str]) -> Event:
        return self.ev("service.upserted", {"service": {
            "namespace": ns, "name": name, "selector": selector, "portal_ip": "10.0.0.1", "ports": []}})

    def endpoints(self, ns: str, name: str, pods: list[str]) -> Event:
        return self.ev("endpoints.observed", {"namespace": ns, "name": name, "ports": [], "addresses": [
            {"ip": f"10.1.0.{i}", "pod": {"namespace": ns, "name": p, "uid": None}}
            for i, p in enumerate(pods)]})


def entities(state: ClusterState) -> dict[str, Any]:
    """The entity part of a state, as canonical JSON values (materialised)."""
    return snapshot_entities(state.to_snapshot())


@st.composite
def mixed_streams(draw: Any, *, max_random: int = 40, max_tasks: int = 4) -> list[Event]:
    """Task lifecycles interleaved with random events of every type, one cluster."""
    parts = [draw(task_lifecycle(cluster=CLUSTERS[0], n=n))
             for n in draw(st.lists(st.integers(0, 5), max_size=max_tasks, unique=True))]
    parts.append(draw(event_streams(cluster=CLUSTERS[0], min_size=0, max_size=max_random)))
    out: list[Event] = []
    cursors = [0] * len(parts)
    while True:
        live = [i for i, p in enumerate(parts) if cursors[i] < len(p)]
        if not live:
            break
        i = draw(st.sampled_from(live))
        out.append(parts[i][cursors[i]])
        cursors[i] += 1
    # Mesos re-delivers: repeat a few events later in the stream
    for j in draw(st.lists(st.integers(0, max(len(out) - 1, 0)), max_size=3)):
        if out:
            out.insert(draw(st.integers(j, len(out))), out[j])
    return out
