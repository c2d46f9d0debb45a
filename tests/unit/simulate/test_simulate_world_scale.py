"""What keeps the simulator's cost per event flat at 12,500 agents and 140,000 pods."""

from __future__ import annotations

import heapq
from typing import Any

import pytest

from kmevents.simulate import SimConfig, Simulator, config
from kmevents.simulate.clock import US
from kmevents.simulate.scenarios import namespaces
from kmevents.simulate.scenarios.tasks import redeliver
from kmevents.simulate.scenarios.world import World


class _NoScan(dict[str, Any]):
    """The world's pods, refusing to be walked whole."""

    def values(self) -> Any:
        raise AssertionError("walked every pod of the cluster")

    def items(self) -> Any:
        raise AssertionError("walked every pod of the cluster")


def test_a_namespace_ends_without_walking_every_pod_of_the_cluster() -> None:
    sim = Simulator(SimConfig(cluster="ns", seed=3, events=0, agents=20, pods=150))
    namespaces.namespace_lifecycle(sim)
    ns = f"ci-{sim.ns_seq}"
    ci_pods = [p for p in sim.pods.values() if p.ns == ns]
    assert ci_pods
    sim.pods = _NoScan(sim.pods)
    namespaces.namespace_terminate(sim, ns)
    assert all(p.deleting for p in ci_pods)
    assert not any(p.ns == ns for p in dict.values(sim.pods) if not p.deleting)


def test_a_process_keeps_its_rate_when_the_steps_around_it_are_long() -> None:
    """A Poisson process on timers runs at its rate even when other steps emit many events
    (each moving the clock on): its next occurrence is drawn from when it was due."""
    w = World(SimConfig(cluster="p", seed=1, events=0, rate=1.0))
    counts = {"light": 0}

    def light(w: World) -> None:
        counts["light"] += 1

    def heavy(w: World) -> None:  # ten events: ten seconds of clock at 1 event a second
        for _ in range(10):
            w.tick()

    w.poisson(light, 2.0)
    w.poisson(heavy, 20.0)  # the clock is busy half the time
    end = w.now + 20_000 * US
    while w.now < end:
        due, _, fn, args = w.heap[0]
        if due > w.now:
            w.now = due
        heapq.heappop(w.heap)
        fn(w, *args)
    assert counts["light"] == pytest.approx(10_000, rel=0.05)


def test_a_task_keeps_its_last_update_only_while_a_redelivery_waits_for_it() -> None:
    sim = Simulator(config("mem", 5, 0, agents=20, pods=150))
    n = 0
    while n < 20_000:
        sim.step()
        n += len(sim.out)
        sim.out.clear()
    waiting = {id(args[1]) for _, _, fn, args in sim.heap if fn is redeliver}
    kept = [t.last_status for f in sim.frameworks for t in f.tasks.values()
            if t.last_status is not None]
    assert all(id(event) in waiting for event in kept)
