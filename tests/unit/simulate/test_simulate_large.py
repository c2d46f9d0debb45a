"""The large profile: a running 12,500-machine cluster, checked at a fiftieth of its size.

At ``scale`` 0.02 it is 250 agents and ~2,800 pods at 5.4 events a second; 30,000
events cover the same ~73 minutes of source time after the attach as 1.5M events
at full size, so the shares of task ends are comparable to the trace's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import orjson
import pytest

from kmevents.reducer import condition, fold
from kmevents.simulate import Simulator, batches, config, iter_lines
from kmevents.simulate.scenarios import large
from kmevents.simulate.shape import Shape

SCALE = 0.02
EVENTS = 30_000
SEED = 4


def _digest(lines: object) -> str:
    h = hashlib.sha256()
    for line in lines:  # type: ignore[attr-defined]
        h.update(line)
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_lines() -> list[bytes]:
    return list(iter_lines("trace", SEED, EVENTS, profile="large", scale=SCALE))


@pytest.fixture(scope="module")
def small_shape() -> dict[str, Any]:
    shape = Shape()

    def started(n: int) -> None:
        shape.bootstrap = n

    for batch in batches(config("trace", SEED, EVENTS, profile="large", scale=SCALE), started):
        for event in batch:
            shape.add(event)
    return shape.report()


def test_the_same_seed_gives_the_same_bytes(small_lines: list[bytes]) -> None:
    again = iter_lines("trace", SEED, EVENTS, profile="large", scale=SCALE)
    assert _digest(again) == _digest(small_lines)
    assert _digest(iter_lines("trace", SEED + 1, 5000, profile="large", scale=SCALE)) \
        != _digest(small_lines[:5000])


def test_naming_the_default_profile_changes_nothing() -> None:
    from tests.unit.simulate.test_simulate_determinism import PINNED_SHA256

    assert _digest(iter_lines("pin", 1, 5000, agents=20, profile="default", scale=1.0)) \
        == PINNED_SHA256


def test_scale_multiplies_the_sizes_and_explicit_sizes_win() -> None:
    full = config("c", 1, 0, profile="large")
    assert (full.agents, full.target_pods, full.events_per_second) == (12_500, 140_000, 270.0)
    assert full.frameworks == 1
    small = config("c", 1, 0, profile="large", scale=SCALE)
    assert (small.agents, small.target_pods, small.events_per_second) == (250, 2800, 5.4)
    own = config("c", 1, 0, profile="large", scale=SCALE, agents=300, rate=9.0)
    assert (own.agents, own.target_pods, own.events_per_second) == (300, 2800, 9.0)
    default = config("c", 1, 0)
    assert (default.agents, default.frameworks, default.profile) == (50, 3, "default")


def test_too_many_pods_for_the_agents_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="give at least 250 agents"):
        config("c", 1, 0, profile="large", agents=12, pods=5000)
    with pytest.raises(ValueError, match="profile must be one of default, large"):
        config("c", 1, 0, profile="huge")


def test_it_reaches_the_trace_concurrency_on_its_agents(small_shape: dict[str, Any]) -> None:
    assert small_shape["max_agents"] == 250
    # 130-150k running pod tasks at full size
    assert 130_000 * SCALE <= small_shape["max_running_pod_tasks"] <= 150_000 * SCALE
    # and it stays there: the ends are replaced
    assert small_shape["running_pod_tasks_at_end"] >= 0.95 * small_shape["max_running_pod_tasks"]


def test_the_attach_is_about_two_events_a_pod_and_three_an_agent(
        small_shape: dict[str, Any]) -> None:
    pods, agents = small_shape["by_type"]["task.added"], small_shape["max_agents"]
    boot = small_shape["bootstrap_events"]
    # and its RCs (~40 pods each) and services (a list and an endpoints each) on top
    assert 2 * pods + 3 * agents <= boot <= 2 * pods + 3 * agents + 0.08 * pods


def test_task_ends_come_in_the_trace_proportions(small_shape: dict[str, Any]) -> None:
    shares = small_shape["end_shares"]
    assert shares["FINISHED"] == pytest.approx(0.25, abs=0.03)
    assert shares["KILLED"] == pytest.approx(0.05, abs=0.012)
    assert shares["EVICTED"] == pytest.approx(0.02, abs=0.008)
    assert shares["FAILED"] == pytest.approx(0.003, abs=0.0025)
    # most run through the window
    assert small_shape["running_through_share"] == pytest.approx(0.677, abs=0.04)


def test_the_churn_runs_at_the_trace_pace(small_shape: dict[str, Any]) -> None:
    assert small_shape["events_per_second"] == pytest.approx(large.RATE * SCALE, rel=0.05)
    # the window is the one the trace's proportions were taken over
    assert small_shape["source_seconds"] == pytest.approx(large.WINDOW, rel=0.05)
    # offers fill what the churn leaves, a realistic fraction rather than most of the log
    assert 0.15 <= small_shape["offer_share"] <= 0.35
    # k8sm rarely waits for an offer: few FailedScheduling Events
    assert small_shape["by_type"].get("k8s_event.recorded", 0) < 0.01 * small_shape["events"]


def test_no_failover_replays_or_reconciliations(small_lines: list[bytes]) -> None:
    events = [orjson.loads(line) for line in small_lines]
    types = Counter(e["type"] for e in events)
    assert types["master.elected"] == types["scheduler.leader_elected"] == 1
    assert "cluster.snapshot_observed" not in types
    assert not any(e["payload"]["status"]["reason"] == "REASON_RECONCILIATION"
                   for e in events if e["type"] == "task.status_updated")


def test_every_pod_of_the_attach_runs_under_its_task_in_the_folded_state() -> None:
    cfg = config("trace", SEED, 0, profile="large", scale=SCALE)
    boot = Simulator(cfg).bootstrap_events
    lines = list(iter_lines("trace", SEED, boot, profile="large", scale=SCALE))
    state, annotations = fold(lines, cluster="trace")
    assert annotations == []
    pods = dict(state.entities("pod"))
    tasks = dict(state.entities("task"))
    assert len(pods) == len(tasks) > 0.95 * cfg.target_pods
    assert Counter(condition(t) for t in tasks.values()) == {"TASK_RUNNING": len(tasks)}
    assert Counter(condition(p) for p in pods.values()) == {"Running": len(pods)}
    assert all(t["pod"] in pods and pods[t["pod"]]["task_id"] == t["task_id"] for t in tasks.values())
    # the attach's records are exactly the first ``boot``: none of its kinds come after
    assert orjson.loads(lines[-1])["type"] == "endpoints.observed"
    after = list(iter_lines("trace", SEED, boot + 3000, profile="large", scale=SCALE))[boot:]
    assert not any(orjson.loads(line)["type"] in ("task.added", "agent.added", "executor.added")
                   for line in after)


def test_folding_a_sample_gives_only_redelivered_status_updates(small_lines: list[bytes]) -> None:
    state, annotations = fold(small_lines, cluster="trace")
    kinds = Counter((a["kind"], a["event_type"]) for a in annotations)
    assert set(kinds) <= {("duplicate", "task.status_updated")}, kinds
    # Mesos re-delivers ~2% of reliable status updates; nothing else is annotated
    assert sum(kinds.values()) < 0.01 * len(small_lines)


def test_the_attach_is_written_a_chunk_at_a_time() -> None:
    """A driver's batch holds one chunk of the start, not its ~320,000 events at full size."""
    cfg = config("trace", SEED, 40_000, profile="large", scale=0.1)
    sizes = [len(batch) for batch in batches(cfg)]
    assert sum(sizes[:10]) > 20_000  # the start is ~32,000 events at this scale
    # the agents' registrations (one step), then chunks of the lists
    assert max(sizes) <= cfg.agents + 4 + 4096


def test_the_world_stays_the_cluster_size_over_the_window(small_lines: list[bytes]) -> None:
    sim = Simulator(config("trace", SEED, 0, profile="large", scale=SCALE))
    pods_at_start = len(sim.pods)
    n = 0
    while n < EVENTS:
        sim.step()
        n += len(sim.out)
        sim.out.clear()
    assert 0.9 * pods_at_start <= len(sim.pods) <= 1.25 * pods_at_start
    assert len(sim.heap) <= 3 * pods_at_start
