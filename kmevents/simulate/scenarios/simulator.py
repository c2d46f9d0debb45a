"""The driver: the bootstrap, then one step at a time (a due timer, or a spontaneous action).

One step = one timer or one action; it appends zero or more events to
``Emitter.out``. ``Simulator.step`` is all a driver calls. A timer is due
when its time has come (``World.after``); otherwise an action is drawn with
the weights in ``WEIGHTS``, and a draw that emitted nothing (the world was
not ready for it) moves the clock a quarter step on.

What scales and what does not. Per-entity happenings are weights, so they
scale with the cluster (a cluster ten times larger emits ten times the
events, with the same mix); the events they cause (status updates, pod
upserts, endpoints) come from timers. Cluster-wide happenings (a master or
k8sm failing over, lost heartbeats) do not: they recur on timers
(``RECURRING``). Rare families get a first occurrence early
(``FIRST_INCIDENTS``), so that even a short run shows every family.

The bootstrap is one burst: the first master and k8sm leader, the
frameworks, the agents and their nodes, the namespaces and the seed
workloads; then each RC's first sync, k8sm's scheduling loop and its
implicit reconciliation are armed.

Profiles (``PROFILES``). All of the above is the ``default`` profile: a cluster
watched from its start, every family on weights. The ``large`` profile
(``large.py``) is a running 12,500-machine cluster kmevents attaches to: its
start is the state its sources report then (``attach.py``), its per-entity
happenings are Poisson processes in source time at the rates the trace's task
ends ask for (``Profile.processes``, scaled with the pods), and the allocator
is the only action drawn.
"""

from __future__ import annotations

import heapq
from bisect import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from kmevents.simulate.scenarios import large
from kmevents.simulate.scenarios.agents import add_agent, agent_lost, agent_partition
from kmevents.simulate.scenarios.allocator import allocate
from kmevents.simulate.scenarios.containers import container_restart, task_fail
from kmevents.simulate.scenarios.evictions import api_eviction, kubelet_down, node_pressure
from kmevents.simulate.scenarios.frameworks import register_frameworks, spark_app
from kmevents.simulate.scenarios.k8sm_leader import elect_first_leader, scheduler_failover
from kmevents.simulate.scenarios.k8sm_scheduler import k8sm_tick
from kmevents.simulate.scenarios.maintenance import agent_maintenance
from kmevents.simulate.scenarios.masters import (
    IMPLICIT_RECONCILIATION_EVERY,
    elect_first_master,
    heartbeat_lost,
    implicit_reconciliation,
    master_failover,
)
from kmevents.simulate.scenarios.namespaces import namespace_lifecycle, namespace_upsert
from kmevents.simulate.scenarios.other_frameworks import other_task_end
from kmevents.simulate.scenarios.pods import rc_sync
from kmevents.simulate.scenarios.replication import rc_roll, rc_scale
from kmevents.simulate.scenarios.services import adhoc_service
from kmevents.simulate.scenarios.user_pods import (
    batch_job,
    run_job,
    unschedulable_pod,
    user_delete_pod,
)
from kmevents.simulate.scenarios.workloads import create_workloads
from kmevents.simulate.scenarios.world import SimConfig, Tuning, World

Action = Callable[[World], object]
"""A spontaneous action: changes the world, or finds it not ready and emits nothing."""

WEIGHTS: tuple[tuple[str, float], ...] = (
    ("allocate", 12.0),
    ("container_restart", 1.2),
    ("user_delete_pod", 0.6),
    ("task_fail", 0.4),
    ("batch_job", 1.0),
    ("other_task_end", 0.8),
    ("api_eviction", 0.12),
    ("node_pressure", 0.04),
    ("kubelet_down", 0.008),
    ("agent_lost", 0.008),
    ("agent_partition", 0.008),
    ("agent_maintenance", 0.006),
    ("rc_scale", 0.25),
    ("rc_roll", 0.03),
    ("namespace_lifecycle", 0.03),
    ("adhoc_service", 0.01),
    ("spark_app", 0.06),
    ("unschedulable_pod", 0.03),
)
"""Spontaneous actions and their relative weights (drawn when no timer is due)."""

RECURRING: tuple[tuple[str, float], ...] = (
    ("master_failover", 2400.0),
    ("scheduler_failover", 1800.0),
    ("heartbeat_lost", 900.0),
)
"""Cluster-wide actions on timers, exponentially distributed with these means (seconds)."""

FIRST_INCIDENTS: tuple[tuple[str, float, float], ...] = (
    ("kubelet_down", 10, 40),
    ("agent_lost", 30, 90),
    ("agent_partition", 60, 150),
    ("agent_maintenance", 40, 120),
    ("master_failover", 90, 200),
    ("scheduler_failover", 120, 220),
    ("heartbeat_lost", 20, 200),
    ("node_pressure", 30, 150),
    ("api_eviction", 30, 150),
    ("rc_roll", 60, 160),
    ("rc_scale", 20, 100),
    ("namespace_lifecycle", 20, 120),
    ("adhoc_service", 20, 150),
    ("spark_app", 10, 60),
    ("unschedulable_pod", 15, 80),
)
"""Rare actions' first occurrence: between these many seconds after the bootstrap."""

