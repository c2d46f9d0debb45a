"""The large profile: a running cluster shaped like a public 12,500-machine cluster trace.

Sizes (``scale`` 1): ``AGENTS`` agents running ``PODS`` pods, each under a k8sm task
(about 11 an agent), churning at ``RATE`` events a second of source time. It
starts by attaching to the running cluster (``attach.py``: ~2 events a pod,
~3 an agent: about 326,600 events at ``scale`` 1), then runs steady.

The ends, in the trace's proportions. Of the tasks seen in the window (those
running at the attach and those launched since: ``SEEN = PODS / (1 - ended)``),
a quarter finish, 5 % are killed, 2 % evicted and 0.3 % fail; the rest run
through. ``WINDOW`` is the source time that 1.5M events (the benches' log) cover
after the attach, so each end comes ``share * SEEN / WINDOW`` times a second,
from the families that cause it (``PROCESSES``, Poisson processes in source
time, scaled with the pods):

    FINISHED  jobs (``run_job``) arrive as often as they finish and run 1-20 minutes
              (about 7,500 at once); 0.5 % of them fail instead
    KILLED    users delete RC pods; RCs scale down (``rc_scale``); rolling updates
              (``rc_roll``, an RC of ~40 pods pod by pod); drains (``agent_maintenance``)
    EVICTED   the eviction API (about half); the kubelet under node pressure (one or
              two pods); the node controller after a kubelet stays down (a whole agent)
    FAILED    a pod's task fails (``task_fail``); an image fails to pull (0.1 % of
              launches, ``Tuning.image_pull_fail``); failed jobs

Every RC pod that ends is replaced by its RC through k8sm (created, scheduled on
an offer, launched, STAGING, STARTING, RUNNING), and new jobs keep arriving the
same way. Agents are now and then lost (their tasks LOST), partitioned away and
back, or drained.

What is left out, and why. A master failover replays every task (``task.added``)
and k8sm's reconciliations answer for every task: 140,000 events at a time, and
k8sm's implicit reconciliation every ten minutes alone would be 230 events a
second, about the whole churn. They would bury the churn the trace describes,
so this profile has none (the adapter loses a master's heartbeats now and then).
No Marathon or Spark: every task is a pod's.

Time. Everything happens on timers: no action is drawn, the clock jumps from
one timer to the next, and the events of one step come ``TUNING.busy_pace``
times faster than ``RATE``. So ``RATE`` is the window's average, not a pace
the events are pushed to: the processes above come to ``CHURN`` events a second
(measured at ``scale`` 1), and offers make up the rest.

Offers. A real allocator offers every agent with free resources to k8sm every
few seconds: at 12,500 agents, thousands of offers (and as many declines) a
second, which would bury the churn. Here the allocator offers one idle agent at
a time, a Poisson process at ``offers_per_second`` (about 36 a second at
``scale`` 1), as if k8sm held few offers, as a scheduler that suppresses them
while nothing waits would. k8sm puts a waiting pod on an offer as it arrives
(``Tuning.launch_on_offer``), keeps the others for its loop, then lets them
expire after 5 s and declines them (5 s filter), as in the default profile.
Offers come to about a quarter of the events (offered, accepted, expired,
declined); a pending pod waits some 30 ms for one. k8sm's loop runs every
second at ``scale`` 1 and every ``1 / scale`` seconds below it, so that as
many offers pass between two runs of it at any scale.
"""

from __future__ import annotations

from kmevents.simulate.scenarios.allocator import allocate
from kmevents.simulate.scenarios.attach import attach
from kmevents.simulate.scenarios.k8sm_scheduler import k8sm_tick
from kmevents.simulate.scenarios.world import Tuning, World

AGENTS = 12_500
PODS = 140_000
MAX_PODS_PER_AGENT = 20
"""The attach places every pod on an agent with room; beyond this many an agent it may fail."""
RATE = 270.0
"""Events per second of source time, at ``scale`` 1."""
WINDOW = 4_345.0
"""Seconds of source time that 1.5M events cover after the attach (~1,173,400 events at RATE)."""

TUNING = Tuning(image_pull_fail=0.001, batch_ok=0.995, batch_runtime=(60.0, 1200.0),
                launch_on_offer=True, busy_pace=8.0)

