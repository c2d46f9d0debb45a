"""A snapshot load rebuilds the fold's derived indexes (RC and service members, live pods
per namespace, selector files) exactly as the events built them: the next events fold the
same on a loaded state as on the live one."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.reducer import ClusterState, apply
from kmevents.reducer.taskids import key_exceptions
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
            assert _task_index(loaded) == _task_index(st), i
            checked += bool(st._rc_members) and bool(st._svc_members)
    assert checked >= 3, "the log must have RCs and services with members to compare"


def _task_index(st: ClusterState) -> dict[str, list[str]]:
    """The task-id index as far as it names live task entities (the live one may also name
    pruned ones: ``ClusterState.task_ids`` filters them), asked for every live task's id."""
    from kmevents.reducer.taskids import keys_of

    tids = {task["task_id"] for _, task in st.entities("task")} | set(st._task_keys)
    out = {tid: sorted(k for k in keys_of(st, tid) if k in st.tasks) for tid in tids}
    return {tid: keys for tid, keys in out.items() if keys}


def test_a_task_whose_framework_id_holds_a_slash_is_indexed_under_its_own_id_after_a_load() -> None:
    from kmevents.reducer.taskids import index_task

    st = ClusterState.empty("idx")
    for key, tid in (("fw-1/t-1", "t-1"), ("odd/fw/t-2", "t-2"), ("fw-1/a/b", "a/b")):
        st.tasks[key] = {"id": key, "task_id": tid}
        index_task(st, tid, key)
    data = st.to_snapshot()
    assert b'"task_id_exceptions":{"odd/fw/t-2":"t-2"}' in data.split(b"\n", 1)[0]
    loaded = ClusterState.from_snapshot(data)
    assert _task_index(loaded) == _task_index(st) == {"t-1": ["fw-1/t-1"], "t-2": ["odd/fw/t-2"], "a/b": ["fw-1/a/b"]}


def test_a_task_id_two_frameworks_use_is_indexed_under_both_and_back_to_one_when_one_goes() -> None:
    from kmevents.reducer.taskids import forget_task, index_task, keys_of

    st = ClusterState.empty("idx")
    for key in ("fw-1/t-1", "fw-2/t-1", "fw-1/t-2"):
        st.tasks[key] = {"id": key, "task_id": key.partition("/")[2]}
        index_task(st, key.partition("/")[2], key)
    index_task(st, "t-1", "fw-1/t-1")  # again: no second entry
    assert sorted(st.task_ids("t-1")) == ["fw-1/t-1", "fw-2/t-1"] and st.task_ids("t-2") == ["fw-1/t-2"]
    fork = st.fork()
    del st.tasks["fw-2/t-1"]
    forget_task(st, "t-1", "fw-2/t-1")
    assert st.task_ids("t-1") == ["fw-1/t-1"] and keys_of(st, "t-1") == ["fw-1/t-1"]
    forget_task(st, "t-1", "fw-9/t-1")  # not indexed: nothing happens
    del st.tasks["fw-1/t-1"]
    forget_task(st, "t-1", "fw-1/t-1")
    assert st.task_ids("t-1") == [] and "t-1" not in st._task_keys
    assert sorted(fork.task_ids("t-1")) == ["fw-1/t-1", "fw-2/t-1"]  # the fork's index is its own
    loaded = ClusterState.from_snapshot(fork.to_snapshot())
    assert sorted(loaded.task_ids("t-1")) == ["fw-1/t-1", "fw-2/t-1"]


_IDS = st.sampled_from(["t1", "t2", "a/b", "x", "fw/t1"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_IDS, st.one_of(st.sampled_from(["fw/t1", "fw/t2", "f/a/b", "fw/x", "g/t1", "fw/fw/t1"]),
                                       st.lists(st.sampled_from(["fw/t1", "g/t1", "f/a/b", "h/x"]), min_size=2,
                                                max_size=3, unique=True))),
       st.sets(st.sampled_from(["fw/t1", "fw/t2", "f/a/b", "fw/x", "g/t1", "fw/fw/t1", "h/x"])))
def test_key_exceptions_names_every_live_key_whose_id_is_not_after_its_first_slash(
        index: dict[str, object], live: set[str]) -> None:
    s = ClusterState.empty("c")
    s._task_keys = index  # type: ignore[assignment]
    for key in live:
        dict.__setitem__(s.tasks, key, b'{"task_id":"t"}')
    want = {key: tid for tid, keys in index.items() for key in ([keys] if isinstance(keys, str) else keys)  # type: ignore[union-attr]
            if key.partition("/")[2] != tid and key in live}
    assert key_exceptions(s) == want
