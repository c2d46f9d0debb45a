"""A seeded Kubernetes-on-Mesos workload, as catalogue-shaped events.

    >>> from kmevents.simulate import generate, iter_lines
    >>> events = list(generate("demo", seed=7, events=1000))
    >>> events[0]["type"]
    'master.elected'
    >>> lines = list(iter_lines("demo", seed=7, events=1000))   # canonical bytes, one per line

The same ``(cluster, seed, sizes, rate, start)`` always gives the same bytes.
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
                  (its own docstring maps the families)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from functools import partial
from typing import Any

import orjson

from kmevents.simulate.clock import DEFAULT_START, parse_start
from kmevents.simulate.emit import fallback_event_id
from kmevents.simulate.scenarios import WEIGHTS, SimConfig, Simulator

__all__ = [
    "DEFAULT_START",
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
    agents: int = 50,
    frameworks: int = 3,
    pods: int | None = None,
    rate: float | None = None,
    start: str | int = DEFAULT_START,
    pod_eviction_timeout: float = 300.0,
) -> SimConfig:
    """A checked ``SimConfig``; ``generate`` and ``iter_lines`` take the same keywords.

    ``agents``: Mesos agents at the start (lost/drained ones are replaced later).
    ``frameworks``: long-lived frameworks: k8sm, Marathon, Spark, then more
    Marathon-like ones; short-lived Spark applications come and go on top.
    ``pods``: pods the RCs and jobs aim at (default 10 per agent).
    ``rate``: events per simulated second outside bursts (default ``max(50, agents)``).
    ``start``: the simulated clock's start, ISO-8601 UTC text or epoch microseconds.
    ``pod_eviction_timeout``: the node controller's wait after NotReady (seconds).
    """
    start_us = start if isinstance(start, int) else parse_start(start)
    if events < 0:
        raise ValueError("events must be >= 0")
    if agents < 1:
        raise ValueError("agents must be >= 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    return SimConfig(cluster=cluster, seed=seed, events=events, agents=agents,
                     frameworks=frameworks, pods=pods, rate=rate, start_us=start_us,
                     pod_eviction_timeout=pod_eviction_timeout)


def batches(cfg: SimConfig) -> Iterator[list[dict[str, Any]]]:
    """The simulator's output, one step's events at a time, cut at exactly ``cfg.events``.

    Each list is reused for the next step: consume it before asking for the next.
    """
    # The world of a large cluster is millions of objects; with the default thresholds
    # the cyclic GC keeps promoting short-lived event dicts and rescanning that world,
    # which halves the speed at 10k agents. Collect less often while generating
    # (the simulator breaks its own reference cycles, so little is left for the GC).
    saved = gc.get_threshold()
    gc.set_threshold(max(saved[0], 200_000), max(saved[1], 50), max(saved[2], 100))
    try:
        sim = Simulator(cfg)
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
