"""Mesos agents: they join, are lost, or are partitioned away and come back.

An agent joins with one of three sizes, a rack and a zone, a clock skew of
a few milliseconds, and its Kubernetes node (``add_agent``). A lost agent
(``agent_lost``) and a partitioned one (``agent_partition``) go the same way
first: the master's FAILURE (``agent.removed``), its tasks' TASK_LOST
(REASON_AGENT_REMOVED, in the master's clock) and the RESCIND of its offer
come in no fixed order, as they do from a real master; the node turns
NotReady after ``NODE_MONITOR_GRACE``. A partition heals within 20-90 s: the
agent re-registers, its running tasks go LOST -> RUNNING, and tasks that had
not got going are forgotten. Two minutes after a loss k8sm deletes the pods
whose tasks are still LOST (their RCs replace them), and a lost agent is gone
for good, its node deleted; a fresh agent joins a few minutes later.
"""

from __future__ import annotations

from collections.abc import Callable

from kmevents.simulate.clock import US
from kmevents.simulate.model import Agent, Task
from kmevents.simulate.scenarios.apiserver import NODE_MONITOR_GRACE, node_deleted, node_upsert
from kmevents.simulate.scenarios.offers import rescind
from kmevents.simulate.scenarios.pods import pod_deleted
from kmevents.simulate.scenarios.tasks import TERMINAL, status, unplace
from kmevents.simulate.scenarios.world import A_K8SM, A_NODECTL, World


def add_agent(w: World) -> Agent:
    """A new agent registers (``agent.added``) and its node appears."""
    agent = join_agent(w)
    node_upsert(w, agent, A_NODECTL, "ADDED")
    return agent


def join_agent(w: World) -> Agent:
    """A new agent registers with the master (``agent.added``); its node is not written."""
    cfg = w.cfg
    w.agent_seq += 1
    n = w.agent_seq
    size = w.rng.random()
    cpus, mem = (8.0, 32768.0) if size < 0.3 else (16.0, 65536.0) if size < 0.85 else (32.0, 131072.0)
    rack = f"r{(n - 1) // 20 + 1:02d}"
    zone = "abc"[(n - 1) % 3]
    agent = Agent(n, f"{w.master.id}-S{n - 1}", f"agent-{n:05d}.{cfg.cluster}.local",
                  f"10.1.{n // 250}.{n % 250 + 1}", cpus, mem, 409600.0,
                  {"rack": rack, "zone": f"zone-{zone}"},
                  int(w.rng.gauss(0, 8000)), len(w.frameworks))
    w.agents[agent.id] = agent
    w.active_agents.add(agent)
    w.idle_agents.add(agent)
    t = w.tick()
    w.emit("agent.added", "AGENT_ADDED", "master", t, {"agent": agent.info},
           f"agent.added|{agent.id}", None, None, w.actor_master())
    return agent


def pick_agent(w: World, min_left: int = 2) -> Agent | None:
    """An active agent with tasks and a working kubelet, while more than ``min_left`` remain."""
    if len(w.active_agents) <= min_left:
        return None
    for _ in range(8):
        agent = w.active_agents.choice(w.rng)
        # an agent whose kubelet is down is left to the node controller
        if agent is not None and agent.state == "active" and agent.tasks and agent.kubelet:
            return agent
    return None


def agent_lost(w: World) -> None:
    lose_agent(w, transient=False)


def agent_partition(w: World) -> None:
    lose_agent(w, transient=True)


