"""Trouble inside a running pod: containers restart, the pod's task fails.

A container exits (OOMKilled with 137, or an error code) and the kubelet
restarts it: the pod turns not-ready and leaves its endpoints, the restart
count grows, and after the third restart a BackOff Event; the container is
ready again after a back-off that grows with its restarts
(``container_restart``, then the timer ``container_back``). A pod's whole
task can fail too (``task_fail``: the executor terminated, or every
container exited): TASK_FAILED, the pod Failed, its RC replaces it.
"""

from __future__ import annotations

from kmevents.simulate.model import Container, Pod
from kmevents.simulate.scenarios.apiserver import k8s_event, pod_upsert
from kmevents.simulate.scenarios.pods import pod_failed
from kmevents.simulate.scenarios.services import endpoints_dirty
from kmevents.simulate.scenarios.tasks import status, unplace
from kmevents.simulate.scenarios.world import World


def container_restart(w: World) -> None:
    pod = w.running_pods.choice(w.rng)
    if pod is None or pod.deleting or pod.task is None or pod.task.agent.state != "active":
        return
    c = pod.containers[int(w.rng.random() * len(pod.containers))]
    c.restarts += 1
    c.ready = False
    if w.rng.random() < 0.4:
        c.last = {"reason": "OOMKilled", "exit_code": 137}
    else:
        c.last = {"reason": "Error", "exit_code": (1, 2, 143, 255)[int(w.rng.random() * 4)]}
    was_ready = pod.ready
    pod.ready = False
    node = {"kind": "node", "name": pod.task.agent.hostname}
    pod_upsert(w, pod, "MODIFIED", node)
    if was_ready:
        endpoints_dirty(w, pod)
    if c.restarts > 3:
        k8s_event(w, pod, "BackOff", f"Back-off restarting failed container {c.name}",
                  c.restarts - 3, node)
    w.after(w.uniform(2, 20 * min(c.restarts, 6)), container_back, pod, c, c.restarts)


def container_back(w: World, pod: Pod, c: Container, restarts: int) -> None:
    if pod.deleting or pod.phase != "Running" or c.restarts != restarts or pod.task is None:
        return
    c.ready = True
    pod.ready = all(x.ready for x in pod.containers)
    pod_upsert(w, pod, "MODIFIED", {"kind": "node", "name": pod.task.agent.hostname})
    if pod.ready:
        endpoints_dirty(w, pod)


def task_fail(w: World) -> None:
    pod = w.running_pods.choice(w.rng)
    if pod is None or pod.deleting or pod.task is None or pod.task.agent.state != "active":
        return
    task = pod.task
    if task.state != "TASK_RUNNING":
        return
    if w.rng.random() < 0.5:
        status(w, task, "TASK_FAILED", "SOURCE_AGENT", "REASON_EXECUTOR_TERMINATED",
               "Executor terminated")
    else:
        status(w, task, "TASK_FAILED", "SOURCE_EXECUTOR", None,
               "pod-failed: containers exited")
    unplace(w, task)
    pod_failed(w, pod, "task-failed")
