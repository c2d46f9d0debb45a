"""The large profile's start: the cluster as kmevents finds it when it attaches to a running one.

Nobody watches a 12,500-machine cluster from its first pod: kmevents attaches
to it while it runs, and what it reads first is what its sources report at
that moment, in one burst (``attach``):

    Mesos: the master's state        master.elected, scheduler.leader_elected, k8sm's
    (SUBSCRIBED)                     framework.registered and role.updated; agent.added
                                     for every agent; k8sm's executor.added on every agent
                                     that runs pods; task.added (TASK_RUNNING) for every task
    Kubernetes: the informers'       node.upserted (ADDED) for every node; the namespaces;
    initial lists                    replication_controller.upserted; service.upserted;
                                     pod.upserted (ADDED: Running, ready, bound, with k8sm's
                                     annotations) for every pod; endpoints.observed per service

That is about two events a pod and three an agent. Launching each pod through
an offer instead would take ten (ADDED, offered, accepted, launched,
scheduled, STAGING, STARTING, RUNNING, two upserts): 1.4 million events for
140,000 pods before any churn. The pods that replace the ones that end go that
whole way (``k8sm_scheduler.py``).

What runs: application RCs (``workloads.APP_TEMPLATES``, ``RC_SIZE`` pods each on
average, a service for those whose template has a port) and ``batch`` pods of
jobs part way through their run. A job's remaining run is drawn as it is for a
job caught running at a random moment (its length weighted by itself, then a
uniform share of it left), so the jobs caught running end at the steady rate
from the start instead of in a rush. Each pod goes on an agent drawn at random
among those with room for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from kmevents.simulate.model import RC, Agent, Pod, Service, Task
from kmevents.simulate.scenarios.agents import join_agent
from kmevents.simulate.scenarios.apiserver import node_upsert, pod_upsert
from kmevents.simulate.scenarios.frameworks import register_frameworks
from kmevents.simulate.scenarios.k8sm_leader import elect_first_leader
from kmevents.simulate.scenarios.k8sm_scheduler import (
    batch_done,
    bind_pod,
    executor_added,
    give_ip,
    pod_task,
)
from kmevents.simulate.scenarios.masters import elect_first_master, task_added
from kmevents.simulate.scenarios.namespaces import namespace_upsert
from kmevents.simulate.scenarios.pods import new_pod
from kmevents.simulate.scenarios.replication import new_rc, rc_upsert
from kmevents.simulate.scenarios.services import (
    endpoints_observed,
    new_service,
    next_portal_ip,
    service_upserted,
)
from kmevents.simulate.scenarios.tasks import place
from kmevents.simulate.scenarios.user_pods import job_pod_name, job_template
from kmevents.simulate.scenarios.volumes import volume
from kmevents.simulate.scenarios.workloads import APP_TEMPLATES
from kmevents.simulate.scenarios.world import A_NODECTL, A_RCM, World

RC_SIZE = 40
"""Pods of an application RC on average (each between half and one and a half of it)."""
NAMESPACES = ("default", "kube-system", "prod", "staging", "logging", "analytics")
CHUNK = 4096
"""Records of the attach written in one step."""
ROOM_DRAWS = 64
"""Agents drawn at random for a pod before looking through all of them for room."""


def attach(w: World, batch: int, then: Callable[[World], None]) -> None:
    """The running cluster's state, as kmevents' sources report it when it attaches.

    ``w.cfg.agents`` agents run about ``w.cfg.target_pods`` pods: ``batch`` of them jobs,
    the rest the application RCs'. The records go out ``CHUNK`` a step (a driver's batch
    then holds one chunk, not the whole start); ``w.bootstrap_events`` says how many there
    are from the first step on. ``then(w)`` runs after the last: nothing else is armed
    before, so nothing else happens in between.
    """
    cfg = w.cfg
    w.burst += 1
    elect_first_master(w)
    elect_first_leader(w)
    register_frameworks(w, 1)
    agents = [join_agent(w) for _ in range(cfg.agents)]
    rcs, services = _workloads(w, max(1, cfg.target_pods - batch))
    pods: list[Pod] = []
    created_by = {rc.name: {"kubernetes.io/created-by": f"ReplicationController/{rc.ns}/{rc.name}"}
                  for rc in rcs}
    for rc in rcs:
        for _ in range(rc.replicas):
            pods.append(_running(w, new_pod(w, rc.ns, f"{rc.name}-{w.suffix()}", rc.labels,
                                            created_by[rc.name], rc.volumes, rc.containers, rc,
                                            rc.cpus, rc.mem, batch=False)))
    low, high = w.tuning.batch_runtime
    runs: list[tuple[Task, float]] = []
    for _ in range(batch):
        ns, name, image, cpus, mem = job_template(w)
        w.batch_live += 1
        w.job_seq += 1
        pod = _running(w, new_pod(w, ns, job_pod_name(w, name), {"job": name}, {}, [],
                                  [(name, image)], None, cpus, mem, batch=True))
        pods.append(pod)
        # A run's length weighted by itself (uniform runs: density ~ length), then the part left.
        length = math.sqrt(low * low + w.rng.random() * (high * high - low * low))
        assert pod.task is not None
        runs.append((pod.task, length * w.rng.random()))
    executors = [agent for agent in agents if agent.executor]
    w.bootstrap_events = (w.em.emitted() + len(executors) + 2 * len(pods) + len(agents)
                          + len(NAMESPACES) + len(rcs) + 2 * len(services))
    records = _records(w, executors, agents, rcs, services, pods)

    def done(w: World) -> None:
        w.burst -= 1
        for task, left in runs:
            w.after(left, batch_done, task, task.agent.generation)
        then(w)

    w.at(w.now, _chunk, records, done)


def _records(w: World, executors: list[Agent], agents: list[Agent], rcs: list[RC],
             services: list[Service], pods: list[Pod]) -> Iterator[None]:
    """Write the records; pause (yield) after every ``CHUNK``."""
    emitted = w.em.emitted
    start = emitted()
    # The master's state: k8sm's executors, then its tasks, agent by agent.
    for agent in executors:
        executor_added(w, agent, None)
    for agent in agents:
        for task in agent.tasks.values():
            task_added(w, task, None)
            if (emitted() - start) % CHUNK == 0:
                yield
    # The informers' lists: nodes, namespaces, RCs, services, pods, endpoints.
    for agent in agents:
        node_upsert(w, agent, A_NODECTL, "ADDED")
    for ns in NAMESPACES:
        namespace_upsert(w, ns, "Active")
    for rc in rcs:
        rc_upsert(w, rc, "ADDED", A_RCM)
    for svc in services:
        service_upserted(w, svc)
    yield
    for pod in pods:
        node = pod.node
        assert node is not None
        pod_upsert(w, pod, "ADDED", w.actor_agent(node))
        if (emitted() - start) % CHUNK == 0:
            yield
    for svc in services:
        endpoints_observed(w, svc)


def _chunk(w: World, records: Iterator[None], done: Callable[[World], None]) -> None:
    """The next chunk of the attach's records, then the next step's (or ``done``)."""
    for _ in records:
        w.at(w.now, _chunk, records, done)
        return
    done(w)


def _workloads(w: World, budget: int) -> tuple[list[RC], list[Service]]:
    """Application RCs holding ``budget`` pods in all, and their services; nothing written.

    Each RC's share is drawn between half and one and a half of the mean, then the
    shares are cut to add up to ``budget`` exactly.
    """
    n_rcs = max(len(APP_TEMPLATES), budget // RC_SIZE)
    shares = [w.uniform(0.5, 1.5) for _ in range(n_rcs)]
    per_share = budget / sum(shares)
    rcs: list[RC] = []
    services: list[Service] = []
    acc = 0.0
    placed = 0
    for i in range(n_rcs):
        name, ns, image, cpus, mem, vol, port = APP_TEMPLATES[i % len(APP_TEMPLATES)]
        if i >= len(APP_TEMPLATES):
            name = f"{name}-{i // len(APP_TEMPLATES) + 1}"
        acc += shares[i] * per_share
        replicas = max(1, round(acc) - placed)
        placed += replicas
        rc = new_rc(w, ns, name, replicas, [(name.split("-")[0], image.format(tag=1))],
                    [volume(w, vol, name)] if vol else [], cpus, mem, system=False)
        rc.image = image
        w.app_rcs.append(rc)
        rcs.append(rc)
        if port:
            services.append(new_service(
                w, ns, name, [rc], next_portal_ip(w),
                [{"name": "http" if port in (80, 8080, 8000) else "tcp",
                  "port": port, "protocol": "TCP", "target_port": port}]))
    return rcs, services


def _running(w: World, pod: Pod) -> Pod:
    """``pod`` running on an agent with room for it, under a k8sm task, ready, with an IP.

    Its task was launched on an offer made before kmevents attached: the offer id in the
    pod's annotations is never seen in the log.
    """
    agent = _room(w, pod.cpus, pod.mem)
    task = pod_task(w, pod, agent, f"pod.{w.uid()}")
    task.state = "TASK_RUNNING"
    place(task)
    agent.executor = True
    w.offer_seq += 1
    bind_pod(w, pod, task, f"{w.master.id}-O{w.offer_seq}")
    give_ip(pod, agent)
    pod.phase = "Running"
    pod.ready = True
    for c in pod.containers:
        c.ready = True
    w.running_pods.add(pod)
    return pod


def _room(w: World, cpus: float, mem: float) -> Agent:
    """An agent with ``cpus`` and ``mem`` free: drawn at random, else the first that has them."""
    agents = w.active_agents
    for _ in range(ROOM_DRAWS):
        agent = agents.choice(w.rng)
        if agent is not None and _fits(agent, cpus, mem):
            return agent
    for agent in agents.items:
        if _fits(agent, cpus, mem):
            return agent
    raise ValueError(f"no agent has room for another pod of {cpus:g} cpus and {mem:g} MB: "
                     f"give more agents or fewer pods")


def _fits(agent: Agent, cpus: float, mem: float) -> bool:
    return agent.cpus - agent.used_cpus >= cpus and agent.mem - agent.used_mem >= mem
