"""Shared by the source tests: sample loading, strict validation, folding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kmevents.contract import validate_event
from kmevents.reducer import ClusterState, fold
from kmevents.sources.recordio import RecordIODecoder

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CLUSTER = "prod-1"
NOW = 1436367900.0  # 2015-07-08T15:05:00Z, the samples' "present"


def fixed_now() -> float:
    return NOW


def records(name: str) -> list[bytes]:
    return RecordIODecoder().feed((SAMPLES / name).read_bytes())


def ndjson(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (SAMPLES / name).read_text().splitlines() if x.strip()]


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def canonical(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event through the contract's strict validation; fails on the first refusal."""
    out = []
    for e in events:
        c, warnings = validate_event(e)
        assert warnings == [], (e["type"], warnings)
        out.append(c)
    return out


def folded(events: list[dict[str, Any]], state: ClusterState | None = None) -> ClusterState:
    st, _ = fold(canonical(events), state=state, cluster=CLUSTER)
    return st


def fold_task(st: ClusterState, key: tuple[str, str]) -> dict[str, Any]:
    """The folded task ``(framework_id, task_id)``, whichever way the fold keys tasks
    (``<framework_id>/<task_id>`` from REDUCER_VERSION 4, the task id before)."""
    fid, tid = key
    found = st.tasks.get(f"{fid}/{tid}") or st.tasks.get(tid)
    assert found is not None, key
    return found
