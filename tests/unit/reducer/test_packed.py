"""Packed entity tables (kmevents/reducer/packed.py): pods and tasks rest as canonical bytes.

The fold must not see the difference: a state whose tables are packed after every event
folds to the same bytes as one whose tables are never packed (plain dicts, the reducer
before issue 17)."""

from __future__ import annotations

import sys

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

import kmevents.reducer.packed as packed_module
from kmevents.reducer import ClusterState, apply
from kmevents.reducer.conditions import condition
from kmevents.reducer.packed import PACKED_KINDS, PackedTable, pack, packed_bytes, raw_items
from kmevents.reducer.snapshot import FORMAT_3, dump
from kmevents.simulate import generate
from tests.unit.reducer.streams import mixed_streams

_SORT = orjson.OPT_SORT_KEYS


def _unpacked(cluster: str) -> ClusterState:
    """A state with plain-dict pod and task tables: what the fold was before packing."""
    st = ClusterState.empty(cluster)
    st.pods = st._tables["pod"] = {}
    st.tasks = st._tables["task"] = {}
    st.services = st._tables["service"] = {}
    st.agents = st._tables["agent"] = {}
    st.nodes = st._tables["node"] = {}
    st.executors = st._tables["executor"] = {}
    assert not any(type(t) is PackedTable for t in st._tables.values())
    return st


def _packing_every_event(st: ClusterState, evs: list[dict]) -> ClusterState:
    for e in evs:
        apply(st, e)
        for t in st._tables.values():
            pack(t)
    return st


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_streams())
def test_packing_after_every_event_folds_to_what_plain_dicts_fold_to(evs: list[dict]) -> None:
    _same_fold(evs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_streams())
def test_compressing_from_the_fourth_entity_on_folds_to_what_plain_dicts_fold_to(evs: list[dict]) -> None:
    saved = packed_module.TRAIN_AT
    packed_module.TRAIN_AT = 4  # most tries fail (too few samples) and are retried at twice the size
    try:
        _same_fold(evs)
    finally:
        packed_module.TRAIN_AT = saved


def _same_fold(evs: list[dict]) -> None:
    fresh = lambda: orjson.loads(orjson.dumps(evs))  # noqa: E731  (the state may keep event parts)
    plain = _unpacked("t1")
    for e in fresh():
        apply(plain, e)
    packed = _packing_every_event(ClusterState.empty("t1"), fresh())
    assert _canonical(packed) == _canonical(plain)
    assert packed.take_dirty() == plain.take_dirty()
    again = ClusterState.from_snapshot(packed.to_snapshot())
    assert _canonical(again) == _canonical(plain)
    _conditions_are_the_values(packed, plain)
    _conditions_are_the_values(again, plain)


def _canonical(st: ClusterState) -> bytes:
    """The state's canonical bytes: snapshot format 3 (format 4 holds a packed table's values
    as they rest, compressed, so a plain-dict state's differs from a packed one's)."""
    return dump(st, format=FORMAT_3)


def _conditions_are_the_values(st: ClusterState, plain: ClusterState) -> None:
    """Every kind's conditions, as the state knows them, are those of its values now."""
    for kind in st._tables:
        assert dict(st.conditions(kind)) == {i: condition(v) for i, v in plain.entities(kind)}, kind


def test_a_simulated_cluster_folds_the_same_packed_and_plain_and_rests_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "TRAIN_AT", 200)  # the default profile stays under 1,000 tasks
    evs = list(generate("sim", 11, 6000))
    plain = _unpacked("sim")
    packed = ClusterState.empty("sim")
    for e, f in zip(orjson.loads(orjson.dumps(evs)), orjson.loads(orjson.dumps(evs)), strict=True):
        apply(plain, e)
        apply(packed, f)
        assert packed.take_dirty() == plain.take_dirty()
    assert _canonical(packed) == _canonical(plain)
    # after a snapshot everything rests packed: the bytes etcd would hold, allocated tightly
    assert packed.pods.hot_count == 0 and len(packed.pods) > 100
    assert packed.tasks.codec is not None and packed.pods.codec is not None  # trained: > TRAIN_AT each
    rest = canonical = 0
    for id, v in dict.items(packed.tasks):
        assert type(v) is bytes and sys.getsizeof(v) - len(v) < 64
        assert packed.entity_bytes("task", id) == orjson.dumps(plain.tasks[id], option=_SORT)
        rest, canonical = rest + len(v), canonical + len(packed.entity_bytes("task", id) or b"")
    assert rest * 3 < canonical, (rest, canonical)  # the dictionary pays