TRACE_ENDS: tuple[tuple[str, float], ...] = (
    ("FINISHED", 0.25), ("KILLED", 0.05), ("EVICTED", 0.02), ("FAILED", 0.003))
"""How the tasks seen in the trace's window ended (the rest ran through it)."""
SEEN = PODS / (1.0 - sum(share for _, share in TRACE_ENDS))
"""Tasks seen in the window: those running at its start and those launched since."""


def per_second(kind: str) -> float:
    """How many tasks end as ``kind`` a second of source time, at ``scale`` 1."""
    return dict(TRACE_ENDS)[kind] * SEEN / WINDOW


_FINISHED, _KILLED, _EVICTED, _FAILED = (per_second(k) for k, _ in TRACE_ENDS)
JOBS = _FINISHED / TUNING.batch_ok
"""Jobs that arrive (and end) a second."""
LAUNCHES = JOBS + _KILLED + _EVICTED + _FAILED
"""Tasks launched a second, about: the jobs, and the RC pods that replace those that end."""
_MEAN_RUN = sum(TUNING.batch_runtime) / 2

# Expected ends each event of a family causes, where it is not one.
_ROLL_EVERY, _ROLL_KILLS = 600.0, 40.0      # an RC rolled every 10 min, pod by pod
_SCALE, _SCALE_KILLS = 0.1, 1.0             # +-1..3 replicas, down about half the time
_DRAIN_EVERY, _DRAIN_KILLS = 1800.0, 11.0   # an agent drained every 30 min
_KUBELET_EVERY, _KUBELET_EVICTS = 900.0, 8.0  # 11 pods, when the kubelet is not back in time
_PRESSURE_EVICTS = 1.5                      # pods the kubelet evicts under node pressure

PROCESSES: tuple[tuple[str, float], ...] = (
    ("run_job", JOBS),
    ("user_delete_pod", _KILLED - _SCALE * _SCALE_KILLS - _ROLL_KILLS / _ROLL_EVERY
     - _DRAIN_KILLS / _DRAIN_EVERY),
    ("rc_scale", _SCALE),
    ("rc_roll", 1.0 / _ROLL_EVERY),
    ("agent_maintenance", 1.0 / _DRAIN_EVERY),
    ("api_eviction", _EVICTED / 2),
    ("node_pressure", (_EVICTED / 2 - _KUBELET_EVICTS / _KUBELET_EVERY) / _PRESSURE_EVICTS),
    ("kubelet_down", 1.0 / _KUBELET_EVERY),
    ("task_fail", _FAILED - JOBS * (1 - TUNING.batch_ok) - LAUNCHES * TUNING.image_pull_fail),
    ("container_restart", 1.0),
    ("agent_lost", 1.0 / 1800),
    ("agent_partition", 1.0 / 1800),
    ("namespace_lifecycle", 1.0 / 300),
    ("unschedulable_pod", 1.0 / 1200),
)
"""(action, times a second of source time at ``PODS`` pods): scaled with the pods."""

RECURRING: tuple[tuple[str, float], ...] = (("heartbeat_lost", 900.0),)
"""Cluster-wide actions: (action, mean seconds between two), whatever the scale."""

CHURN = 178.5
"""Events a second that are not offers' (measured at ``scale`` 1): what offers fill up to RATE."""


def offers_per_second(rate: float, factor: float) -> float:
    """Offers a second so that the log comes to ``rate`` events a second: an offer k8sm
    takes is two offer events (offered, accepted), one it lets expire three (offered,
    expired, declined); never fewer than one and a half for each launch."""
    launches = LAUNCHES * factor
    return max(1.5 * launches, (rate - CHURN * factor + launches) / 3)


def start(w: World) -> None:
    """Attach to the running cluster, with its jobs part way through; then k8sm's loop and
    the allocator's offers."""
    factor = w.cfg.target_pods / PODS

    def steady(w: World) -> None:
        w.k8sm_every = 1.0 / factor
        w.after(w.k8sm_every, k8sm_tick)
        w.poisson(allocate, 1.0 / offers_per_second(w.cfg.events_per_second, factor))
        w.steady()

    attach(w, round(JOBS * factor * _MEAN_RUN), steady)
