"""Properties of the fold over generated streams (hypothesis).

Streams come from tests/unit/reducer/streams.py, which composes the shared
strategies of tests/strategies.py (task lifecycles + random events of every type).
"""

from __future__ import annotations

import copy
import types

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kmevents.reducer as reducer
from kmevents.reducer import REDUCER_VERSION, ClusterState, SnapshotError, apply, fold
from kmevents.reducer.handlers_mesos import ALLOCATED
from kmevents.reducer.resources import add_flat, flatten
from kmevents.reducer.snapshot import FORMAT_1, FORMAT_3, dump, snapshot_entities
from tests.strategies import event_streams
from tests.unit.reducer.streams import entities, mixed_streams

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _fresh(evs: list[dict]) -> list[dict]:
    """Events as a consumer sees them: decoded anew from bytes."""
    return [orjson.loads(orjson.dumps(e)) for e in evs]


@SETTINGS
@given(mixed_streams(), st.data())
def test_fold_all_equals_fold_suffix_from_snapshot_of_prefix(evs: list[dict], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(evs)))
    whole, anns_all = fold(_fresh(evs), cluster="prod-1")
    head, anns_head = fold(_fresh(evs[:cut]), cluster="prod-1")
    resumed = ClusterState.from_snapshot(head.to_snapshot(chain_hash="h"))
    resumed, anns_tail = fold(_fresh(evs[cut:]), state=resumed)
    assert resumed.to_snapshot("h") == whole.to_snapshot("h")
    assert [a["kind"] for a in anns_head + anns_tail] == [a["kind"] for a in anns_all]


@SETTINGS
@given(mixed_streams())
def test_applying_a_prefix_twice_equals_applying_it_once(evs: list[dict]) -> None:
    # within the dedupe window (the streams are far shorter than Retention.dedupe_window)
    once, _ = fold(_fresh(evs), cluster="prod-1")
    twice, _ = fold(_fresh(evs), state=copy.deepcopy(ClusterState.from_snapshot(once.to_snapshot())))
    assert entities(twice) == entities(once)


@SETTINGS
@given(mixed_streams())
def test_snapshot_loads_back_exactly(evs: list[dict]) -> None:
    state, _ = fold(_fresh(evs), cluster="prod-1")
    data = state.to_snapshot(chain_hash="abc")
    again = ClusterState.from_snapshot(data)
    assert again.to_snapshot(chain_hash="abc") == data
    # format 3 (test_snapshot_format.py: format 4 loads to the same state), line by line
    data = dump(state, "abc", format=FORMAT_3)
    assert dump(again, "abc", format=FORMAT_3) == data
    head, *lines = data.split(b"\n")
    doc = orjson.loads(head)
    assert doc["reducer_version"] == REDUCER_VERSION and doc["chain_hash"] == "abc"
    assert doc["offset"] == len(evs) - 1 and doc["cluster"] == "prod-1"
    assert head == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    # one line per entity, [kind, id] in order, then the entity's canonical bytes
    assert lines.pop() == b"" and len(lines) == sum(doc["counts"].values())
    keys = [orjson.loads(line.split(b"\t", 1)[0]) for line in lines]
    assert keys == sorted(keys)
    for line in lines:
        value = line.split(b"\t", 1)[1]
        assert value == orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)
    # the single-document format written before (format 1) loads to the same state
    legacy = {k: v for k, v in doc.items() if k != "counts"}
    legacy.update(format=FORMAT_1, entities=snapshot_entities(data))
    old = ClusterState.from_snapshot(orjson.dumps(legacy, option=orjson.OPT_SORT_KEYS))
    assert dump(old, "abc", format=FORMAT_3) == data


@SETTINGS
@given(mixed_streams())
def test_reading_between_events_does_not_change_the_fold(evs: list[dict]) -> None:
    at_end, _ = fold(_fresh(evs), cluster="prod-1")
    watched = ClusterState.empty("prod-1")
    for e in _fresh(evs):
        apply(watched, e)
        watched.take_dirty()
    assert watched.to_snapshot() == at_end.to_snapshot()


def _sum(parts: list[dict]) -> dict:
    out: dict = {}
    for summ in parts:
        for role, amts in summ.items():
            add_flat(out.setdefault(role, {}), amts, 1.0)
    return {r: d for r, d in out.items() if d}


