"""snapshot_match.holds: a stored format-6 (or -5) snapshot checked against a state without encoding it.

What it must never do is call equal what verify's slow way (encode the fold, compare bytes,
else load both and compare field by field) calls different; what it should do is call
equal every snapshot the fold's own dump writes (else verify pays the slow way)."""

from __future__ import annotations

import asyncio
import base64
import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kmevents.replay.diffing import field_changes
from kmevents.replay.verify import _check_snapshot

import kmevents.reducer.packed as packed_module
import kmevents.reducer.snapshot as snapshot_module
import kmevents.reducer.snapshot_match as snapshot_match
from kmevents.reducer import ClusterState, SnapshotError, apply, dedupe
from kmevents.reducer.retention import Retention
from kmevents.reducer.snapshot import FORMAT_4, dump, load, snapshot_document
from kmevents.reducer.snapshot_match import Held, holds, match, track_from
from kmevents.simulate import generate
from tests.unit.reducer.streams import mixed_streams
from tests.unit.reducer.test_snapshot_format import DAMAGE, _join, _section, _split
from tests.unit.store.test_snapshot_deltas import InMemory

_SORT = orjson.OPT_SORT_KEYS


def _fold(n: int, cluster: str = "m1", agents: int = 5) -> ClusterState:
    s = ClusterState.empty(cluster)
    for i, e in enumerate(generate(cluster, agents, n)):
        apply(s, e, offset=i)
    s.take_dirty()
    return s


