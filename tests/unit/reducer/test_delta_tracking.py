"""The membership indexes' and retention orders' changes a delta holds, from what the fold noted as
it changed them (kmevents/reducer/tracking.py), are what comparing them whole with copies taken
at the base gives (:func:`_index_changes` here, ``delta._order_changes``: the oracle), byte for
byte, at any points of any stream; a place of the fold that changes one without noting it
makes the delta differ from the oracle here."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmevents.reducer import ClusterState, Retention, apply
from kmevents.reducer.delta import (
    FORMAT_2,
    _order_changes,
    _set_change,
    apply_delta,
    delta_document,
    dump_delta,
)
from kmevents.reducer.retention import prune_by_age
from kmevents.reducer.tracking import INDEXES
from tests.unit.reducer.streams import Log, mixed_streams

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
_SORT = orjson.OPT_SORT_KEYS

_NS = ("a", "b")
_LABELS = st.sampled_from([{"app": "x"}, {"app": "x"}, {"app": "y"}, {"app": "x", "tier": "f"}, {}])
_SELECTORS = st.sampled_from([{"app": "x"}, {"app": "y"}, {"tier": "f"}, {}])
_TASK_STATES = st.sampled_from(["TASK_RUNNING", "TASK_LOST", "TASK_FINISHED", "TASK_FAILED"])
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def _index_changes(base: dict[str, Any], now: dict[str, Any], *, pair: bool) -> dict[str, Any]:
    """``{key: [added, removed] | None}`` of the keys whose set differs from the base's (None:
    the key is gone; ``pair``: the values are two sets, an RC's running and other pods, and a
    change is ``[[added, removed], [added, removed]]``). ``now`` is read through its storage
    (a fork's lazy table would copy every value). The whole comparison with a copy of the base's
    index, as deltas were made before tracking.py: the oracle of ``tracking.index_changes``."""
    out: dict[str, Any] = {}
    for key, cur in dict.items(now):
        was: Any = base.get(key)
        if was is None:
            was = (set(), set()) if pair else set()
        elif cur == was:
            continue
        out[key] = [_set_change(c, w) for c, w in zip(cur, was, strict=True)] if pair else _set_change(cur, was)
    for key in base:
        if not dict.__contains__(now, key):
            out[key] = None
    return out


@st.composite
def k8s_churn(draw: Any, *, max_size: int = 60) -> list[Call]:
    """Pods joining, moving in and leaving few namespaces, RCs and services (their labels, phase,
    readiness, deletion, a new uid under the same name), RCs and services created, re-selected
    and deleted; tasks first seen without their framework (then rekeyed), lost, running again
    and ended: as calls of ``Log`` to make, so that their times follow the stream's."""
    out: list[Call] = []
    for n in range(draw(st.integers(0, max_size))):
        ns, name = draw(st.sampled_from(_NS)), f"n{draw(st.integers(0, 3))}"
        what = draw(st.sampled_from(["pod"] * 6 + ["pod_deleted", "rc", "service", "deleted", "task", "task"]))
        if what == "pod":
            out.append(("pod", (ns, name, draw(st.sampled_from(["u0", "u0", "u0", "u1"])), draw(_LABELS),
                                draw(st.sampled_from(["Running", "Pending"])), draw(st.booleans())), {}))
        elif what == "pod_deleted":
            out.append(("pod_deleted", (ns, name, draw(st.sampled_from(["u0", "u0", "u1"]))), {}))
        elif what in ("rc", "service"):
            out.append((what, (ns, f"s{draw(st.integers(0, 2))}", draw(_SELECTORS)), {}))
        elif what == "deleted":
            kind = draw(st.sampled_from(["replication_controller", "service"]))
            out.append(("ev", (f"{kind}.deleted", {"namespace": ns, "name": f"s{draw(st.integers(0, 2))}"}), {}))
        else:  # a status without framework makes -/t (a task.added of its framework rekeys it)
            tid, state = f"t{draw(st.integers(0, 3))}", draw(_TASK_STATES)
            if draw(st.booleans()):
                out.append(("status", (tid, state), {"uuid": f"x{n}"}))
            else:
                out.append(("added", (tid, "a1", state), {}))
    return out


def _churn_events(calls: list[Call]) -> list[dict[str, Any]]:
    log = Log("prod-1")
    return [getattr(log, what)(*args, **kw) for what, args, kw in calls]


@st.composite
def streams(draw: Any) -> list[dict[str, Any]]:
    """k8s and task churn interleaved with mixed_streams (agents removed and back, offers closed
    ...), one cluster, in the order drawn."""
    a, b = _churn_events(draw(k8s_churn())), draw(mixed_streams())
    out: list[dict[str, Any]] = []
    while a or b:
        src = a if a and (not b or draw(st.booleans())) else b
        out.append(src.pop(0))
    return out


def _copies(s: ClusterState) -> dict[str, Any]:
    """What ``mark_base`` copied before the fold noted its changes: the oracle's base."""
    return {"pods_by_ns": {ns: set(ids) for ns, ids in dict.items(s._pods_by_ns)},
            "rc_members": {rid: (set(run), set(other)) for rid, (run, other) in dict.items(s._rc_members)},
            "svc_members": {sid: set(ids) for sid, ids in dict.items(s._svc_members)},
            "terminal": {kind: dict(dict.items(idx)) for kind, idx in dict.items(s._terminal)}}


def _oracle(s: ClusterState, base: dict[str, Any]) -> dict[str, Any]:
    return {"terminal_changes": {k: _order_changes(base["terminal"].get(k, {}), idx)
                                 for k, idx in dict.items(s._terminal)},
            "index_changes": {name: _index_changes(base[name], getattr(s, "_" + name), pair=name == "rc_members")
                              for name in INDEXES}}


def _tracked(s: ClusterState) -> dict[str, Any]:
    doc = delta_document(s, "h", format=FORMAT_2)
    return {"terminal_changes": doc["terminal_changes"], "index_changes": doc["index_changes"]}


@SETTINGS
@given(streams(), st.data())
def test_the_changes_noted_are_the_whole_comparisons_at_any_points_of_any_stream(evs: list[dict[str, Any]],
                                                                                data: st.DataObject) -> None:
    # tight limits: every retention order pops its oldest often; an age to prune by at will
    retention = Retention(max_terminal_tasks=2, max_closed_offers=2, max_removed_agents=1, max_deleted_pods=2,
                          max_terminal_other=1, max_age_seconds=0.05)
    s = ClusterState.empty("prod-1", retention)
    base: dict[str, Any] | None = None
    checked = 0
    for e in copy.deepcopy(evs):
        apply(s, e)
        act = data.draw(st.sampled_from(["", "", "", "", "base", "delta", "delta", "prune", "fork"]))
        if act == "base":
            s.take_dirty()
            base = _copies(s)
            s.mark_base()
        elif act == "prune":
            prune_by_age(s)  # (the fold does every AGE_CHECK_EVERY events)
        elif act == "fork":  # a fork tracks nothing; its own base, later, tracks on its lazy tables
            s, base = s.fork(), None
        elif act == "delta" and base is not None:
            assert orjson.dumps(_tracked(s), option=_SORT) == orjson.dumps(_oracle(s, base), option=_SORT)
            checked += 1
    if base is not None:
        assert orjson.dumps(_tracked(s), option=_SORT) == orjson.dumps(_oracle(s, base), option=_SORT)


def _pods(log: Log, n: int, ns: str = "a", labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [log.pod(ns, f"p{i}", "u", labels or {"app": "x"}) for i in range(n)]


def test_a_base_copies_no_index_and_a_delta_reads_only_the_keys_changed() -> None:
    log = Log("prod-1")
    s = ClusterState.empty("prod-1")
    for e in [log.rc("a", "r", {"app": "x"}), log.service("a", "v", {"app": "x"}), *_pods(log, 50),
              log.rc("b", "q", {"app": "y"}), *_pods(log, 20, "b", {"app": "y"})]:
        apply(s, e)
    s.take_dirty()
    s.mark_base()
    track = s._base.track  # type: ignore[union-attr]
    assert all(not v for v in track.was.values()) and all(not v for v in track.whole.values())
    apply(s, log.pod("a", "p3", "u", {"app": "x"}, phase="Pending", ready=False))
    # one pod moved: noted under its RC and service; its namespace and b's untouched
    assert track.was == {"pods_by_ns": {}, "svc_members": {"a/v": {"a/p3": True}},
                         "rc_members": {"a/r": {"a/p3": (True, False)}}}
    doc = delta_document(s, "h", format=FORMAT_2)
    assert doc["index_changes"] == {"pods_by_ns": {}, "svc_members": {"a/v": [[], ["a/p3"]]},
                                    "rc_members": {"a/r": [[[], ["a/p3"]], [["a/p3"], []]]}}


def test_a_pod_that_leaves_and_comes_back_is_no_change() -> None:
    log = Log("prod-1")
    s = ClusterState.empty("prod-1")
    for e in [log.rc("a", "r", {"app": "x"}), *_pods(log, 3)]:
        apply(s, e)
    s.mark_base()
    apply(s, log.pod_deleted("a", "p1", "u"))
    apply(s, log.pod("a", "p1", "u2", {"app": "x"}))
    doc = delta_document(s, "h", format=FORMAT_2)
    assert doc["index_changes"] == {"pods_by_ns": {}, "svc_members": {}, "rc_members": {}}


@pytest.mark.parametrize("again", [False, True])
def test_an_order_whose_base_entry_comes_back_is_compared_whole_with_the_base_rebuilt(again: bool) -> None:
    # t1 and t2 finish before the base; then t1 is lost (out of the order), runs and is lost again
    # (at the end): not base minus drops plus a tail, so whole, as the oracle says
    log = Log("prod-1")
    s = ClusterState.empty("prod-1")
    evs = [log.agent_added("a1"), log.launched("t1", "a1"), log.launched("t2", "a1"), log.launched("t3", "a1"),
           log.status("t1", "TASK_LOST"), log.status("t2", "TASK_LOST"), log.status("t3", "TASK_LOST")]
    for e in evs:
        apply(s, e)
    base = _copies(s)
    s.mark_base()
    for e in [log.status("t2", "TASK_RUNNING", uuid="u1"), *([log.status("t2", "TASK_LOST", uuid="u2")] if again else [])]:
        apply(s, e)
    assert orjson.dumps(_tracked(s), option=_SORT) == orjson.dumps(_oracle(s, base), option=_SORT)
    assert ("whole" in _tracked(s)["terminal_changes"]["task"]) is again


def test_deltas_from_the_notes_still_apply_to_their_base_exactly() -> None:
    log = Log("prod-1")
    s = ClusterState.empty("prod-1", Retention(max_deleted_pods=3))
    for e in [log.rc("a", "r", {"app": "x"}), log.service("a", "v", {"app": "x"}), *_pods(log, 8)]:
        apply(s, e)
    snap = s.to_snapshot(chain_hash="b")
    s.mark_base()
    for e in [log.pod_deleted("a", f"p{i}", "u") for i in range(6)] + [log.rc("a", "r", {"app": "y"}),
                                                                       log.pod("b", "q", "u", {"app": "y"})]:
        apply(s, e)
    rebuilt = apply_delta(ClusterState.from_snapshot(snap), dump_delta(s, "d"))
    assert rebuilt.to_snapshot(chain_hash="d") == s.to_snapshot(chain_hash="d")


@pytest.mark.parametrize("running_again", [False, True])
def test_a_task_rekeyed_after_the_base_leaves_the_order_and_comes_back_at_its_end(running_again: bool) -> None:
    # -/t0 (lost, its framework not known) is in the base's order; its framework's task.added moves
    # it to fw/t0 at the end; running again takes fw/t0 out of the order
    log = Log("prod-1")
    s = ClusterState.empty("prod-1")
    for e in [log.status("t9", "TASK_LOST", uuid="x0"), log.status("t0", "TASK_LOST", uuid="x1")]:
        apply(s, e)
    base = _copies(s)
    s.mark_base()
    for e in [log.added("t0", "a1", "TASK_LOST"),
              *([log.status("t0", "TASK_RUNNING", uuid="x2")] if running_again else [])]:
        apply(s, e)
    assert list(s._terminal["task"]) == ["-/t9"] + ([] if running_again else ["fw/t0"])
    assert orjson.dumps(_tracked(s), option=_SORT) == orjson.dumps(_oracle(s, base), option=_SORT)


@pytest.mark.parametrize("where", [0, 1, 3])
def test_an_order_entry_changed_in_place_is_compared_whole_with_the_base_order(where: int) -> None:
    from kmevents.reducer.tracking import OrderLog, order_changes

    order = {f"i{n}": f"t{n}" for n in range(4)}
    base = dict(order)
    log = OrderLog(len(order))
    log.removing(order, "i0", front=True)
    del order["i0"]
    log.adding("i9")
    order["i9"] = "t9"
    key = [*order][where]
    log.changing(order, key)
    order[key] = "new"
    assert order_changes(log, order) == _order_changes(base, order)
