"""A pod's life in the apiserver: created, queued for k8sm, failed, deleted, garbage-collected.

Created pods (by their RC's sync, by users, by CI in a namespace) go to the
pending queue k8sm's scheduling loop drains (``k8sm_scheduler.py``).
Deletion follows k8sm: a pod whose task still runs is first marked
not-ready (it leaves its services' endpoints), k8sm asks Mesos to kill the
task (``task.kill_requested``, reason ``pod-deleted``), the executor answers
TASK_KILLED, and only then is the pod deleted. A pod whose task died is
Failed, then deleted by k8sm and replaced by its RC; one without an RC waits
for the pod garbage collector.

The replication manager's sync lives here too, because it closes the loop a
pod's end opens: a pod of an RC fails or goes, ``arm_rc_sync`` arms one sync
a moment later, and ``rc_sync`` creates the missing pods or deletes the
surplus (pending ones first, then the newest), as Kubernetes' RC manager does
when its pod watch reports the change.
"""

from __future__ import annotations

from typing import Any

from kmevents.simulate.emit import K8S, K8SM
from kmevents.simulate.model import RC, Container, Pod, Task
from kmevents.simulate.scenarios.apiserver import pod_upsert
from kmevents.simulate.scenarios.services import endpoints_dirty
from kmevents.simulate.scenarios.tasks import GONE, status, unplace
from kmevents.simulate.scenarios.world import A_K8SM, A_PODGC, A_RCM, World


def create_pod(w: World, ns: str, name: str, labels: dict[str, str], annotations: dict[str, str],
               volumes: list[dict[str, Any]], containers: list[tuple[str, str]], rc: RC | None,
               cpus: float, mem: float, *, batch: bool, actor: dict[str, str]) -> Pod:
    pod = new_pod(w, ns, name, labels, annotations, volumes, containers, rc, cpus, mem,
                  batch=batch)
    pod.created_eid = pod_upsert(w, pod, "ADDED", actor)
    w.pending.append(pod)
    return pod


def new_pod(w: World, ns: str, name: str, labels: dict[str, str], annotations: dict[str, str],
            volumes: list[dict[str, Any]], containers: list[tuple[str, str]], rc: RC | None,
            cpus: float, mem: float, *, batch: bool) -> Pod:
    """A pod in the world (its namespace's, its RC's); nothing is written, nothing queued."""
    pod = Pod(ns, name, w.uid(), labels, annotations, volumes,
              [Container(n, i) for n, i in containers], rc, cpus, mem, batch)
    w.pods[pod.uid] = pod
    in_ns = w.ns_pods.get(ns)
    if in_ns is None:
        in_ns = w.ns_pods[ns] = {}
    in_ns[pod.uid] = pod
    if rc is not None:
        rc.pods[pod.uid] = pod
    return pod


def requeue(w: World, pod: Pod) -> None:
    if pod.uid in w.pods and not pod.deleting and pod.task is None:
        w.pending.append(pod)


def delete_pod(w: World, pod: Pod, actor: dict[str, str], reason: str | None,
               cause: str | None = None) -> None:
    """Delete a pod: k8sm kills its task first (``pod-deleted``), then the pod goes."""
    if pod.deleting:
        return
    pod.deleting = True
    if pod.ready:
        # graceful deletion: the terminating pod turns not-ready and leaves its endpoints
        pod.ready = False
        pod_upsert(w, pod, "MODIFIED", actor, cause)
        endpoints_dirty(w, pod)
    task = pod.task
    if task is not None and task.state not in GONE and task.agent.state in ("active", "draining"):
        t = w.tick()
        fid = task.framework.id
        kill = w.emit("task.kill_requested", "KILL", "scheduler", t,
                      {"framework_id": fid, "task_id": task.id, "agent_id": task.agent.id, "reason": "pod-deleted"},
                      f"task.kill_requested|{fid}|{task.id}|{w.em.fmt(t)}", pod.uid,
                      cause, A_K8SM, K8SM, version=2)
        w.after(w.uniform(0.2, 3.0), pod_killed, pod, task, kill, actor, reason,
                task.agent.generation)
    else:
        pod_deleted(w, pod, actor, reason, cause)