@pytest.fixture
def train_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables train at 100 values (the simulator's small cluster then trains pods and tasks)."""
    monkeypatch.setattr(packed_module, "TRAIN_AT", 100)


@pytest.mark.parametrize("n", [0, 40, 300, 3000])
def test_a_state_holds_in_its_own_dump_and_only_at_its_chain(train_early: None, n: int) -> None:
    s = _fold(n)
    data = dump(s, "c")
    assert holds(s, data, "c")
    assert not holds(s, data, "other")
    assert not holds(s, data, None)
    # a state loaded from it (unpacked kinds in lazy tables) holds too; a deep copy (plain
    # dicts where packed tables were: written untrained) holds in its own dump
    assert holds(load(data), data, "c")
    c = copy.deepcopy(s)
    assert holds(c, dump(c, "c"), "c")


def test_a_state_one_event_on_does_not_hold_in_the_dump_before(train_early: None) -> None:
    evs = list(generate("m1", 5, 1200))
    s = ClusterState.empty("m1")
    checked = 0
    for i, e in enumerate(evs):
        apply(s, e, offset=i)
        if i % 97 == 0:
            s.take_dirty()
            data = dump(s, "c")
            if i + 1 < len(evs):
                later = copy.deepcopy(s)
                apply(later, copy.deepcopy(evs[i + 1]), offset=i + 1)
                assert not holds(later, data, "c")  # its offset moved at least
                checked += 1
            assert holds(s, data, "c")
    assert checked > 10


def test_a_changed_entity_a_changed_index_or_window_is_seen(train_early: None) -> None:
    s = _fold(3000)
    data = dump(s, "c")
    pod = sorted(dict.keys(s.pods))[5]
    for change in ("pod", "index", "window", "terminal", "allocation"):
        t = copy.deepcopy(s)
        if change == "pod":
            value = t.pods[pod]
            value["metadata"] = {**value.get("metadata", {}), "note": "changed"}
            packed_module.pack(t.pods)
        elif change == "index":
            ns = next(iter(t._pods_by_ns))
            t._pods_by_ns[ns] = set(t._pods_by_ns[ns]) - {min(t._pods_by_ns[ns])}
        elif change == "window":
            t._seen_new = set(t._seen_new) | {12345}
        elif change == "terminal":
            t._terminal["pod"] = t._terminal["pod"].__class__(list(t._terminal["pod"].items())[1:])
        else:
            aid = next(iter(t._alloc))
            t._alloc[aid] = {"*": {"cpus": 1234.5}}
        assert not holds(t, data, "c"), change
        assert holds(s, data, "c")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_no_damaged_snapshot_holds(train_early: None, damage: str) -> None:
    s = _fold(3000)
    data = dump(s, "c")
    assert holds(s, _join(*_split(data)), "c")  # the test's own reassembly holds
    broken = DAMAGE[damage][0](*_split(data))
    with pytest.raises(SnapshotError):
        load(broken)
    assert not holds(s, broken, "c")


def test_other_formats_do_not_hold_and_verify_still_finds_them_equal(train_early: None) -> None:
    s = _fold(3000)
    data = dump(s, "c", format=FORMAT_4)
    assert not holds(s, data, "c")
    entry = {"cluster": "m1", "offset": s.offset, "chain": "c", "kind": "full"}
    assert asyncio.run(_check_snapshot(InMemory([entry], {s.offset: data}), entry, s, "c")) == {}


def test_equal_content_in_other_bytes_holds_as_verify_finds_it(train_early: None) -> None:
    """The conditions' names listed in another order: other bytes, the same snapshot."""
    s = _fold(3000)
    head, secs = _split(dump(s, "c"))
    doc = _section(secs, "pod")[0]
    assert len(doc["names"]) > 1
    doc["names"] = doc["names"][::-1]
    doc["conds"] = [len(doc["names"]) - 1 - c for c in doc["conds"]]
    other = _join(head, secs)
    assert other != dump(s, "c")
    assert holds(s, other, "c")
    entry = {"cluster": "m1", "offset": s.offset, "chain": "c", "kind": "full"}
    assert asyncio.run(_check_snapshot(InMemory([entry], {s.offset: other}), entry, s, "c")) == {}


def test_verify_checks_an_equal_format_5_snapshot_without_encoding_the_fold(
        train_early: None, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _fold(3000)
    data = dump(s, "c")
    entry = {"cluster": "m1", "offset": s.offset, "chain": "c", "kind": "full"}

    def no_dump(*a: Any, **k: Any) -> bytes:
        raise AssertionError("verify encoded the fold's state")
    monkeypatch.setattr("kmevents.replay.verify.dump", no_dump)
    assert asyncio.run(_check_snapshot(InMemory([entry], {s.offset: data}), entry, s, "c")) == {}
    monkeypatch.undo()
    wrong = _fold(2990).to_snapshot("c")
    found = asyncio.run(_check_snapshot(InMemory([entry], {s.offset: wrong}), entry, s, "c"))
    assert "content differs" in found[s.offset]


# -- properties --------------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mixed_streams())
def test_any_fold_holds_in_its_own_dump(evs: list[dict[str, Any]]) -> None:
    s = ClusterState.empty("prod-1")
    for e in copy.deepcopy(evs):
        apply(s, e)
    s.take_dirty()
    data = dump(s, "h")
    assert holds(s, data, "h")
    assert holds(load(data), data, "h")


_BASE: dict[str, Any] = {}


def _base() -> tuple[ClusterState, bytes, dict[str, Any]]:
    if not _BASE:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(packed_module, "TRAIN_AT", 100)
            s = _fold(1500)
        data = dump(s, "c")
        _BASE.update(state=s, data=data, doc=snapshot_document(data))
    return _BASE["state"], _BASE["data"], _BASE["doc"]


def _mutate(data: st.DataObject, good: bytes) -> bytes:
    """``good`` with 1-3 bytes flipped, dropped or inserted anywhere, or a digit changed."""
    b = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(b) - 1))
        how = data.draw(st.sampled_from(["flip", "drop", "insert", "digit"]))
        if how == "flip":
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "drop":
            del b[i]
        elif how == "insert":
            b.insert(i, data.draw(st.sampled_from(b' ,0]"\n{')))
        else:  # a digit changed: sizes, positions, codes, counts
            j = next((k for k in range(i, min(len(b), i + 200)) if 0x30 <= b[k] <= 0x39), None)
            if j is not None:
                b[j] = 0x30 + (b[j] - 0x30 + data.draw(st.integers(1, 9))) % 10
    return bytes(b)