def test_the_packed_kinds_are_the_states_packed_tables() -> None:
    st = ClusterState.empty("k")
    assert {k for k, t in st._tables.items() if type(t) is PackedTable} == PACKED_KINDS
    assert {"pod", "task"} <= PACKED_KINDS


def test_a_read_keeps_the_dict_until_packed_and_the_fold_mutates_it_in_place() -> None:
    t = PackedTable({"a": {"n": 1, "l": [1]}})
    pack(t)
    assert type(dict.__getitem__(t, "a")) is bytes and t.hot_count == 0
    v = t["a"]
    v["n"] = 2
    assert t["a"] is v and t.get("a") is v and t.hot_count == 1
    assert pack(t) == 1 and dict.__getitem__(t, "a") == b'{"l":[1],"n":2}'
    assert t.get("missing") is None and t.get("missing", 7) == 7 and "a" in t and len(t) == 1


def test_readers_decode_without_keeping() -> None:
    t = PackedTable({"a": {"x": 1}, "b": {"x": 2}})
    pack(t)
    assert dict(t.items()) == {"a": {"x": 1}, "b": {"x": 2}} and list(t.values()) == [{"x": 1}, {"x": 2}]
    assert dict(raw_items(t))["b"] == {"x": 2}
    assert packed_bytes(t, "a") == b'{"x":1}' and packed_bytes(t, "zz") is None
    assert t.hot_count == 0 and all(type(v) is bytes for v in dict.values(t))
    frozen = PackedTable(dict.items(t), keep=False)
    frozen["a"]["x"] = 99  # a read-only table hands out a fresh copy each time
    assert frozen["a"] == {"x": 1} and frozen.hot_count == 0


def test_a_reader_outside_the_fold_leaves_a_resting_entity_at_rest() -> None:
    # the worker reads every changed entity after its batch (touched-entity index); read through
    # entity(), a resting pod became hot and the next pack encoded and compressed it again
    st = ClusterState.empty("c1")
    for i, ev in enumerate(generate("c1", 3, 1500, agents=4)):
        apply(st, ev, partition=0, offset=i)
    pack(st.pods)
    pid = next(iter(dict.keys(st.pods)))
    assert st.pods.hot_count == 0 and type(dict.get(st.pods, pid)) is bytes
    assert st.entity_read("pod", pid) == orjson.loads(st.entity_bytes("pod", pid) or b"null")
    assert st.pods.hot_count == 0 and type(dict.get(st.pods, pid)) is bytes
    assert st.entity_read("pod", "no/such") is None
    st.entity("pod", pid)  # the fold's read keeps it, to be mutated in place
    assert st.pods.hot_count == 1


def test_a_tables_conditions_follow_its_values_and_are_read_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from kmevents.reducer.packed import conditions

    t = PackedTable({"a": {"phase": "Pending"}, "b": {"state": "TASK_RUNNING"}})
    pack(t)
    t["a"]["phase"] = "Running"  # mutated in place while hot: the dict says, not the note
    assert dict(conditions(t)) == {"a": "Running", "b": "TASK_RUNNING"}
    pack(t)
    t.put_many([("c", b'{"deleted":"2024-01-01"}')])  # bytes without a condition: decoded once
    t["b"] = b'{"state":"TASK_FAILED"}'  # a write replaces the note
    decoded: list[bytes] = []
    real = PackedTable._decode
    monkeypatch.setattr(PackedTable, "_decode", lambda self, v: decoded.append(v) or real(self, v))
    assert dict(conditions(t)) == {"a": "Running", "b": "TASK_FAILED", "c": "Deleted"}
    assert len(decoded) == 2
    assert dict(conditions(t)) == {"a": "Running", "b": "TASK_FAILED", "c": "Deleted"} and len(decoded) == 2
    t.put_many([("d", b'{"phase":"Failed"}')], ["Failed"])  # a snapshot line names it: never decoded
    del t["a"]
    assert dict(conditions(t)) == {"b": "TASK_FAILED", "c": "Deleted", "d": "Failed"} and len(decoded) == 2
    tables = [PackedTable([(str(i), {"phase": "".join(["Run", "ning"])})]) for i in range(2)]
    for x in tables:
        pack(x)
    a, b = (dict(conditions(x))[str(i)] for i, x in enumerate(tables))
    assert a == b == "Running" and a is b  # one object per name, however many values note it


