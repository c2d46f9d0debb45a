"""Folding a simulated run through the reducer: only the deliberate quirks are annotated."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

reducer = pytest.importorskip("kmevents.reducer")

# What the simulator does on purpose, and how the reducer may note it:
#   duplicate  re-delivered status updates (same uuid), task.added replays after a failover
#   stale      k8sm declines the offers it expired; a RESCIND crossing that DECLINE
DELIBERATE = {"duplicate", "stale"}


def test_folding_a_run_gives_no_impossible_or_broken_annotations(run_lines: list[bytes]) -> None:
    state, annotations = reducer.fold(run_lines, cluster="simtest")
    kinds = Counter(a["kind"] for a in annotations)
    unexpected = [a for a in annotations if a["kind"] not in DELIBERATE]
    assert not unexpected, f"{kinds}: {unexpected[:5]}"
    stale_types = {a["event_type"] for a in annotations if a["kind"] == "stale"}
    assert stale_types <= {"offer.declined", "offer.rescinded"}
    dup_types = {a["event_type"] for a in annotations if a["kind"] == "duplicate"}
    assert dup_types <= {"task.status_updated", "task.added"}
    assert kinds["duplicate"] > 0  # the re-deliveries are seen as such


def test_the_folded_state_has_the_live_cluster(run_lines: list[bytes],
                                               run_events: list[dict[str, Any]]) -> None:
    state, _ = reducer.fold(run_lines, cluster="simtest")
    pods = dict(state.entities("pod"))
    assert any(pid.startswith("kube-system/kube-dns") for pid in pods)
    assert sum(1 for _ in state.entities("agent")) >= 40