@SETTINGS
@given(st.data())
def test_bytes_that_hold_load_to_the_same_document(data: st.DataObject) -> None:
    """Flip, drop or insert bytes anywhere (header, section lines, values): whenever holds says
    equal, the bytes load and their document equals the state's, as verify's slow way would."""
    s, good, doc = _base()
    mutated = _mutate(data, good)
    if holds(s, mutated, "c"):
        load(mutated)
        assert not [c for c in field_changes(snapshot_document(mutated), doc)]


def test_a_section_line_rewritten_with_its_keys_in_another_order_is_checked_by_content() -> None:
    s, good, _ = _base()
    head, secs = _split(good)
    doc = _section(secs, "task")[0]
    line = orjson.dumps(doc, option=_SORT)
    reordered = orjson.dumps(dict(reversed(list(doc.items()))))
    assert line != reordered
    assert holds(s, good.replace(line, reordered), "c")  # what a load reads: the same section
    assert not holds(s, good.replace(line, orjson.dumps({**doc, "extra": 1}, option=_SORT)), "c")
    assert snapshot_module.FORMAT in good[:good.index(b"\n")].decode()


# -- by changes: a full snapshot checked against the last one shown equal -------------------

def _by_changes(s: ClusterState, data: bytes, chain: str, since: Held) -> bool:
    """match's verdict by changes alone (no fall back to reading every value)."""
    assert snapshot_match._changed_since(s, since) is not None  # the fold tracks its changes from since
    try:
        snapshot_match._holds(s, data, chain, since)
    except snapshot_match._ERRORS:
        return False
    return True


def _ids(data: bytes, kind: str) -> set[str]:
    return set(_section(_split(data)[1], kind)[0]["ids"])


def _fold_on(s: ClusterState, evs: list[dict[str, Any]], start: int) -> None:
    for i, e in enumerate(evs, start=start):
        apply(s, copy.deepcopy(e), offset=i)


@pytest.mark.parametrize("every", [97, 500])
def test_by_changes_agrees_with_holds_along_a_fold(train_early: None, every: int) -> None:
    evs = list(generate("m1", 5, 4000))
    # deleted pods and closed offers pruned early: entities leave the state between snapshots
    s = ClusterState.empty("m1", Retention(max_deleted_pods=20, max_closed_offers=20, max_terminal_tasks=20))
    held: Held | None = None
    by = added = removed = 0
    prev = b""
    for i, e in enumerate(evs):
        apply(s, e, offset=i)
        if i % every != every - 1:
            continue
        data = dump(s, "c")
        assert holds(s, data, "c")
        if held is not None:
            later = copy.deepcopy(s)
            _fold_on(later, evs[i + 1:i + 3], i + 1)
            if snapshot_match._changed_since(s, held) is not None:
                # a table that trained since holds its values in frames of another dictionary
                trained = any(held.sections[k][4] != _section(_split(data)[1], k)[0]["dict"] for k in held.sections)
                assert _by_changes(s, data, "c", held) is not trained
                assert not _by_changes(s, dump(later, "c"), "c", held)  # (its offset moved at least)
                assert not _by_changes(s, data, "other", held)
                by += not trained
                added += bool(_ids(data, "pod") - _ids(prev, "pod"))
                removed += bool(_ids(prev, "pod") - _ids(data, "pod"))
        got = match(s, data, "c", held)
        assert got is not None
        held = track_from(s, got, s.offset)
        prev = data
    assert by >= 4000 // every - 7  # (the first, and one for each table that trained)
    assert added and removed  # pods created and pruned between the two snapshots


def _p_and_n(n: int = 1500, more: int = 400) -> tuple[ClusterState, Held, bytes]:
    """A fold of ``n`` events with its snapshot shown equal (tracked from), folded ``more`` on,
    and its snapshot there."""
    evs = list(generate("m1", 5, n + more))
    s = ClusterState.empty("m1")
    _fold_on(s, evs[:n], 0)
    held = track_from(s, match(s, dump(s, "c"), "c"), s.offset)
    assert held is not None
    _fold_on(s, evs[n:], n)
    s.take_dirty()
    return s, held, dump(s, "c")


