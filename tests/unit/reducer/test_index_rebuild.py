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


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 39), st.integers(0, 3)), min_size=1, max_size=300))
def test_a_lookup_tries_the_frameworks_holding_tasks_not_every_one_seen(ops: list[tuple[bool, int, int]]) -> None:
    """Frameworks come and go (a Spark job registers one each): tasks are added and removed in
    any order. Every lookup finds exactly the table's tasks with that id, and the framework ids
    a lookup tries stay within twice those holding tasks at the last recount (or the floor,
    lowered here to 4 so that short runs recount)."""
    from kmevents.reducer import taskids

    was, taskids.FRAMEWORKS_RECOUNTED_PAST = taskids.FRAMEWORKS_RECOUNTED_PAST, 4
    try:
        _run(ClusterState.empty("fws"), ops, 4)
    finally:
        taskids.FRAMEWORKS_RECOUNTED_PAST = was


def _run(s: ClusterState, ops: list[tuple[bool, int, int]], floor: int) -> None:
    from kmevents.reducer.taskids import forget_task, index_task

    for add, fw, t in ops:
        key = f"spark-{fw:04d}/t-{t}"
        if add and key not in s.tasks:
            s.tasks[key] = {"id": key, "task_id": f"t-{t}"}
            index_task(s, f"t-{t}", key)
        elif not add and key in s.tasks:
            del s.tasks[key]
            forget_task(s, f"t-{t}", key)
        holding = {k.partition("/")[0] for k in s.tasks}
        assert holding <= s._task_fws.keys()
        assert len(s._task_fws) <= max(floor, 2 * s._task_fws_counted) + 1
    for t in range(4):
        assert s.task_ids(f"t-{t}") == sorted(k for k in s.tasks if k.endswith(f"/t-{t}"))


def test_ten_thousand_frameworks_seen_with_a_hundred_holding_tasks_are_tried_as_about_a_hundred() -> None:
    """The case behind the recount: a long fold saw 10,000 frameworks, each ran a task that
    finished and was pruned; the last 100 still hold tasks."""
    from kmevents.reducer.taskids import FRAMEWORKS_RECOUNTED_PAST, forget_task, index_task

    s = ClusterState.empty("fws")
    for fw in range(10_000):
        key = f"spark-{fw:05d}/driver"
        s.tasks[key] = {"id": key, "task_id": "driver"}
        index_task(s, "driver", key)
        if fw >= 100:  # the framework 100 before this one is done and its task pruned
            old = f"spark-{fw - 100:05d}/driver"
            del s.tasks[old]
            forget_task(s, "driver", old)
    assert len(s.task_ids("driver")) == 100
    assert len(s._task_fws) <= max(FRAMEWORKS_RECOUNTED_PAST, 2 * 100) + 1  # 10,000 before the recount
    loaded = ClusterState.from_snapshot(s.to_snapshot())
    assert loaded.task_ids("driver") == s.task_ids("driver") and len(loaded._task_fws) == 100
