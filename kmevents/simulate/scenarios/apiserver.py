"""What the Kubernetes apiserver's watch reports about pods and nodes, and its Events.

Every change a family makes to a pod or a node is written here as the record
a watch on the apiserver would deliver (stream ``k8s``): ``pod.upserted``
carries the whole pod with the next ``resource_version`` (the apiserver's
counter is ``World.rv``); ``node.upserted`` the node's readiness, its
pressure conditions and whether k8sm's kubelet, proxy and cAdvisor answer;
``k8s_event.recorded`` an Event about a pod (FailedScheduling, FailedMount,
BackOff, Evicted) with the count Kubernetes keeps per (pod, reason).
"""

from __future__ import annotations

from kmevents.simulate.emit import K8S
from kmevents.simulate.model import Agent, Pod
from kmevents.simulate.scenarios.world import A_K8SM, A_NODECTL, World

NODE_MONITOR_GRACE = 40.0
"""Seconds the node controller waits for a node's status before marking it NotReady."""


def pod_upsert(w: World, pod: Pod, raw: str, actor: dict[str, str], cause: str | None = None) -> str:
    t = w.tick()
    w.rv += 1
    node = pod.node
    return w.emit(
        "pod.upserted", raw, "apiserver", t,
        {"pod": {"namespace": pod.ns, "name": pod.name, "uid": pod.uid, "labels": pod.labels,
                 "resource_version": str(w.rv),
                 "annotations": pod.annotations, "phase": pod.phase,
                 "node_name": node.hostname if node is not None else None, "ready": pod.ready,
                 "volumes": pod.volumes,
                 "containers": [{"name": c.name, "image": c.image, "ready": c.ready,
                                 "restart_count": c.restarts, "last_termination": c.last}
                                for c in pod.containers]}},
        f"pod.upserted|{pod.uid}|{w.rv}", pod.uid, cause, actor, K8S)


def node_upsert(w: World, agent: Agent, actor: dict[str, str] | None = None,
                raw: str = "MODIFIED") -> None:
    t = w.tick()
    w.emit("node.upserted", raw, "apiserver", t,
           {"node": {"name": agent.hostname, "ready": agent.node_ready,
                     "conditions": {"MemoryPressure": agent.pressure, "DiskPressure": False,
                                    "PIDPressure": False, "NetworkUnavailable": False},
                     "agent_id": agent.id,
                     "components": {"kubelet": agent.kubelet, "proxy": agent.kubelet,
                                    "cadvisor": agent.kubelet}}},
           f"node.upserted|{agent.hostname}|{w.em.fmt(t)}", None, None,
           actor or A_NODECTL, K8S)


def node_deleted(w: World, agent: Agent) -> None:
    t = w.tick()
    w.emit("node.deleted", "DELETED", "apiserver", t, {"name": agent.hostname},
           f"node.deleted|{agent.hostname}|{w.em.fmt(t)}", None, None, A_NODECTL, K8S)


def k8s_event(w: World, pod: Pod, reason: str, message: str, count: int,
              actor: dict[str, str] | None = None) -> None:
    t = w.tick()
    w.emit("k8s_event.recorded", "ADDED", "apiserver", t,
           {"namespace": pod.ns, "involved": {"kind": "Pod", "name": pod.name, "uid": pod.uid},
            "reason": reason, "message": message, "count": count},
           f"k8s_event.recorded|{pod.ns}|{pod.uid}|{reason}|{count}", pod.uid, None,
           actor or A_K8SM, K8S)