def _unchanged_pod(s: ClusterState, held: Held, data: bytes) -> str:
    """A pod in ``data`` the fold did not change since ``held``."""
    changed = set(snapshot_match._changed_since(s, held)["pod"])
    return next(i for i in sorted(_ids(data, "pod")) if i not in changed)


@pytest.mark.parametrize("changed", [False, True])
def test_a_value_stored_otherwise_in_an_unchanged_run_or_for_a_changed_entity_is_caught(train_early: None,
                                                                                       changed: bool) -> None:
    s, held, data = _p_and_n()
    assert _by_changes(s, data, "c", held)
    if changed:
        pod = next(i for i in sorted(_ids(data, "pod")) if i in set(snapshot_match._changed_since(s, held)["pod"]))
    else:
        pod = _unchanged_pod(s, held, data)
    head, secs = _split(data)
    doc, values = _section(secs, "pod")
    at = doc["ids"].index(pod)
    other = next(v for i, v in enumerate(values) if i != at and v != values[at])
    for value in (other, values[at][:-1] + bytes([values[at][-1] ^ 1])):
        bad = copy.deepcopy(secs)
        _section(bad, "pod")[1][at] = value
        damaged = _join(head, bad)  # (the CRC made right: only the content differs)
        assert not _by_changes(s, damaged, "c", held)
        assert match(s, damaged, "c", held) is None
        assert not holds(s, damaged, "c")


def test_an_entity_gone_from_the_snapshot_or_added_to_it_is_caught(train_early: None) -> None:
    s, held, data = _p_and_n()
    head, secs = _split(data)
    doc, values = _section(secs, "pod")
    changed = set(snapshot_match._changed_since(s, held)["pod"])
    for pick in (lambda i: i in changed, lambda i: i not in changed):
        at = next(k for k, i in enumerate(doc["ids"]) if pick(i))
        bad = copy.deepcopy(secs)
        d, v = _section(bad, "pod")
        for name in ("ids", "conds"):
            del d[name][at]
        del v[at]
        gone = _join(head, bad)
        assert not _by_changes(s, gone, "c", held)
        assert not holds(s, gone, "c")


def test_a_fold_whose_unmarked_change_shows_in_the_snapshot_falls_back(train_early: None) -> None:
    """A change the fold did not mark (none is known: the worker's etcd writes and deltas rest
    on the marks) is never taken for no change: the run differs from the held snapshot's."""
    s, held, _ = _p_and_n()
    pod = _unchanged_pod(s, held, dump(s, "c"))
    value = s.pods[pod]
    value["metadata"] = {**value.get("metadata", {}), "note": "changed"}
    packed_module.pack(s.pods)
    s._dirty.discard(("pod", pod))
    data = dump(s, "c")
    assert not _by_changes(s, data, "c", held)
    assert match(s, data, "c", held) is not None  # every value read: it holds
    assert holds(s, data, "c")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_no_damaged_snapshot_holds_by_changes(train_early: None, damage: str) -> None:
    s, held, data = _p_and_n(3000)
    assert _by_changes(s, _join(*_split(data)), "c", held)
    broken = DAMAGE[damage][0](*_split(data))
    assert not _by_changes(s, broken, "c", held)
    assert match(s, broken, "c", held) is None


def test_damaged_held_bytes_are_not_taken_for_the_fold(train_early: None) -> None:
    s, held, data = _p_and_n()
    pod = _unchanged_pod(s, held, data)
    sec = held.sections["pod"]
    at = sec[6] + sum(sec[1][:sec[0].index(pod)])
    b = bytearray(held.data)
    b[at + 5] ^= 1
    held.data = bytes(b)
    assert not _by_changes(s, data, "c", held)
    assert match(s, data, "c", held) is not None  # the snapshot itself holds: every value read


