"""A point-in-time list's pages read the held read's ids sorted once (kmevents/api/state_routes.py
``sorted_ids``), kept while the read is and dropped with it."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from kmevents.api import state_routes


@dataclass
class _State:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    sorts: int = 0

    def ids(self, kind: str) -> Any:
        self.sorts += 1
        return self.tables[kind].keys()


@dataclass
class _Read:  # compares by value, as replay.engine.Replayed does: no dict key
    state: _State


def test_ids_are_sorted_once_per_read_and_kind_and_dropped_with_the_read() -> None:
    st = _State({"pod": {"ns/b": {}, "ns/a": {}, "ns/c": {}}, "task": {"t2": {}, "t1": {}}})
    r = _Read(st)
    first = state_routes.sorted_ids(r, "pod")
    assert first == ["ns/a", "ns/b", "ns/c"] and state_routes.sorted_ids(r, "pod") is first
    assert state_routes.sorted_ids(r, "task") == ["t1", "t2"] and st.sorts == 2
    other = _Read(_State({"pod": {"x": {}}}))
    assert state_routes.sorted_ids(other, "pod") == ["x"]  # equal reads would share a key: ids are by object
    held = len(state_routes._SORTED_IDS)
    del r
    gc.collect()
    assert len(state_routes._SORTED_IDS) == held - 1