def lose_agent(w: World, *, transient: bool) -> None:
    """FAILURE, the tasks' TASK_LOST (REASON_AGENT_REMOVED) and RESCINDs, in no fixed order."""
    agent = pick_agent(w)
    if agent is None:
        return
    agent.state = "lost"
    agent.generation += 1
    w.active_agents.discard(agent)
    w.idle_agents.discard(agent)
    w.burst += 1
    removed: list[str] = []

    def failure() -> None:
        t = w.tick()
        removed.append(w.emit("agent.removed", "FAILURE", "master", t,
                              {"agent_id": agent.id, "reason": "lost"},
                              f"agent.removed|{agent.id}", None, None, w.actor_master()))

    def rescinds() -> None:
        if agent.offer is not None:
            rescind(w, agent.offer, removed[0] if removed else None)
        last = agent.last_declined
        if last is not None and w.now - last[1] < 2 * US:
            # the master's RESCIND crosses k8sm's DECLINE: k8sm's linger absorbs it
            t = w.tick()
            w.emit("offer.rescinded", "RESCIND", "master", t, {"offer_id": last[0]},
                   f"offer.rescinded|{last[0]}", last[0], None, w.actor_master())

    tasks = list(agent.tasks.values())
    split = int(w.rng.random() * (len(tasks) + 1))

    def updates(part: list[Task]) -> Callable[[], None]:
        def run() -> None:
            for task in part:
                if task.state in TERMINAL:
                    continue
                task.lost_from = task.state
                status(w, task, "TASK_LOST", "SOURCE_MASTER", "REASON_AGENT_REMOVED",
                       f"Agent {agent.hostname} removed: health check timed out",
                       cause=removed[0] if removed else None, master_clock=True)
        return run

    steps: list[Callable[[], None]] = [failure, rescinds, updates(tasks[:split]),
                                       updates(tasks[split:])]
    w.rng.shuffle(steps)
    for fn in steps:
        fn()
    w.burst -= 1
    for task in tasks:
        if task.pod is not None:
            w.running_pods.discard(task.pod)
    agent.node_ready = False
    w.after(NODE_MONITOR_GRACE, node_lost, agent, agent.generation)
    if transient:
        w.after(w.uniform(20, 90), agent_back, agent, agent.generation)
    else:
        w.after(w.uniform(60, 300), add_agent)
    w.after(120.0, k8sm_forget_lost, agent, agent.generation, transient)


def node_lost(w: World, agent: Agent, gen: int) -> None:
    if agent.generation == gen and agent.state == "lost":
        node_upsert(w, agent, A_NODECTL)


def agent_back(w: World, agent: Agent, gen: int) -> None:
    """The partition heals: the agent re-registers and its tasks go LOST -> RUNNING."""
    if agent.generation != gen or agent.state != "lost":
        return
    agent.state = "active"
    w.active_agents.add(agent)
    if agent.offer is None:
        w.idle_agents.add(agent)
    w.burst += 1
    t = w.tick()
    w.emit("agent.reregistered", "AGENT_ADDED", "master", t, {"agent": agent.info},
           f"agent.reregistered|{agent.id}|{w.em.fmt(t)}", None, None, w.actor_master())
    forget: list[Task] = []
    for task in list(agent.tasks.values()):
        if task.state != "TASK_LOST":
            continue
        if task.lost_from != "TASK_RUNNING":
            forget.append(task)  # it never got going: k8sm/the framework starts over
            continue
        status(w, task, "TASK_RUNNING", "SOURCE_MASTER", "REASON_AGENT_REREGISTERED",
               "Agent re-registered", reliable=False, master_clock=True)
        pod = task.pod
        if pod is not None and pod.phase == "Running" and not pod.deleting:
            w.running_pods.add(pod)
        elif pod is None:
            w.other_tasks.add(task)
    w.burst -= 1
    for task in forget:
        forget_lost_task(w, task)
    agent.node_ready = agent.kubelet
    node_upsert(w, agent, {"kind": "node", "name": agent.hostname})


def k8sm_forget_lost(w: World, agent: Agent, gen: int, transient: bool) -> None:
    """Two minutes after the loss: pods whose tasks are still LOST are deleted and replaced."""
    if agent.generation != gen or agent.state != "lost":
        return
    for task in list(agent.tasks.values()):
        if task.state == "TASK_LOST":
            forget_lost_task(w, task)
    if not transient:
        agent.state = "gone"
        w.agents.pop(agent.id, None)
        w.agent_actor.pop(agent.id, None)
        node_deleted(w, agent)


def forget_lost_task(w: World, task: Task) -> None:
    """A LOST task is given up: its pod is deleted (and replaced), its framework wants another."""
    unplace(w, task)
    pod = task.pod
    if pod is not None and pod.uid in w.pods:
        pod_deleted(w, pod, A_K8SM, "task-lost")
    elif pod is None and task.framework.live:
        task.framework.want += 1
