"""Evictions: node pressure (the kubelet), the eviction API (a user), the node controller.

Node pressure (``node_pressure``): an agent reports MemoryPressure, its
kubelet evicts one or two running pods (``pod.evicted`` kind
``node_pressure``, an Evicted Event, TASK_FAILED ``pod-evicted``, the pod
Failed), their RCs replace them, and the pressure clears later. The eviction
API (``api_eviction``): a user evicts a running RC pod, which is then deleted
as any pod is. The node controller (``kubelet_down``): k8sm's kubelet on an
agent stops reporting, the node turns NotReady after ``NODE_MONITOR_GRACE``,
and when it stays so for ``--pod-eviction-timeout`` every pod there is
evicted and deleted; the kubelet comes back before that (about a third of
the time) or after.
"""

from __future__ import annotations

from kmevents.simulate.emit import K8S
from kmevents.simulate.model import Agent, Pod
from kmevents.simulate.scenarios.apiserver import (
    NODE_MONITOR_GRACE,
    k8s_event,
    node_upsert,
    pod_upsert,
)
from kmevents.simulate.scenarios.pods import arm_rc_sync, delete_pod, gc_pod, pick_rc_pod
from kmevents.simulate.scenarios.services import endpoints_dirty
from kmevents.simulate.scenarios.tasks import status, unplace
from kmevents.simulate.scenarios.world import A_NODECTL, World


def agent_with_pods(w: World) -> Agent | None:
    """An active agent running at least one pod, or None after eight tries."""
    for _ in range(8):
        agent = w.active_agents.choice(w.rng)
        if agent is not None and agent.state == "active" and any(
                t.pod is not None and t.pod.phase == "Running" for t in agent.tasks.values()):
            return agent
    return None


def node_pressure(w: World) -> None:
    agent = agent_with_pods(w)
    if agent is None or agent.pressure or not agent.kubelet:
        return
    agent.pressure = True
    node = {"kind": "node", "name": agent.hostname}
    node_upsert(w, agent, node)
    victims = [t.pod for t in agent.tasks.values()
               if t.pod is not None and t.pod.phase == "Running" and not t.pod.deleting]
    w.rng.shuffle(victims)
    for pod in victims[: 1 + int(w.rng.random() * 2)]:
        assert pod is not None
        evict_by_kubelet(w, pod, node)
    w.after(w.uniform(20, 120), pressure_over, agent, agent.generation)


def evict_by_kubelet(w: World, pod: Pod, node: dict[str, str]) -> None:
    msg = "The node was low on resource: memory."
    t = w.tick()
    ev = w.emit("pod.evicted", "Evicted", "apiserver", t,
                {"pod": pod.ref, "kind": "node_pressure", "reason": "Evicted", "message": msg},
                f"pod.evicted|{pod.uid}", pod.uid, None, node, K8S)
    pod.evicted = True
    k8s_event(w, pod, "Evicted", msg, 1, node)
    task = pod.task
    if task is not None:
        status(w, task, "TASK_FAILED", "SOURCE_EXECUTOR", None, f"pod-evicted: {msg}", cause=ev)
        unplace(w, task)
    w.running_pods.discard(pod)
    pod.phase = "Failed"
    pod.ready = False
    for c in pod.containers:
        c.ready = False
    pod_upsert(w, pod, "MODIFIED", node, ev)
    endpoints_dirty(w, pod)
    arm_rc_sync(w, pod.rc)
    w.after(w.uniform(30, 300), gc_pod, pod)


def pressure_over(w: World, agent: Agent, gen: int) -> None:
    if agent.generation != gen or agent.state != "active":
        return
    agent.pressure = False
    node_upsert(w, agent, {"kind": "node", "name": agent.hostname})


def api_eviction(w: World) -> None:
    pod = pick_rc_pod(w)
    if pod is None:
        return
    user = w.actor_user()
    t = w.tick()
    ev = w.emit("pod.evicted", "create pods/eviction", "apiserver", t,
                {"pod": pod.ref, "kind": "api", "reason": "EvictionByEvictionAPI",
                 "message": "Eviction API: evicting pod for node maintenance"},
                f"pod.evicted|{pod.uid}", pod.uid, None, user, K8S)
    pod.evicted = True
    delete_pod(w, pod, user, "evicted", ev)


def kubelet_down(w: World, recover_early: bool | None = None) -> bool:
    """k8sm's kubelet on one agent stops reporting: NotReady, then node-controller eviction."""
    agent = agent_with_pods(w)
    if agent is None or not agent.kubelet:
        return False
    agent.kubelet = False
    w.after(NODE_MONITOR_GRACE, node_not_ready, agent, agent.generation)
    timeout = w.cfg.pod_eviction_timeout
    if recover_early is None:
        recover_early = w.rng.random() < 0.3
    if recover_early:
        w.after(w.uniform(60, NODE_MONITOR_GRACE + timeout * 0.8), kubelet_back,
                agent, agent.generation)
    else:
        w.after(NODE_MONITOR_GRACE + timeout + w.uniform(30, 300), kubelet_back,
                agent, agent.generation)
    w.after(NODE_MONITOR_GRACE + timeout, node_controller_evict, agent, agent.generation)
    return True


def node_not_ready(w: World, agent: Agent, gen: int) -> None:
    if agent.generation == gen and not agent.kubelet and agent.state == "active":
        agent.node_ready = False
        node_upsert(w, agent, A_NODECTL)


def node_controller_evict(w: World, agent: Agent, gen: int) -> None:
    if agent.generation != gen or agent.kubelet or agent.state != "active":
        return
    minutes = int(w.cfg.pod_eviction_timeout // 60)
    secs = int(w.cfg.pod_eviction_timeout % 60)
    msg = f"Node {agent.hostname} NotReady for more than {minutes}m{secs}s"
    for task in list(agent.tasks.values()):
        pod = task.pod
        if pod is None or pod.deleting:
            continue
        t = w.tick()
        ev = w.emit("pod.evicted", "NodeControllerEviction", "apiserver", t,
                    {"pod": pod.ref, "kind": "node_controller",
                     "reason": "NodeControllerEviction", "message": msg},
                    f"pod.evicted|{pod.uid}", pod.uid, None, A_NODECTL, K8S)
        pod.evicted = True
        delete_pod(w, pod, A_NODECTL, "node-controller-eviction", ev)


def kubelet_back(w: World, agent: Agent, gen: int) -> None:
    if agent.generation != gen or agent.kubelet or agent.state != "active":
        return
    agent.kubelet = True
    agent.node_ready = True
    node_upsert(w, agent, {"kind": "node", "name": agent.hostname})
