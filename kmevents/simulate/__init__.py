"""A seeded Kubernetes-on-Mesos workload, as catalogue-shaped events.

    >>> from kmevents.simulate import generate, iter_lines
    >>> events = list(generate("demo", seed=7, events=1000))
    >>> events[0]["type"]
    'master.elected'
    >>> lines = list(iter_lines("demo", seed=7, events=1000))   # canonical bytes, one per line

The same ``(cluster, seed, profile, scale, sizes, rate, start)`` always gives the same
bytes. ``profile="large"`` is a running 12,500-machine cluster shaped like a public
trace (``scenarios/large.py``); ``scale`` shrinks or grows a profile.
Memory follows the simulated cluster's size, not ``events``: a run of ten
million events holds only the live agents, tasks and pods.

The yielded dicts may share nested values (labels, resources, volumes) with
one another and with the simulator's world: treat them as read-only, or use
``iter_lines`` and decode.

Map of the package:

    clock.py      simulated time (integer microseconds) and its canonical text
    emit.py       envelope building, streams and seqs, event ids
    model.py      the in-memory world: agents, frameworks, offers, tasks, pods, RCs, services
    scenarios/    the rules, timers and spontaneous actions that change the world: the shared
                  World (state, clock, timers), one module per scenario family, the driver
                  and its profiles (its own docstring maps the families)
    shape.py      what a log looks like: agents, running pod tasks, task ends, pace
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import orjson

from kmevents.simulate.clock import DEFAULT_START, parse_start
from kmevents.simulate.emit import fallback_event_id
from kmevents.simulate.scenarios import PROFILES, WEIGHTS, SimConfig, Simulator

__all__ = [
    "DEFAULT_START",
    "PROFILES",
    "WEIGHTS",
    "SimConfig",
    "Simulator",
    "batches",
    "config",
    "fallback_event_id",
    "generate",
    "iter_lines",
]

_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def config(
    cluster: str,
    seed: int,
    events: int,
    *,
    profile: str = "default",
    scale: float = 1.0,
    agents: int | None = None,
    frameworks: int | None = None,
    pods: int | None = None,
    rate: float | None = None,
    start: str | int = DEFAULT_START,
    pod_eviction_timeout: float = 300.0,
) -> SimConfig:
    """A checked ``SimConfig``; ``generate`` and ``iter_lines`` take the same keywords.

    ``profile``: ``default`` (a cluster watched from its start: 50 agents, 3 frameworks)
    or ``large`` (a running 12,500-machine cluster with 140,000 pods at 270 events a
    second, attached to; see ``kmevents.simulate.scenarios.large``).
    ``scale``: multiplies the profile's agents, pods and rate (and so its per-entity
    rates): ``large`` at 0.02 is the same shape with 250 agents and 2,800 pods.
    The sizes below, when given, replace the scaled ones:
    ``agents``: Mesos agents at the start (lost/drained ones are replaced later).
    ``frameworks``: long-lived frameworks: k8sm, Marathon, Spark, then more
    Marathon-like ones; short-lived Spark applications come and go on top.
    ``pods``: pods the RCs and jobs aim at (default 10 per agent).
    ``rate``: events per simulated second outside bursts (default ``max(50, agents)``).
    ``start``: the simulated clock's start, ISO-8601 UTC text or epoch microseconds.
    ``pod_eviction_timeout``: the node controller's wait after NotReady (seconds).
    """
    start_us = start if isinstance(start, int) else parse_start(start)
    prof = PROFILES.get(profile)
    if prof is None:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    if not scale > 0:
        raise ValueError("scale must be > 0")
    if agents is None:
        agents = max(1, round(prof.agents * scale))
    if pods is None and prof.pods is not None:
        pods = max(10, round(prof.pods * scale))
    if rate is None and prof.rate is not None:
        rate = prof.rate * scale
    if events < 0:
        raise ValueError("events must be >= 0")
    if agents < 1:
        raise ValueError("agents must be >= 1")
    most = prof.max_pods_per_agent
    if most is not None and pods is not None and pods > most * agents:
        raise ValueError(f"{pods} pods on {agents} agents is more than the {profile} profile "
                         f"places ({most} an agent): give at least {-(-pods // most)} agents")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    return SimConfig(cluster=cluster, seed=seed, events=events, agents=agents,
                     frameworks=prof.frameworks if frameworks is None else frameworks,
                     pods=pods, rate=rate, start_us=start_us,
                     pod_eviction_timeout=pod_eviction_timeout, profile=profile, scale=scale)


def batches(cfg: SimConfig, started: Callable[[int], object] | None = None,
            ) -> Iterator[list[dict[str, Any]]]:
    """The simulator's output, one step's events at a time, cut at exactly ``cfg.events``.

    Each list is reused for the next step: consume it before asking for the next.
    ``started``, when given, is called once before the first batch with the number of
    events the profile's start takes (the rest is the steady churn).
    """
    # The world of a large cluster is millions of objects; with the default thresholds
    # the cyclic GC keeps promoting short-lived event dicts and rescanning that world,
    # which halves the speed at 10k agents. Collect less often while generating
    # (the simulator breaks its own reference cycles, so little is left for the GC).
    saved = gc.get_threshold()
    gc.set_threshold(max(saved[0], 200_000), max(saved[1], 50), max(saved[2], 100))
    try:
        sim = Simulator(cfg)
        if started is not None:
            started(sim.bootstrap_events)
        out = sim.out
        step = sim.step
        left = cfg.events
        while left > 0:
            if not out:
                step()
                continue
            if len(out) > left:
                del out[left:]
            yield out
            left -= len(out)
            out.clear()
    finally:
        gc.set_threshold(*saved)


def generate(cluster: str, seed: int, events: int, **sizes: Any) -> Iterator[dict[str, Any]]:
    """Yield exactly ``events`` events of a simulated cluster, in log order.

    ``sizes`` are the keywords of ``config`` (agents, frameworks, pods, rate, start, ...).
    """
    for batch in batches(config(cluster, seed, events, **sizes)):
        yield from batch


def iter_lines(cluster: str, seed: int, events: int, **sizes: Any) -> Iterator[bytes]:
    """``generate`` as canonical JSON lines: ``orjson.dumps(event, OPT_SORT_KEYS) + b"\\n"``."""
    encode = partial(orjson.dumps, option=_DUMPS_OPTIONS)
    for batch in batches(config(cluster, seed, events, **sizes)):
        yield from map(encode, batch)
