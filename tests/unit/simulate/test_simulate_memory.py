"""Streaming: the live world is bounded by the cluster's size, not by the number of events."""

from __future__ import annotations

from kmevents.simulate import SimConfig, Simulator


def _run(sim: Simulator, events: int) -> None:
    out = sim.out
    n = 0
    while n < events:
        sim.step()
        n += len(out)
        out.clear()


def test_live_world_stays_bounded_over_a_long_run() -> None:
    sim = Simulator(SimConfig(cluster="mem", seed=2, events=0, agents=20, pods=150))
    sizes = []
    for _ in range(6):
        _run(sim, 25_000)
        sizes.append((len(sim.heap), len(sim.pods), len(sim.agents), len(sim.offers),
                      len(sim.frameworks), sum(len(a.tasks) for a in sim.agents.values())))
    heap, pods, agents, offers, frameworks, tasks = (max(col) for col in zip(*sizes, strict=True))
    assert pods <= 150 * 1.6 + 40
    assert agents <= 20 + 10
    assert offers <= agents
    assert frameworks <= 3 + 6
    assert tasks <= pods + 20 * 6
    assert heap <= 10 * (pods + agents) + 200
    # and the last window is no larger than the first ones: nothing accumulates
    assert sizes[-1][1] <= max(s[1] for s in sizes[:3]) * 1.6
