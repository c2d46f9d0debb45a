"""The simulated cluster's shared state, its clock, its timers and its seeded draws.

Every scenario family is a set of functions that take this ``World`` first and
change it; none keeps state of its own. The world holds what is alive (see
``model.py`` for the objects), the ``Emitter`` the families write through, one
``random.Random`` seeded by ``(cluster, seed)`` and the timer heap.

How time works. The clock advances by one random step per emitted event
(``tick``: exponential, mean ``1/rate`` seconds), so ``rate`` is the number of
events per simulated second in the steady state. A burst (an agent lost with
its tasks, a master failover, a reconciliation) advances it by a few hundred
microseconds per event instead, because the source emits those together: a
family raises ``burst`` around such a run. Things that happen *after a delay*
(offer TTL, the steps of a task launch, backoffs, retries) are timers
(``after``): a function of the world and its arguments, run at a simulated
time. ``Simulator.step`` runs the earliest due timer or draws a spontaneous
action. Each live object has at most a few timers, so the heap is bounded by
the cluster's size.

Determinism: every draw comes from ``rng`` in program order, so the order in
which the families call one another is part of the output; nothing iterates
a ``set``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kmevents.simulate.clock import US
from kmevents.simulate.emit import Emitter
from kmevents.simulate.model import RC, Agent, Bag, Framework, Master, Offer, Pod, Service, Task

MESOS_VERSION = "1.9.0"
K8SM_EXECUTOR_SUFFIX = "_k8sm-executor"

A_K8SM = {"kind": "scheduler", "name": "k8sm-scheduler"}
A_RCM = {"kind": "controller", "name": "replication-controller"}
A_NODECTL = {"kind": "controller", "name": "node-controller"}
A_ENDPOINTS = {"kind": "controller", "name": "endpoints-controller"}
A_PODGC = {"kind": "controller", "name": "pod-garbage-collector"}
A_NSCTL = {"kind": "controller", "name": "namespace-controller"}
USERS = ("alice", "bob", "carol", "ops-bot", "deploy-bot")

Timer = Callable[..., object]
"""A timer's function: called as ``fn(world, *args)`` when its time comes."""


@dataclass(frozen=True)
class SimConfig:
    """Sizes and knobs of one simulation. ``rate`` is events per simulated second."""

    cluster: str
    seed: int
    events: int
    agents: int = 50
    frameworks: int = 3
    pods: int | None = None
    rate: float | None = None
    start_us: int = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    pod_eviction_timeout: float = 300.0

    profile: str = "default"
    """The workload's shape: ``default`` (a cluster watched from its start) or ``large``
    (a running 12,500-machine cluster kmevents attaches to); see ``simulator.PROFILES``."""
    scale: float = 1.0
    """What the profile's sizes and per-entity rates were multiplied by (recorded only:
    ``agents``, ``pods`` and ``rate`` above are already scaled)."""

    @property
    def target_pods(self) -> int:
        return self.pods if self.pods is not None else max(10, self.agents * 10)

    @property
    def events_per_second(self) -> float:
        return self.rate if self.rate is not None else float(max(50, self.agents))


@dataclass(frozen=True)
class Tuning:
    """Odds and durations the families read, set by the profile (these defaults are the
    default profile's; changing one changes its bytes)."""

    image_pull_fail: float = 0.02
    """How often a pod's task fails to pull its image on its way to RUNNING."""
    batch_ok: float = 0.85
    """How often a batch pod's task finishes; the others fail with exit code 1."""
    batch_runtime: tuple[float, float] = (20.0, 600.0)
    """A batch pod's run from RUNNING to its end, seconds (uniform between the two)."""
    launch_on_offer: bool = False
    """Whether k8sm puts the next pending pod on an offer as the offer arrives (else the
    pod waits for k8sm's once-a-second loop)."""
    busy_pace: float = 1.0
    """The steps between the events of one step (a k8sm loop, an agent's evictions), as a
    multiple of ``rate``: above 1 when everything happens on timers and ``rate`` is the
    average (the clock then jumps to the next timer between steps)."""


def b64(raw: bytes) -> str:
    """Base64 text, as Mesos carries ``data`` and status ``uuid`` in JSON."""
    return base64.b64encode(raw).decode("ascii")


