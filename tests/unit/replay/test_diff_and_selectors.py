"""Field-level diffs of entities and states; Kubernetes label selectors."""

from __future__ import annotations

from typing import Any

import pytest
from kmevents.replay.diffing import diff_tables, field_changes

from kmevents.errors import UsageError
from kmevents.selectors import parse


def test_field_changes_name_nested_paths_and_list_positions() -> None:
    a = {"state": "TASK_RUNNING", "status": {"reason": None}, "ports": [{"port": 80}, {"port": 81}]}
    b = {"state": "TASK_LOST", "status": {"reason": "REASON_AGENT_REMOVED"}, "ports": [{"port": 80}, {"port": 82}]}
    got = [(c.path, c.before, c.after) for c in field_changes(a, b)]
    assert got == [("ports[1].port", 81, 82), ("state", "TASK_RUNNING", "TASK_LOST"),
                   ("status.reason", None, "REASON_AGENT_REMOVED")]


def test_state_diff_separates_added_removed_and_changed() -> None:
    before = {"task": {"t1": {"state": "TASK_RUNNING"}, "t2": {"state": "TASK_STAGING"}}}
    after = {"task": {"t1": {"state": "TASK_LOST"}, "t3": {"state": "TASK_STAGING"}}, "pod": {"p": {}}}
    d = diff_tables(before, after)
    assert d.counts() == {"pod": {"added": 1, "removed": 0, "changed": 0},
                          "task": {"added": 1, "removed": 1, "changed": 1}}
    assert d.changed["task"]["t1"][0].after == "TASK_LOST"
    assert diff_tables(before, before).empty


@pytest.mark.parametrize(("sel", "labels", "ok"), [
    ("app=mysql", {"app": "mysql"}, True),
    ("app==mysql,tier!=cache", {"app": "mysql", "tier": "cache"}, False),
    ("env in (prod, qa)", {"env": "qa"}, True),
    ("env notin (prod)", {}, True),
    ("release", {"release": "x"}, True),
    ("!canary", {"canary": "1"}, False),
    ("app=mysql,env in (a,b)", {"app": "mysql", "env": "c"}, False),
])
def test_label_selectors(sel: str, labels: dict[str, str], ok: bool) -> None:
    assert parse(sel).matches(labels) is ok


def test_an_unreadable_selector_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse("app=(x")


def _states(n_first: int, n_second: int, *, reload: bool) -> tuple[object, object]:
    """A simulated cluster folded to two offsets (trained packed tables: TRAIN_AT lowered);
    ``reload``: each through its snapshot, as a replay from the worker's snapshots loads it."""
    from kmevents.reducer import ClusterState, apply
    from kmevents.simulate import generate

    events = list(generate("c1", 5, n_second, agents=8))
    a = ClusterState("c1")
    for e in events[:n_first]:
        apply(a, e)
    b = ClusterState.from_snapshot(a.to_snapshot()) if reload else a.fork()
    for e in events[n_first:]:
        apply(b, e)
    if reload:
        a = ClusterState.from_snapshot(a.to_snapshot())
        b = ClusterState.from_snapshot(b.to_snapshot())
    else:
        b.freeze()
    return a, b


def _copied_whole(state: Any, kinds: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """What `kmevents diff` compared before diff_states: every entity of the kinds, copied deep
    (orjson out and back), with its condition."""
    import orjson
    from kmevents.replay.render import with_condition

    return {k: {i: with_condition(v) for i, v in orjson.loads(orjson.dumps(dict(state.entities(k)))).items()}
            for k in state.kinds if kinds is None or k in kinds}


@pytest.mark.parametrize("reload", [False, True])
@pytest.mark.parametrize(("n_first", "n_second"), [(1500, 3000), (3000, 3000), (200, 4000)])
def test_diff_states_is_the_diff_of_both_states_copied_whole(monkeypatch: pytest.MonkeyPatch, reload: bool,
                                                               n_first: int, n_second: int) -> None:
    """diff_states reads only what differs and gives what diffing both states' entities, copied
    whole with their conditions, gives (what `kmevents diff` did before), kind by kind."""
    from kmevents.replay.diffing import diff_states

    from kmevents.reducer import packed

    monkeypatch.setattr(packed, "TRAIN_AT", 64)
    a, b = _states(n_first, n_second, reload=reload)
    whole = diff_tables(_copied_whole(a), _copied_whole(b))
    assert diff_states(a, b).as_dict() == whole.as_dict()
    assert diff_states(b, a, ["pod", "task"]).as_dict() == diff_tables(
        _copied_whole(b, ("pod", "task")), _copied_whole(a, ("pod", "task"))).as_dict()
    assert (n_first == n_second) is whole.empty is diff_states(a, b).empty


def test_diff_states_decodes_only_what_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entity both states hold with the same bytes at rest is not decompressed, let alone
    decoded: the same state against itself decodes nothing."""
    from kmevents.replay.diffing import diff_states

    from kmevents.reducer import packed

    monkeypatch.setattr(packed, "TRAIN_AT", 64)
    a, b = _states(2000, 2000, reload=True)
    assert type(a.pods) is packed.PackedTable and a.pods.codec is not None
    calls: list[int] = []

    def count_decompressions(*states: object) -> None:
        for st in states:
            for t in st._tables.values():  # type: ignore[attr-defined]
                codec = getattr(t, "codec", None)
                if codec is not None:
                    real = codec.decompress
                    codec.decompress = lambda data, real=real, **kw: calls.append(1) or real(data, **kw)

    count_decompressions(a, b)
    assert diff_states(a, b).empty and calls == []
    a2, b2 = _states(1000, 2000, reload=True)
    count_decompressions(a2, b2)
    d = diff_states(a2, b2)
    changed = sum(len(v) for v in d.changed.values()) + sum(len(v) for v in d.added.values())
    assert 0 < len(calls) <= 4 * (changed + sum(len(v) for v in d.removed.values())) + 2 * a2.count("pod")
