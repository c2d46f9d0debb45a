"""A snapshot load rebuilds the fold's derived indexes (RC and service members, live pods
per namespace, selector files) exactly as the events built them: the next events fold the
same on a loaded state as on the live one."""

from __future__ import annotations

import orjson
import pytest

from kmevents.reducer import ClusterState, apply
from kmevents.simulate import iter_lines

INDEXES = ("_pods_by_ns", "_rc_sel", "_svc_sel", "_rc_members", "_svc_members")


@pytest.mark.parametrize(("profile", "sizes"), [("default", {"agents": 20}), ("large", {"scale": 0.01})])
def test_a_loaded_snapshot_has_the_indexes_the_events_built(profile: str, sizes: dict[str, float]) -> None:
    st = ClusterState.empty("idx")
    checked = 0
    for i, line in enumerate(iter_lines("idx", 3, 12_000, profile=profile, **sizes)):
        apply(st, orjson.loads(line), partition=0, offset=i)
        if i % 2_000 == 1_999:
            loaded = ClusterState.from_snapshot(st.to_snapshot())
            for name in INDEXES:
                assert getattr(loaded, name) == getattr(st, name), (i, name)
            checked += bool(st._rc_members) and bool(st._svc_members)
    assert checked >= 3, "the log must have RCs and services with members to compare"