def test_the_ids_in_one_condition_are_read_off_the_notes_in_the_tables_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ids_in``: what a load's outstanding-offer index is rebuilt from (aggregates.rebuild)."""
    from kmevents.reducer.packed import NEVER, ids_in, restore

    ids = [f"o{i:03}" for i in range(200)]
    values = [orjson.dumps({"status": "outstanding" if i % 50 == 7 else "expired"}) for i in range(200)]
    lazy = PackedTable()
    restore(lazy, ids, values, [orjson.loads(v)["status"] for v in values], None, NEVER)
    lazy.put_many([("n1", b'{"status":"outstanding"}')])  # a value whose condition is not noted
    lazy["h1"] = {"status": "outstanding"}  # a hot one: its dict says
    lazy.get("o057")["status"] = "accepted"  # read (kept) and changed: no longer outstanding
    decoded: list[bytes] = []
    real = PackedTable._decode
    monkeypatch.setattr(PackedTable, "_decode", lambda self, v: decoded.append(v) or real(self, v))
    want = [k for k, v in lazy.items() if v["status"] == "outstanding"]
    decoded.clear()
    assert ids_in(lazy, "outstanding") == want == ["o007", "o107", "o157", "n1", "h1"]
    assert decoded == [b'{"status":"outstanding"}'], "only the value of unknown condition"
    assert ids_in(lazy, "expired") == [k for k, v in lazy.items() if v["status"] == "expired"]  # the usual one
    assert ids_in(lazy, "rescinded") == []
    assert ids_in({"a": {"status": "outstanding"}, "b": {"status": "expired"}}, "outstanding") == ["a"]


def test_writes_pops_and_deletes_keep_the_hot_set_true() -> None:
    t = PackedTable()
    t["a"] = {"x": 1}
    assert t.setdefault("a", None) == {"x": 1} and t.setdefault("b", {"y": 1}) == {"y": 1}
    t.update({"c": {"z": 0}})
    assert t.hot_count == 3
    pack(t)
    assert t.pop("a") == {"x": 1} and t.pop("a", None) is None
    del t["b"]
    t["c"]["z"] = 5  # hot again, then gone
    t.pop("c")
    assert t.hot_count == 0 and len(t) == 0 and pack(t) == 0
    assert pack({"plain": {}}) == 0  # other tables are left as they are


def test_a_fork_shares_the_parents_bytes_and_never_changes_them() -> None:
    evs = list(generate("f1", 3, 2000))
    parent = ClusterState.empty("f1")
    for e in evs[:1500]:
        apply(parent, e)
    before = parent.to_snapshot()
    child = parent.fork()
    some = next(iter(dict.keys(child.pods)))
    assert dict.__getitem__(child.pods, some) is dict.__getitem__(parent.pods, some)  # shared, not copied
    for e in evs[1500:]:
        apply(child, e)
    child.entity("pod", some)["phase"] = "Scribbled"  # even a reader's mutation stays in the child
    assert parent.to_snapshot() == before


def test_counts_by_condition_come_from_the_notes_or_the_values_alike() -> None:
    from collections import Counter

    from kmevents.reducer.packed import condition_counts

    t = PackedTable({"a": {"phase": "Running"}, "b": {"phase": "Running"}, "c": {"deleted": "x"}})
    assert condition_counts(t) == Counter({"Running": 2, "Deleted": 1})  # hot: from the dicts
    pack(t)
    assert t.notes.complete(3) and condition_counts(t) == Counter({"Running": 2, "Deleted": 1})
    t.put_many([("d", b'{"phase":"Failed"}')])  # one without a note: every value asked
    assert condition_counts(t) == Counter({"Running": 2, "Deleted": 1, "Failed": 1})
    assert condition_counts({"x": {"status": "active"}}) == Counter({"active": 1})