@SETTINGS
@given(mixed_streams())
def test_resource_accounting_invariant_holds_on_generated_streams(evs: list[dict]) -> None:
    state, _ = fold(_fresh(evs), cluster="prod-1")
    tasks = [t for _, t in state.entities("task")]
    offers = [o for _, o in state.entities("offer") if o["status"] == "outstanding"]
    for aid, agent in state.entities("agent"):
        alloc = _sum([t["resources"] for t in tasks if t["agent_id"] == aid and t["state"] in ALLOCATED])
        offered = _sum([o["resources"] for o in offers if o["agent_id"] == aid])
        assert agent["allocated_by_role"] == alloc and agent["allocated"] == flatten(alloc)
        assert agent["offered_by_role"] == offered and agent["offered"] == flatten(offered)
    all_alloc = _sum([t["resources"] for t in tasks if t["state"] in ALLOCATED and t["agent_id"]])
    all_offered = _sum([o["resources"] for o in offers])
    for name, role in state.entities("role"):
        assert role["allocated"] == all_alloc.get(name, {})
        assert role["offered"] == all_offered.get(name, {})


@SETTINGS
@given(mixed_streams())
def test_rc_and_service_memberships_match_a_recount(evs: list[dict]) -> None:
    state, _ = fold(_fresh(evs), cluster="prod-1")
    pods = [p for _, p in state.entities("pod") if p["deleted"] is None]

    def match(sel: dict, p: dict) -> bool:
        return bool(sel) and all(p["labels"].get(k) == v for k, v in sel.items())

    for _, rc in state.entities("rc"):
        mine = [p for p in pods if p["namespace"] == rc["namespace"] and match(rc["selector"], p)]
        assert rc["observed_replicas"] == sum(p["phase"] == "Running" for p in mine)
        assert rc["matching_not_running"] == sum(p["phase"] != "Running" for p in mine)
    for _, svc in state.entities("service"):
        assert svc["endpoints_derived"] == sorted(
            p["id"] for p in pods
            if p["namespace"] == svc["namespace"] and p["ready"] and match(svc["selector"], p))


def _mutations(e: dict) -> list[dict]:
    """Damaged copies of an event: a payload field removed or given a wrong type."""
    out = []
    pl = e["payload"]
    for k in pl:
        out.append(dict(e, payload={kk: v for kk, v in pl.items() if kk != k}))
        out.append(dict(e, payload={**pl, k: 12345}))
        if isinstance(pl[k], dict):
            for k2 in pl[k]:
                out.append(dict(e, payload={**pl, k: {**pl[k], k2: [1]}}))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(event_streams(cluster="prod-1", max_size=15))
def test_malformed_payloads_never_crash_and_change_nothing_when_annotated(evs: list[dict]) -> None:
    state, _ = fold(_fresh(evs[:-1]), cluster="prod-1")
    base = state.to_snapshot()
    for bad in _mutations(evs[-1]):
        trial = ClusterState.from_snapshot(base)
        anns = apply(trial, orjson.loads(orjson.dumps(bad)))
        if any(a["kind"] == "malformed" for a in anns):
            assert entities(trial) == snapshot_entities(base)


def test_snapshot_of_another_reducer_version_is_refused() -> None:
    data = ClusterState.empty("c1").to_snapshot()
    doc = orjson.loads(data[:data.index(b"\n")])
    doc["reducer_version"] = REDUCER_VERSION + 1
    with pytest.raises(SnapshotError, match="reducer version"):
        ClusterState.from_snapshot(orjson.dumps(doc) + b"\n")
    with pytest.raises(SnapshotError):
        ClusterState.from_snapshot(b"not json")


def test_public_api_is_curated() -> None:
    # every public name but the submodules (which of them are attributes depends on what was
    # imported before this test) and the ``annotations`` future
    public = [n for n in dir(reducer) if not n.startswith("_") and n != "annotations"
              and not isinstance(getattr(reducer, n), types.ModuleType)]
    assert sorted(reducer.__all__) == sorted(public)
    for name in ("REDUCER_VERSION", "ClusterState", "apply", "fold", "Annotation", "Retention"):
        assert name in reducer.__all__
