"""Mesos tasks on agents: their resources, their status updates and the re-delivery of those.

A task holds its share of its agent's resources from launch (``place``) until
it is gone (``unplace``). ``status`` writes one ``task.status_updated`` as the
agent (in the agent's skewed clock), the executor or the master (in the
master's clock: TASK_LOST, reconciliation) sends it. A reliable update carries
a fresh ``uuid``; Mesos re-sends it every ``STATUS_RETRY`` seconds until the
scheduler acknowledges it, and the agent forwards a task's updates one at a
time, so a re-delivery (``redeliver``: same ``event_id`` and ``dedupe_key``, the
next ``seq``) only ever repeats the task's latest update. Reconciliation
answers and the master's LOST -> RUNNING after a re-registration carry no
``uuid`` and are never retried.
"""

from __future__ import annotations

from typing import Any

from kmevents.contract.enums import TERMINAL_TASK_STATES
from kmevents.simulate.clock import US
from kmevents.simulate.emit import MESOS, Event
from kmevents.simulate.model import Task
from kmevents.simulate.scenarios.world import World, b64

TERMINAL = TERMINAL_TASK_STATES
"""Mesos' terminal task states, the contract's one definition: a task in one never changes
again (of these the simulator emits FINISHED, FAILED and KILLED)."""
GONE = TERMINAL | {"TASK_LOST"}
"""Terminal, or lost with its agent: k8sm sends no kill for such a task, and deleting its pod
gives its resources back at once."""

STATUS_RETRY = 10.0
"""Mesos' status update retry interval (agent -> scheduler, until acknowledged), seconds."""
DUPLICATE_P = 0.02
"""How often a reliable update is delivered again (its acknowledgement was lost)."""


def status(w: World, task: Task, state: str, source: str, reason: str | None = None,
           message: str | None = None, *, healthy: bool | None = None, data: str | None = None,
           cause: str | None = None, reliable: bool = True, master_clock: bool = False,
           check: dict[str, Any] | None = None) -> str:
    """Emit one ``task.status_updated``; reliable updates may be re-delivered later."""
    agent = task.agent
    t = w.tick()
    if not master_clock:
        t += agent.skew
    ts = t / US
    fid = task.framework.id
    if reliable:
        uuid = b64(w.rng.getrandbits(128).to_bytes(16, "big"))
        key = f"task.status_updated|{agent.id}|{fid}|{task.id}|{uuid}"
    else:
        uuid = None
        key = f"task.status_updated|{agent.id}|{fid}|{task.id}|{state}|{ts:.6f}"
    recon = reason == "REASON_RECONCILIATION"
    payload = {"framework_id": fid, "status": {
        "task_id": task.id, "state": state, "source": source, "reason": reason,
        "message": message, "uuid": uuid, "healthy": healthy, "timestamp": ts,
        "agent_id": agent.id, "executor_id": task.executor_id,
        "labels": None if recon else task.labels, "data": data, "check_status": check}}
    pod = task.pod
    eid = w.emit("task.status_updated", "UPDATE", "master" if master_clock else "agent", t,
                 payload, key, pod.uid if pod is not None else None,
                 cause or task.launch_eid,
                 w.actor_master() if master_clock else w.actor_agent(agent),
                 MESOS, 3)
    if not recon:
        task.state = state
    if reliable:
        # Only a re-delivery needs the event kept; a newer update clears it, which is all
        # ``redeliver`` asks (a task holding its last event would cost ~1 KB per live task).
        if w.rng.random() < DUPLICATE_P:
            task.last_status = last = w.out[-1]
            w.after(STATUS_RETRY * w.uniform(1.0, 1.3), redeliver, task, last, 1)
        else:
            task.last_status = None
    return eid


def redeliver(w: World, task: Task, event: Event, attempt: int) -> None:
    """Mesos retries the task's latest unacknowledged update (the agent forwards a task's
    updates one at a time), so a retry never overtakes a newer update of the same task."""
    if task.last_status is not event:
        return
    w.tick()
    w.em.redeliver(event)
    if attempt < 3 and w.rng.random() < 0.25:
        w.after(STATUS_RETRY * 2 ** attempt, redeliver, task, event, attempt + 1)
    else:
        task.last_status = None  # acknowledged at last: nothing waits for it any more


def place(task: Task) -> None:
    agent = task.agent
    agent.tasks[task.id] = task
    task.framework.tasks[task.id] = task
    agent.used_cpus += task.cpus
    agent.used_mem += task.mem
    agent.used_disk += task.disk


def unplace(w: World, task: Task) -> None:
    agent = task.agent
    if agent.tasks.pop(task.id, None) is not None:
        agent.used_cpus -= task.cpus
        agent.used_mem -= task.mem
        agent.used_disk -= task.disk
    task.framework.tasks.pop(task.id, None)
    w.other_tasks.discard(task)


def alive(task: Task, state: str, gen: int) -> bool:
    return task.state == state and task.agent.generation == gen and task.agent.state == "active"
