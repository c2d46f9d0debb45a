"""k8sm's scheduler: pending pods onto k8sm's offers, the launch, and the task's way to RUNNING.

Once a second (``k8sm_tick``) k8sm takes pods off the pending queue and binds
each to one offer that fits it (k8sm launches one pod per offer): the offer is
accepted, the task launched with k8sm's executor and labels, the executor
added on the agent's first pod, and the pod bound (``pod.scheduled``) with
k8sm's ``k8s.mesosphere.io/*`` annotations. When nothing fits, a
FailedScheduling Event and k8sm's pod backoff (1 s, doubling up to 60 s).
The task then goes STAGING -> STARTING -> RUNNING on timers; a Ceph volume
sometimes fails to map first (FailedMount, 20 s later), an image sometimes
fails to pull (TASK_FAILED); a batch pod's task finishes (or fails) minutes
later. Each timer carries the agent's generation, so a step armed before its
agent was lost or drained does nothing.
"""

from __future__ import annotations

from kmevents.simulate.emit import K8SM
from kmevents.simulate.model import Agent, Offer, Pod, Task
from kmevents.simulate.scenarios.apiserver import k8s_event, pod_upsert
from kmevents.simulate.scenarios.offers import drop_offer
from kmevents.simulate.scenarios.pods import gc_pod, pod_failed, requeue
from kmevents.simulate.scenarios.services import endpoints_dirty
from kmevents.simulate.scenarios.tasks import alive, place, status, unplace
from kmevents.simulate.scenarios.world import A_K8SM, World, b64

POD_BACKOFF_INITIAL = 1.0
POD_BACKOFF_MAX = 60.0