def test_notes_keep_by_id_only_the_conditions_other_than_the_usual_one() -> None:
    from collections import Counter

    from kmevents.reducer.packed import Notes, condition_counts

    n = Notes()
    assert n.get("a") is None and n.complete(0) and n.counts(0) == Counter()
    for i in range(10):
        n.note(f"p{i}", "Pending")
    assert n.usual == "Pending" and len(n) == 0 and n.get("p3") == "Pending"
    ids = [f"p{i}" for i in range(10)]
    for i in range(7):
        n.note(f"p{i}", "Running")
    assert len(n) == 7 and n.counts(10) == Counter({"Running": 7, "Pending": 3})
    n.settle(ids, 10)  # more stand in Running now: it becomes the usual one
    assert n.usual == "Running" and len(n) == 3 and n.get("p8") == "Pending" and n.get("p1") == "Running"
    assert n.counts(10) == Counter({"Running": 7, "Pending": 3})
    n.forget("p1")  # changed: not known until noted again
    assert n.get("p1") is None and not n.complete(10) and n.counts(10) is None
    n.drop("p1")  # gone from the table
    assert n.complete(9) and n.counts(9) == Counter({"Running": 6, "Pending": 3})
    c = n.copy()
    c.note("p0", "Failed")
    assert n.get("p0") == "Running" and c.get("p0") == "Failed"
    r = Notes()
    r.restore(["a", "b", "c"], ["Deleted", "Running", "Running"])
    assert r.usual == "Running" and len(r) == 1 and r.counts(3) == Counter({"Running": 2, "Deleted": 1})
    # through a table: the counts follow packs, removals and values stored without a condition
    t = PackedTable({f"p{i}": {"phase": "Pending"} for i in range(50)})
    pack(t)
    for i in range(40):
        t[f"p{i}"]["phase"] = "Running"
    pack(t)
    assert t.notes.usual == "Running" and len(t.notes) == 10
    del t["p0"]
    t.pop("p45")
    assert condition_counts(t) == Counter({"Running": 39, "Pending": 9})
    t["p1"] = b'{"phase":"Failed"}'
    assert not t.notes.complete(48) and condition_counts(t) == Counter({"Running": 38, "Pending": 9, "Failed": 1})
    assert t.notes.complete(48)  # (counting noted it)


def test_a_plain_fork_rests_what_it_packs_uncompressed_and_folds_to_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "TRAIN_AT", 200)  # trained in the parent, as at any real size
    evs = list(generate("p1", 5, 5000))
    parent = ClusterState.empty("p1")
    for e in orjson.loads(orjson.dumps(evs[:3500])):
        apply(parent, e)
    parent.freeze()
    assert parent.tasks.codec is not None and parent.pods.codec is not None
    before = parent.to_snapshot()
    framed, plain = parent.fork(), parent.fork(plain=True)
    assert framed.pods.frames and not plain.pods.frames
    for st in (framed, plain):
        for e in orjson.loads(orjson.dumps(evs[3500:])):
            apply(st, e)
        st.freeze()
    # the same state to every reader, whatever form its values rest in
    assert plain.to_snapshot() == framed.to_snapshot()
    assert _canonical(plain) == _canonical(framed)
    assert parent.to_snapshot() == before, "neither fork changed the parent"
    changed = [k for k, v in dict.items(plain.pods) if v is not dict.get(parent.pods, k)]
    assert len(changed) > 50
    for k in changed:
        rest, framed_rest = dict.__getitem__(plain.pods, k), dict.__getitem__(framed.pods, k)
        assert rest[0] == ord("{") and rest == plain.entity_bytes("pod", k), "a plain fork's change rests as canonical bytes"
        assert framed_rest[0] != ord("{"), "a fork compresses what it packs by default"
        assert plain.entity_bytes("pod", k) == framed.entity_bytes("pod", k)
    # what a plain fork's values rest as stays so in its own forks, and they fold on alike
    again = plain.fork()
    assert not again.pods.frames and not again.tasks.frames
    more = list(generate("p1", 5, 5600))[5000:]
    other = framed.fork()
    for st in (again, other):
        for e in orjson.loads(orjson.dumps(more)):
            apply(st, e)
    assert again.to_snapshot() == other.to_snapshot()