class World:
    """What is alive in the simulated cluster, the clock, the timers and the seeded draws."""

    def __init__(self, cfg: SimConfig, tuning: Tuning | None = None) -> None:
        self.cfg = cfg
        self.tuning = tuning if tuning is not None else Tuning()
        self.rng = random.Random(f"kmevents-simulate|{cfg.cluster}|{cfg.seed}")
        self.em = Emitter(cfg.cluster)
        self.emit = self.em.emit
        self.out = self.em.out
        self.now = cfg.start_us
        self.mean_step = US / (cfg.events_per_second * self.tuning.busy_pace)
        self._random = self.rng.random
        self._steps = [int(self.rng.expovariate(1.0) * self.mean_step) + 1 for _ in range(1024)]
        self.burst = 0
        """Above zero while a family emits a burst: events then come 150-750 us apart."""
        self.heap: list[tuple[int, int, Timer, tuple[Any, ...]]] = []
        self.hseq = 0
        self.bootstrap_events = 0
        """Events of the start (the first ones emitted): the rest is the churn. Set by a start
        that emits over several steps, else by the driver once the start is over."""
        self.churn: list[tuple[Callable[[World], object], float]] = []
        """The profile's per-entity and cluster-wide actions, with their mean seconds apart:
        ``steady`` makes each a Poisson process."""
        self.rv = 1000
        """The apiserver's last resource version."""

        self.masters_seq = 0
        self.fw_counter = 0
        self.master: Master = self.new_master()
        self.offer_seq = 0
        self.agent_seq = 0
        self.frameworks: list[Framework] = []
        """k8sm first, always; a removed framework's slot is reused."""
        self.agents: dict[str, Agent] = {}
        self.active_agents: Bag[Agent] = Bag()
        self.idle_agents: Bag[Agent] = Bag()
        """Active agents with no outstanding offer: the allocator's candidates."""
        self.k8sm_offers: Bag[Offer] = Bag()
        self.offers: dict[str, Offer] = {}
        self.pods: dict[str, Pod] = {}
        self.ns_pods: dict[str, dict[str, Pod]] = {}
        """The live pods of each namespace, by uid, in creation order (a namespace's end
        deletes its pods without a scan of every pod in the cluster)."""
        self.running_pods: Bag[Pod] = Bag()
        self.pending: deque[Pod] = deque()
        """Pods waiting for k8sm's scheduling loop."""
        self.rcs: list[RC] = []
        self.app_rcs: list[RC] = []
        """The application RCs users scale and roll (not kube-system's, not MySQL's)."""
        self.services: list[Service] = []
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.other_tasks: Bag[Task] = Bag()
        """Running tasks of the frameworks beside k8sm."""
        self.batch_live = 0
        self.job_seq = 0
        """Jobs run so far (``user_pods.run_job``): each names its pod."""
        self.unschedulable_live = 0
        self.spark_apps = 0
        self.ns_seq = 0
        self.svc_seq = 0
        self.portal_next = 20
        self.k8sm_every = 1.0
        """Seconds between two runs of k8sm's scheduling loop."""
        self.k8sm_identity = "k8sm-scheduler-1"
        self.k8sm_identity_seq = 1
        self.executor_id = hashlib.sha256(cfg.cluster.encode()).hexdigest()[:16] + K8SM_EXECUTOR_SUFFIX
        self.agent_actor: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ clock and timers

    def tick(self) -> int:
        """Advance the clock by one event's step and return the new time.

        Steps are exponential (a Poisson stream of ``rate`` events per second),
        drawn from a table made once from the seeded generator; in a burst they
        are 150-750 microseconds.
        """
        if self.burst:
            self.now += 150 + int(self._random() * 600)
        else:
            self.now += self._steps[int(self._random() * 1024)]
        return self.now

    def after(self, seconds: float, fn: Timer, *args: Any) -> None:
        """Run ``fn(world, *args)`` ``seconds`` of simulated time from now."""
        self.hseq += 1
        heapq.heappush(self.heap, (self.now + int(seconds * US), self.hseq, fn, args))

    def at(self, when: int, fn: Timer, *args: Any) -> None:
        """Run ``fn(world, *args)`` at ``when`` (epoch microseconds; as soon as may be when
        that has passed)."""
        self.hseq += 1
        heapq.heappush(self.heap, (when, self.hseq, fn, args))

    def steady(self) -> None:
        """The start is over: the profile's ``churn`` begins."""
        for fn, mean in self.churn:
            self.poisson(fn, mean)

    def poisson(self, fn: Callable[[World], object], mean: float) -> None:
        """Run ``fn(world)`` as a Poisson process in source time, ``mean`` seconds apart."""
        due = self.now + int(self.rng.expovariate(1.0 / mean) * US)
        self.at(due, _occurrence, fn, mean, due)

    # ------------------------------------------------------------------ seeded draws

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.rng.random()

    def uid(self) -> str:
        """A Kubernetes-style UUID (version 4 shape)."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def suffix(self) -> str:
        """The five-character suffix Kubernetes gives generated pod names."""
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        r = self.rng.random
        return "".join(alphabet[int(r() * 27)] for _ in range(5))

    # ------------------------------------------------------------------ who acts

    def actor_agent(self, agent: Agent) -> dict[str, str]:
        actor = self.agent_actor.get(agent.id)
        if actor is None:
            actor = {"kind": "agent", "name": agent.hostname}
            self.agent_actor[agent.id] = actor
        return actor

    def actor_master(self) -> dict[str, str]:
        return self.master.actor

    def actor_user(self) -> dict[str, str]:
        return {"kind": "user", "name": USERS[int(self.rng.random() * len(USERS))]}

    def new_master(self) -> Master:
        """The next of three masters, with an id shaped like Mesos' (time, IP, port, pid)."""
        self.masters_seq += 1
        k = (self.masters_seq - 1) % 3 + 1
        ip = f"10.0.0.{10 + k}"
        ip_int = int.from_bytes(bytes(int(x) for x in reversed(ip.split("."))), "big")
        pid = 1000 + self.rng.randrange(30000)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.now // US))
        mid = f"{stamp}-{ip_int}-5050-{pid}"
        return Master(mid, f"master-{k}.{self.cfg.cluster}.local", ip, MESOS_VERSION)


def _occurrence(w: World, fn: Callable[[World], object], mean: float, due: int) -> None:
    """One occurrence of a Poisson process (``World.poisson``), then the next.

    The next is drawn from when this one was due, not from when it ran: a step
    that emits many events moves the clock on by as many steps, and a timer due
    meanwhile runs late; drawn from then, a process would lose that much of its
    rate every time.
    """
    fn(w)
    due += int(w.rng.expovariate(1.0 / mean) * US)
    w.at(due, _occurrence, fn, mean, due)