def test_a_dictionary_trained_since_is_checked_value_by_value(train_early: None) -> None:
    evs = list(generate("m1", 5, 1200))
    s = ClusterState.empty("m1")
    held = None
    for i, e in enumerate(evs):
        apply(s, e, offset=i)
        if held is None and i > 20 and s.pods.codec is None and len(s.pods) > 20:
            held = track_from(s, match(s, dump(s, "c"), "c"), s.offset)
    assert held is not None and s.pods.codec is not None  # the pods trained in between
    data = dump(s, "c")
    assert not _by_changes(s, data, "c", held)
    assert match(s, data, "c", held) is not None


_PN: dict[str, Any] = {}


@SETTINGS
@given(st.data())
def test_bytes_that_hold_by_changes_hold(data: st.DataObject) -> None:
    """Flip, drop or insert bytes of the later snapshot anywhere: whenever the check by changes
    says equal, holds does and the bytes load to the state's document."""
    if not _PN:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(packed_module, "TRAIN_AT", 100)
            _PN.update(zip(("state", "held", "data"), _p_and_n(), strict=True))
            _PN["doc"] = snapshot_document(_PN["data"])
    s, held, good = _PN["state"], _PN["held"], _PN["data"]
    mutated = _mutate(data, good)
    if _by_changes(s, mutated, "c", held):
        assert holds(s, mutated, "c")
        load(mutated)
        assert not [c for c in field_changes(snapshot_document(mutated), _PN["doc"])]


@pytest.mark.parametrize("window", [10**6, 300])
def test_the_window_is_checked_by_changes_whether_it_rotated_or_not(train_early: None, window: int) -> None:
    evs = list(generate("m1", 5, 1900))
    s = ClusterState.empty("m1", Retention(dedupe_window=window))
    _fold_on(s, evs[:1500], 0)
    held = track_from(s, match(s, dump(s, "c"), "c"), s.offset)
    assert held is not None
    _fold_on(s, evs[1500:], 1500)
    assert (s._rotations > held.base.rotations) is (window == 300)  # type: ignore[union-attr]
    data = dump(s, "c")
    assert _by_changes(s, data, "c", held)
    nl = data.index(b"\n")
    head = orjson.loads(data[:nl])
    for half in ("old", "new"):
        other = {**head, "dedupe": {**head["dedupe"], half: dedupe.encode(set(s._seen_old) ^ set(s._seen_new) ^ {7})}}
        bad = orjson.dumps(other, option=_SORT) + data[nl:]
        assert not _by_changes(s, bad, "c", held), half
        assert match(s, bad, "c", held) is None