def k8sm_tick(w: World) -> None:
    """k8sm's scheduling loop: one pod per offer, FailedScheduling + backoff when nothing fits."""
    w.after(w.k8sm_every, k8sm_tick)
    pending = w.pending
    budget = max(4, len(w.k8sm_offers) // 2)
    while pending and budget > 0:
        pod = pending.popleft()
        if pod.deleting or pod.task is not None or pod.uid not in w.pods:
            continue
        budget -= 1
        offer = find_offer(w, pod)
        if offer is not None:
            launch_pod(w, pod, offer)
        else:
            pod.attempts += 1
            msg = (f"pod {pod.ns}/{pod.name}: no offers with enough resources "
                   f"(cpus {pod.cpus:g}, mem {pod.mem:g} MB)")
            if not w.k8sm_offers:
                msg = f"pod {pod.ns}/{pod.name}: no offers available"
            k8s_event(w, pod, "FailedScheduling", msg, pod.attempts)
            backoff = min(POD_BACKOFF_MAX, POD_BACKOFF_INITIAL * 2 ** (pod.attempts - 1))
            w.after(backoff, requeue, pod)


def offer_arrived(w: World, offer: Offer) -> None:
    """k8sm's loop was waiting for an offer: the next pending pod goes on it, if it fits
    (else the pod stays first in line for the loop)."""
    pending = w.pending
    while pending:
        pod = pending[0]
        if pod.deleting or pod.task is not None or pod.uid not in w.pods:
            pending.popleft()
            continue
        if offer.cpus >= pod.cpus and offer.mem >= pod.mem:
            pending.popleft()
            launch_pod(w, pod, offer)
        return


def find_offer(w: World, pod: Pod) -> Offer | None:
    """One of k8sm's offers with room for the pod: up to 24 random draws, else None."""
    items = w.k8sm_offers.items
    n = len(items)
    if not n:
        return None
    rng = w.rng
    for _ in range(min(n, 24)):
        offer = items[int(rng.random() * n)]
        if offer.cpus >= pod.cpus and offer.mem >= pod.mem:
            return offer
    return None


def launch_pod(w: World, pod: Pod, offer: Offer) -> None:
    """Accept the offer, launch the pod's task, bind the pod; STAGING follows on a timer."""
    agent = offer.agent
    fw = w.frameworks[0]
    drop_offer(w, offer)
    task_id = f"pod.{w.uid()}"
    t = w.tick()
    acc = w.emit("offer.accepted", "ACCEPT", "scheduler", t,
                 {"offer_id": offer.id, "task_ids": [task_id]},
                 f"offer.accepted|{offer.id}", offer.id, offer.event_id, A_K8SM, K8SM)
    task = pod_task(w, pod, agent, task_id)
    t = w.tick()
    task.launch_eid = w.emit("task.launched", "ACCEPT", "scheduler", t,
                             {"offer_id": offer.id, "task": task.info},
                             f"task.launched|{fw.id}|{task_id}", pod.uid, acc, A_K8SM, K8SM, version=2)
    place(task)
    if not agent.executor:
        agent.executor = True
        executor_added(w, agent, task.launch_eid)
    bind_pod(w, pod, task, offer.id)
    t = w.tick()
    bind = w.emit("pod.scheduled", "BINDING", "scheduler", t,
                  {"pod": pod.ref, "host": agent.hostname, "task_id": task_id,
                   "agent_id": agent.id, "offer_id": offer.id},
                  f"pod.scheduled|{pod.uid}|{task_id}", pod.uid, task.launch_eid, A_K8SM, K8SM)
    pod_upsert(w, pod, "MODIFIED", A_K8SM, bind)
    w.after(w.uniform(0.05, 0.5), k8sm_staging, task, agent.generation)


def pod_task(w: World, pod: Pod, agent: Agent, task_id: str) -> Task:
    """k8sm's task for ``pod`` on ``agent``: k8sm's executor and labels, the pod's resources,
    the pod itself in ``data``."""
    fw = w.frameworks[0]
    labels = {"k8s.mesosphere.io/namespace": pod.ns, "k8s.mesosphere.io/name": pod.name}
    task = Task(task_id, f"{pod.name}.{pod.ns}.pod", fw, agent, pod, pod.cpus, pod.mem, 0.0,
                w.executor_id, labels)
    task.info = {
        "task_id": task_id, "name": task.name, "framework_id": fw.id, "agent_id": agent.id,
        "executor_id": w.executor_id,
        "resources": [{"name": "cpus", "role": "*", "scalar": pod.cpus, "ranges": None},
                      {"name": "mem", "role": "*", "scalar": pod.mem, "ranges": None}],
        "labels": labels, "pod": pod.ref,
        "data": b64(f'{{"kind":"Pod","namespace":"{pod.ns}","name":"{pod.name}"}}'.encode()),
    }
    return task


def executor_added(w: World, agent: Agent, cause: str | None) -> None:
    """k8sm's executor starts on ``agent`` (with the first pod k8sm puts there)."""
    t = w.tick()
    w.emit("executor.added", "EXECUTOR_ADDED", "master", t,
           {"executor": {"executor_id": w.executor_id, "framework_id": w.frameworks[0].id,
                         "agent_id": agent.id}},
           f"executor.added|{agent.id}|{w.executor_id}", None, cause, w.actor_master())


def bind_pod(w: World, pod: Pod, task: Task, offer_id: str) -> None:
    """The pod is bound to its task's agent, with k8sm's ``k8s.mesosphere.io/*`` annotations."""
    agent = task.agent
    pod.task = task
    pod.node = agent
    pod.annotations = {**pod.annotations,
                       "k8s.mesosphere.io/taskId": task.id,
                       "k8s.mesosphere.io/slaveId": agent.id,
                       "k8s.mesosphere.io/offerId": offer_id,
                       "k8s.mesosphere.io/bindingHost": agent.hostname,
                       "k8s.mesosphere.io/executorId": w.executor_id}


def give_ip(pod: Pod, agent: Agent) -> None:
    """The pod's IP from its agent's pod range (``10.<16 + idx/256>.<idx%256>.<2..250>``)."""
    pod.ip = f"10.{16 + agent.idx // 256}.{agent.idx % 256}.{agent.pod_ip_next}"
    pod.addr = {"ip": pod.ip, "pod": pod.ref}
    agent.pod_ip_next = agent.pod_ip_next % 250 + 2


def k8sm_staging(w: World, task: Task, gen: int) -> None:
    if not alive(task, "TASK_STAGING", gen) or task.pod is None or task.pod.deleting:
        return
    status(w, task, "TASK_STAGING", "SOURCE_AGENT")
    task.state = "TASK_STAGING"
    w.after(w.uniform(0.3, 2.0), k8sm_starting, task, gen)


def k8sm_starting(w: World, task: Task, gen: int) -> None:
    pod = task.pod
    if not alive(task, "TASK_STAGING", gen) or pod is None or pod.deleting:
        return
    status(w, task, "TASK_STARTING", "SOURCE_EXECUTOR")
    delay = w.uniform(1.0, 8.0)
    if any(v["kind"] in ("rbd", "cephfs") for v in pod.volumes) and w.rng.random() < 0.08:
        k8s_event(w, pod, "FailedMount",
                  f"Unable to mount volumes for pod \"{pod.name}_{pod.ns}\": "
                  f"rbd: map failed exit status 1", 1,
                  {"kind": "node", "name": task.agent.hostname})
        delay += 20.0
    w.after(delay, k8sm_running, task, gen)


def k8sm_running(w: World, task: Task, gen: int) -> None:
    pod = task.pod
    if not alive(task, "TASK_STARTING", gen) or pod is None or pod.deleting:
        return
    if w.rng.random() < w.tuning.image_pull_fail:
        image = pod.containers[0].image
        status(w, task, "TASK_FAILED", "SOURCE_EXECUTOR", "REASON_CONTAINER_LAUNCH_FAILED",
               f"Failed to pull image \"{image}\": image pull failed")
        unplace(w, task)
        pod_failed(w, pod, "task-failed")
        return
    agent = task.agent
    give_ip(pod, agent)
    data = b64(f'{{"phase":"Running","podIP":"{pod.ip}"}}'.encode())
    status(w, task, "TASK_RUNNING", "SOURCE_EXECUTOR", data=data)
    pod.phase = "Running"
    pod.ready = True
    for c in pod.containers:
        c.ready = True
    pod_upsert(w, pod, "MODIFIED", {"kind": "node", "name": agent.hostname})
    w.running_pods.add(pod)
    endpoints_dirty(w, pod)
    if pod.batch:
        w.after(w.uniform(*w.tuning.batch_runtime), batch_done, task, gen)


def batch_done(w: World, task: Task, gen: int) -> None:
    pod = task.pod
    if not alive(task, "TASK_RUNNING", gen) or pod is None or pod.deleting:
        return
    ok = w.rng.random() < w.tuning.batch_ok
    for c in pod.containers:
        c.ready = False
        c.last = {"reason": "Completed" if ok else "Error", "exit_code": 0 if ok else 1}
    if ok:
        status(w, task, "TASK_FINISHED", "SOURCE_EXECUTOR", None, "pod-finished")
    else:
        status(w, task, "TASK_FAILED", "SOURCE_EXECUTOR", None, "pod-failed: exit code 1")
    unplace(w, task)
    w.running_pods.discard(pod)
    pod.phase = "Succeeded" if ok else "Failed"
    pod.ready = False
    pod_upsert(w, pod, "MODIFIED", {"kind": "node", "name": task.agent.hostname})
    w.after(w.uniform(60, 600), gc_pod, pod)