def pod_killed(w: World, pod: Pod, task: Task, kill: str, actor: dict[str, str],
               reason: str | None, gen: int) -> None:
    if task.agent.generation == gen and task.state not in GONE:
        status(w, task, "TASK_KILLED", "SOURCE_EXECUTOR", None, "pod-deleted", cause=kill)
        unplace(w, task)
    pod_deleted(w, pod, actor, reason, kill)


def pod_deleted(w: World, pod: Pod, actor: dict[str, str], reason: str | None,
                cause: str | None = None) -> None:
    if w.pods.pop(pod.uid, None) is None:
        return
    in_ns = w.ns_pods[pod.ns]
    del in_ns[pod.uid]
    if not in_ns:
        del w.ns_pods[pod.ns]
    pod.deleting = True
    was_ready = pod.ready
    pod.ready = False
    w.running_pods.discard(pod)
    if pod.rc is not None:
        pod.rc.pods.pop(pod.uid, None)
    if pod.batch:
        w.batch_live -= 1
    if pod.labels.get("kmevents.sim/unschedulable"):
        w.unschedulable_live -= 1
    task = pod.task
    if task is not None and task.state in GONE:
        unplace(w, task)
    # Break the pod <-> task cycle so that reference counting frees both when they
    # are done (the GC runs rarely while generating). Nothing reads a deleted pod's task.
    pod.task = None
    t = w.tick()
    w.emit("pod.deleted", "DELETED", "apiserver", t, {"pod": pod.ref, "reason": reason},
           f"pod.deleted|{pod.uid}", pod.uid, cause, actor, K8S)
    if was_ready:
        endpoints_dirty(w, pod)
    arm_rc_sync(w, pod.rc)


def pod_failed(w: World, pod: Pod, reason: str) -> None:
    """A pod whose task died: Failed in k8s, deleted by k8sm, replaced by its RC."""
    w.running_pods.discard(pod)
    pod.phase = "Failed"
    pod.ready = False
    for c in pod.containers:
        c.ready = False
    pod_upsert(w, pod, "MODIFIED", A_K8SM)
    endpoints_dirty(w, pod)
    if pod.rc is not None:
        arm_rc_sync(w, pod.rc)
        w.after(w.uniform(0.5, 5.0), gc_failed, pod, reason)
    else:
        w.after(w.uniform(60, 600), gc_pod, pod)


def gc_pod(w: World, pod: Pod) -> None:
    """The pod garbage collector removes a finished or failed pod nobody deleted."""
    if pod.uid in w.pods and not pod.deleting:
        pod_deleted(w, pod, A_PODGC, "garbage-collected")


def gc_failed(w: World, pod: Pod, reason: str) -> None:
    if pod.uid in w.pods and not pod.deleting:
        pod_deleted(w, pod, A_K8SM, reason)


def rc_live(rc: RC) -> list[Pod]:
    """The RC's pods that count towards its replicas: not being deleted, not finished."""
    return [p for p in rc.pods.values()
            if not p.deleting and p.phase not in ("Failed", "Succeeded")]


def rc_sync(w: World, rc: RC) -> None:
    rc.sync_armed = False
    if rc.deleted:
        return
    live = rc_live(rc)
    missing = rc.replicas - len(live)
    if missing > 0:
        created_by = f"ReplicationController/{rc.ns}/{rc.name}"
        for _ in range(missing):
            create_pod(w, rc.ns, f"{rc.name}-{w.suffix()}", rc.labels,
                       {"kubernetes.io/created-by": created_by}, rc.volumes,
                       rc.containers, rc, rc.cpus, rc.mem, batch=False, actor=A_RCM)
    elif missing < 0:
        # Scale down: pending pods first, then the newest.
        live.sort(key=lambda p: (p.task is not None, -len(p.name)))
        for pod in live[:-missing]:
            delete_pod(w, pod, A_RCM, None)


def arm_rc_sync(w: World, rc: RC | None, delay: float = 0.5) -> None:
    if rc is not None and not rc.sync_armed:
        rc.sync_armed = True
        w.after(w.uniform(delay * 0.5, delay * 2), rc_sync, rc)


def pick_rc_pod(w: World) -> Pod | None:
    """A running pod that belongs to an RC (so that it comes back), or None after four tries."""
    for _ in range(4):
        pod = w.running_pods.choice(w.rng)
        if pod is not None and pod.rc is not None and not pod.deleting:
            return pod
    return None