ACTIONS: dict[str, Action] = {
    "allocate": allocate,
    "container_restart": container_restart,
    "user_delete_pod": user_delete_pod,
    "task_fail": task_fail,
    "batch_job": batch_job,
    "other_task_end": other_task_end,
    "api_eviction": api_eviction,
    "node_pressure": node_pressure,
    "kubelet_down": kubelet_down,
    "agent_lost": agent_lost,
    "agent_partition": agent_partition,
    "agent_maintenance": agent_maintenance,
    "rc_scale": rc_scale,
    "rc_roll": rc_roll,
    "namespace_lifecycle": namespace_lifecycle,
    "adhoc_service": adhoc_service,
    "spark_app": spark_app,
    "unschedulable_pod": unschedulable_pod,
    "master_failover": master_failover,
    "scheduler_failover": scheduler_failover,
    "heartbeat_lost": heartbeat_lost,
    "run_job": run_job,
}
"""Every action by the name ``WEIGHTS``, ``RECURRING``, ``FIRST_INCIDENTS`` and the profiles
give it."""


@dataclass(frozen=True)
class Profile:
    """A workload's shape: its sizes at ``scale`` 1, its start, and what changes it after."""

    name: str
    agents: int
    pods: int | None
    """Pods at the start (None: 10 an agent)."""
    rate: float | None
    """Events per second of source time (None: ``max(50, agents)``)."""
    frameworks: int
    start: Callable[[World], None]
    """The burst that makes the cluster; it arms the timers that keep it going (and begins
    the ``processes`` and ``recurring`` with ``World.steady``)."""
    weights: tuple[tuple[str, float], ...]
    """Actions drawn when no timer is due, with their relative weights."""
    processes: tuple[tuple[str, float], ...] = ()
    """Per-entity actions on timers: (action, times a second of source time at ``pods``
    pods), scaled with the simulation's pods."""
    recurring: tuple[tuple[str, float], ...] = ()
    """Cluster-wide actions on timers: (action, mean seconds between two)."""
    tuning: Tuning = field(default_factory=Tuning)
    max_pods_per_agent: int | None = None
    """Where the start places every pod itself: more pods an agent than that may not fit."""


class Simulator(World):
    """The world plus the rules that change it. Drive it with ``step()``; read ``em.out``."""

    def __init__(self, cfg: SimConfig) -> None:
        profile = PROFILES[cfg.profile]
        super().__init__(cfg, profile.tuning)
        self.actions: list[Action] = [ACTIONS[name] for name, _ in profile.weights]
        acc = 0.0
        self.cum: list[float] = []
        for _, w in profile.weights:
            acc += w
            self.cum.append(acc)
        self.total_w = acc
        factor = cfg.target_pods / profile.pods if profile.pods else 1.0
        self.churn = ([(ACTIONS[name], 1.0 / (per_second * factor))
                       for name, per_second in profile.processes]
                      + [(ACTIONS[name], mean) for name, mean in profile.recurring])
        profile.start(self)
        if not self.bootstrap_events:
            self.bootstrap_events = len(self.out)

    def step(self) -> None:
        """Run one due timer, or one spontaneous action (without any: move to the next timer)."""
        heap = self.heap
        if heap and heap[0][0] <= self.now:
            _, _, fn, args = heapq.heappop(heap)
            fn(self, *args)
            return
        if not self.actions:
            self.now = heap[0][0]
            return
        before = len(self.out)
        self.actions[bisect(self.cum, self.rng.random() * self.total_w)](self)
        if len(self.out) == before:
            self.now += int(self.mean_step / 4) + 1


def bootstrap(w: World) -> None:
    """The cluster as the simulation finds it, then the timers that keep it going."""
    cfg = w.cfg
    w.burst += 1
    elect_first_master(w)
    elect_first_leader(w)
    register_frameworks(w, max(1, cfg.frameworks))
    for _ in range(cfg.agents):
        add_agent(w)
    for ns in ("default", "kube-system", "prod", "staging", "logging", "analytics"):
        namespace_upsert(w, ns, "Active")
    create_workloads(w)
    w.burst -= 1
    for rc in w.rcs:
        w.after(w.uniform(0.1, 3.0), rc_sync, rc)
    w.after(1.0, k8sm_tick)
    w.after(IMPLICIT_RECONCILIATION_EVERY, implicit_reconciliation)
    hi_first = max(hi for _, _, hi in FIRST_INCIDENTS)
    for name, lo, hi in FIRST_INCIDENTS:
        w.after(w.uniform(lo, hi), first_incident, name, 0)
    for name, mean in RECURRING:
        w.after(hi_first + w.rng.expovariate(1.0 / mean), recur, name, mean)


def first_incident(w: World, name: str, attempt: int) -> None:
    """Run a family's first occurrence; retry a little later if the world was not ready."""
    before = len(w.out)
    if name == "kubelet_down":
        acted = kubelet_down(w, recover_early=False)
    else:
        ACTIONS[name](w)
        acted = len(w.out) > before
    if not acted and attempt < 10:
        w.after(10.0, first_incident, name, attempt + 1)


def recur(w: World, name: str, mean: float) -> None:
    """A cluster-wide action, then its next occurrence."""
    ACTIONS[name](w)
    w.after(w.rng.expovariate(1.0 / mean), recur, name, mean)


PROFILES: dict[str, Profile] = {
    "default": Profile("default", agents=50, pods=None, rate=None, frameworks=3,
                       start=bootstrap, weights=WEIGHTS),
    "large": Profile("large", agents=large.AGENTS, pods=large.PODS, rate=large.RATE,
                     frameworks=1, start=large.start, weights=(),
                     processes=large.PROCESSES, recurring=large.RECURRING,
                     tuning=large.TUNING, max_pods_per_agent=large.MAX_PODS_PER_AGENT),
}
"""The workloads ``kmevents simulate --profile`` offers, by name."""