@pytest.mark.parametrize("window", [10**6, 1000, 300])  # no rotation; one before the held snapshot only; both
def test_a_format_6_windows_bitmaps_are_checked_whole_and_by_changes(
        train_early: None, monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """Halves spilled into runs (SPILL 64): format 6 stores their bitmaps, which must be the
    state's (a bit missing lets a duplicate through); format 5 (none) is checked in place too."""
    from kmevents.checksum import crc32
    from kmevents.reducer.snapshot import FORMAT_5

    monkeypatch.setattr(dedupe.Recent, "SPILL", 64)
    evs = list(generate("m1", 5, 1900))
    s = ClusterState.empty("m1", Retention(dedupe_window=window))
    _fold_on(s, evs[:1500], 0)
    held = track_from(s, match(s, dump(s, "c"), "c"), s.offset)
    assert held is not None and holds(s, dump(s, "c", format=FORMAT_5), "c")
    _fold_on(s, evs[1500:], 1500)
    data = dump(s, "c")
    nl = data.index(b"\n")
    head = orjson.loads(data[:nl])
    w = head["dedupe"]
    assert w["new_bits"] and (w["old_bits"] is not None) is (window != 10**6)
    assert (s._rotations == held.base.rotations) is (window != 300)  # type: ignore[union-attr]
    assert holds(s, data, "c") and _by_changes(s, data, "c", held) and holds(s, dump(s, "c", format=FORMAT_5), "c")
    for half in ("new", "old"):
        if w[half + "_bits"] is None:
            continue
        raw = bytearray(base64.b64decode(w[half + "_bits"]))
        raw[next(i for i, b in enumerate(raw) if b)] = 0  # marks dropped, the CRC made to agree
        bits = {**w, half + "_bits": base64.b64encode(raw).decode()}
        new, old = (base64.b64decode(bits[h + "_bits"]) if bits[h + "_bits"] else b"" for h in ("new", "old"))
        bits["bits_crc"] = crc32(old, crc32(new))
        bad = orjson.dumps({**head, "dedupe": bits}, option=_SORT) + data[nl:]
        load(bad)  # it loads (its CRC agrees): only the comparison with the fold can tell
        assert not holds(s, bad, "c") and not _by_changes(s, bad, "c", held), half
        # and verify's slow way (its bytes unlike the fold's dump: loaded, compared as documents) finds it
        entry = {"cluster": "m1", "offset": s.offset, "chain": "c", "kind": "full"}
        found = asyncio.run(_check_snapshot(InMemory([entry], {s.offset: bad}), entry, s, "c"))
        assert "content differs" in found[s.offset] and f"{half}_bits" in found[s.offset], half
    entry = {"cluster": "m1", "offset": s.offset, "chain": "c", "kind": "full"}
    assert asyncio.run(_check_snapshot(InMemory([entry], {s.offset: data}), entry, s, "c")) == {}


def test_a_header_in_other_bytes_is_checked_by_content(train_early: None) -> None:
    """The header as dump writes it is compared as bytes around its indexes and window; one
    written otherwise (keys in another order) is parsed and compared as JSON, as a load reads it."""
    s = _fold(3000)
    data = dump(s, "c")
    nl = data.index(b"\n")
    head = orjson.loads(data[:nl])
    reordered = orjson.dumps(dict(reversed(list(head.items())))) + data[nl:]
    assert reordered != data
    assert holds(s, reordered, "c")
    for key, value in (("seq", head["seq"] + 1), ("extra", 1), ("recent", head["recent"][::-1])):
        for write in (lambda d: orjson.dumps(d, option=_SORT), lambda d: orjson.dumps(dict(reversed(list(d.items()))))):
            assert not holds(s, write({**head, key: value}) + data[nl:], "c"), key


def test_a_section_line_in_other_bytes_is_not_shown_equal_by_changes_but_holds(train_early: None) -> None:
    """By changes, a section's line is made from the held one's lists and the changes and compared
    as bytes (not parsed): the same content written otherwise (keys in another order, the
    condition names in another order with their codes to match) is read value by value."""
    s, held, data = _p_and_n()
    assert _by_changes(s, data, "c", held)
    head, secs = _split(data)
    doc = _section(secs, "pod")[0]
    assert len(doc["names"]) > 1
    names = doc["names"][::-1]
    recoded = {**doc, "names": names, "conds": [names.index(doc["names"][c]) for c in doc["conds"]]}
    line = orjson.dumps(doc, option=_SORT)
    for other in (orjson.dumps(dict(reversed(list(doc.items())))), orjson.dumps(recoded, option=_SORT)):
        assert other != line
        rewritten = data.replace(line, other)
        assert not _by_changes(s, rewritten, "c", held)
        assert match(s, rewritten, "c", held) is not None  # what a load reads: the same section
    for key, value in (("train_at", 7), ("sizes", [doc["sizes"][0] + 1, *doc["sizes"][1:]])):
        bad = data.replace(line, orjson.dumps({**doc, key: value}, option=_SORT))
        assert not _by_changes(s, bad, "c", held), key
        assert match(s, bad, "c", held) is None, key


@pytest.mark.parametrize("codes", [[], [0], [0, 0, 1, 0, 2], [1, 0, 0, 2], [2, 2, 0], [0, 2, 2, 1], [1, 1]])
def test_codes_are_renumbered_as_the_names_are_first_met(codes: list[int]) -> None:
    names = ["a", "b", "c"]
    conds = [names[c] for c in codes]
    assert snapshot_match._first_seen(list(codes), list(names)) == snapshot_module.condition_codes(conds)

