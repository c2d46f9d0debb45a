"""One default-sized run shared by the simulator's tests (generated once per session)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kmevents.simulate import iter_lines

RUN_CLUSTER = "simtest"
RUN_SEED = 11
RUN_EVENTS = 30_000


@pytest.fixture(scope="session")
def run_lines() -> list[bytes]:
    """30k canonical lines of the default cluster (50 agents, ~500 pods)."""
    return list(iter_lines(RUN_CLUSTER, RUN_SEED, RUN_EVENTS))


@pytest.fixture(scope="session")
def run_events(run_lines: list[bytes]) -> list[dict[str, Any]]:
    """The same run, decoded (fresh dicts: safe to keep and to index)."""
    return [orjson.loads(line) for line in run_lines]


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def statuses(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"]["status"] for e in events if e["type"] == "task.status_updated"]
