"""The dedupe window holds 64-bit digests of the keys (kmevents/reducer/dedupe.py, reducer 5).

What must not change: a duplicate is still a duplicate after a snapshot, a delta or a
rotation of the window, and the digests decide exactly as the keys did. What is new:
the digest is the same in every process, and a version-4 state (its keys as text,
recorded in tests/fixtures/reducer_v4 before this change) loads into the same window.
"""

from __future__ import annotations

import array
import base64
import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.reducer import REDUCER_VERSION, ClusterState, Retention, apply
from kmevents.reducer.dedupe import (
    Digests,
    Recent,
    added_since,
    decode,
    decode_added,
    decode_half,
    digest,
    encode,
)
from kmevents.reducer.delta import apply_delta
from kmevents.reducer.snapshot import LOADABLE_VERSIONS, SnapshotError
from tests.unit.reducer.streams import Log

V4 = Path(__file__).resolve().parents[2] / "fixtures" / "reducer_v4"


def _v4(name: str) -> bytes:
    return gzip.decompress((V4 / name).read_bytes())


def _ns(log: Log, key: str, name: str = "team-a") -> dict[str, Any]:
    return log.ev("namespace.upserted", {"namespace": {"name": name, "phase": "Active", "labels": {}}}, key)


def _kinds(anns: list[dict[str, Any]]) -> list[str]:
    return [a["kind"] for a in anns]


# -- the digest ---------------------------------------------------------------------

def test_a_key_digests_to_blake2b_first_8_bytes_big_endian() -> None:
    # `printf 'offer.rescinded|O-42' | b2sum -l 64` -> 6e79a25b2b614cd3
    assert digest("offer.rescinded|O-42") == 0x6E79A25B2B614CD3
    assert 0 <= digest("") < 2**64 and digest("é") != digest("e")


def test_the_digest_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from kmevents.reducer.dedupe import digest; print(digest('offer.rescinded|O-42'))"
    for seed in ("1", "4242"):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert int(out) == 0x6E79A25B2B614CD3


@given(st.sets(st.integers(min_value=0, max_value=2**64 - 1), max_size=200))
def test_a_set_of_digests_encodes_canonically_and_decodes_back(s: set[int]) -> None:
    text = encode(s)
    assert decode(text, REDUCER_VERSION) == s
    assert encode(set(reversed(sorted(s)))) == text  # the same set, the same text
    assert len(text) == 4 * -(-8 * len(s) // 3)  # base64 of 8 bytes a digest


@pytest.mark.parametrize("bad", ["not base64!", "AAAA", 17, ["k1"], None])
def test_a_damaged_window_in_a_snapshot_is_refused_with_a_snapshot_error(bad: Any) -> None:
    st_ = ClusterState.empty("c1")
    apply(st_, _ns(Log(), "k1"))
    head, entities = st_.to_snapshot().split(b"\n", 1)
    doc = orjson.loads(head)
    doc["dedupe"]["old"] = bad
    with pytest.raises(SnapshotError, match="dedupe window"):
        ClusterState.from_snapshot(orjson.dumps(doc) + b"\n" + entities)


def test_this_reducer_loads_its_own_version_and_the_text_keys_of_version_4() -> None:
    assert {4, REDUCER_VERSION} == LOADABLE_VERSIONS


# -- duplicates stay duplicates --------------------------------------------------------

def test_a_duplicate_is_annotated_after_a_snapshot_round_trip() -> None:
    log = Log()
    s = ClusterState.empty("c1", Retention(dedupe_window=3))
    first = [_ns(log, f"k{i}") for i in range(4)]  # k0..k2 rotate into old; k3 is new
    for e in first:
        assert apply(s, e) == []
    loaded = ClusterState.from_snapshot(s.to_snapshot())
    assert _kinds(apply(loaded, first[0])) == ["duplicate"]  # in old
    assert _kinds(apply(loaded, first[3])) == ["duplicate"]  # in new
    assert apply(loaded, _ns(log, "k-new")) == []
    assert "'k0'" in apply(ClusterState.from_snapshot(s.to_snapshot()), first[0])[0]["message"]


def test_a_duplicate_is_annotated_across_one_rotation_and_forgotten_after_two() -> None:
    log = Log()
    s = ClusterState.empty("c1", Retention(dedupe_window=4))
    k = _ns(log, "the-key")
    apply(s, k)
    for i in range(3):
        apply(s, _ns(log, f"a{i}"))  # the 4th key rotates the window: the-key is in old
    assert s._rotations == 1 and _kinds(apply(s, k)) == ["duplicate"]
    for i in range(4):
        apply(s, _ns(log, f"b{i}"))  # the second rotation drops the old half
    assert s._rotations == 2 and apply(s, k) == []


def test_a_duplicate_is_annotated_after_a_delta() -> None:
    log = Log()
    s = ClusterState.empty("c1", Retention(dedupe_window=3))
    apply(s, _ns(log, "k0"))
    base = s.to_snapshot()
    s.take_dirty()
    s.mark_base()
    later = [_ns(log, f"k{i}") for i in range(1, 5)]
    for e in later:
        apply(s, e)
    rebuilt = apply_delta(ClusterState.from_snapshot(base), s.to_delta())
    assert rebuilt.to_snapshot() == s.to_snapshot()
    assert [_kinds(apply(rebuilt, e)) for e in later] == [["duplicate"]] * 4


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.sampled_from([f"k{i}" for i in range(12)]), max_size=60),
       window=st.integers(min_value=1, max_value=6), cut=st.integers(min_value=0, max_value=60))
def test_the_digest_window_decides_as_a_window_of_the_keys_would(keys: list[str], window: int, cut: int) -> None:
    # the reference: the same W-to-2W window over the key strings themselves
    new: set[str] = set()
    old: set[str] = set()
    expected = []
    for k in keys:
        if k in new or k in old:
            expected.append(["duplicate"])
            continue
        expected.append([])
        new.add(k)
        if len(new) >= window:
            old, new = new, set()
    log = Log()
    s = ClusterState.empty("c1", Retention(dedupe_window=window))
    got = []
    for i, k in enumerate(keys):
        if i == cut:  # and a snapshot round trip somewhere in the middle changes nothing
            s = ClusterState.from_snapshot(s.to_snapshot())
        got.append(_kinds(apply(s, _ns(log, k))))
    assert got == expected


# -- the new half as sorted runs (dedupe.Recent) ----------------------------------------

def _fold_keys(keys: list[str], window: int, spill: int, cut: int) -> tuple[list[list[str]], ClusterState, bytes]:
    """Fold namespace events with ``keys``, the new half spilling into runs every ``spill`` digests:
    the annotations, the state, and the delta against a base marked at ``cut``."""
    log = Log()
    with patch.object(Recent, "SPILL", spill):
        s = ClusterState.empty("c1", Retention(dedupe_window=window))
        got = []
        base = None
        for i, k in enumerate(keys):
            if i == cut:
                base = s.to_snapshot()
                s = ClusterState.from_snapshot(base)  # a snapshot loads the new half as a set or runs
                s.take_dirty()
                s.mark_base()
            got.append(_kinds(apply(s, _ns(log, k))))
            if i == cut // 2:
                fork = s.fork()  # a fork adds to its own copy of the half, never to its parent's
                apply(fork, _ns(log, "only-in-the-fork"))
        delta = s.to_delta() if base is not None else b""
        if base is not None:
            assert apply_delta(ClusterState.from_snapshot(base), delta).to_snapshot() == s.to_snapshot()
    return got, s, delta


@settings(max_examples=80, deadline=None)
@given(keys=st.lists(st.sampled_from([f"k{i}" for i in range(40)]), max_size=90),
       window=st.integers(min_value=1, max_value=30), spill=st.integers(min_value=1, max_value=5),
       cut=st.integers(min_value=0, max_value=90))
def test_the_new_half_in_runs_decides_and_dumps_as_the_set_did(keys: list[str], window: int, spill: int,
                                                               cut: int) -> None:
    got, s, delta = _fold_keys(keys, window, spill, cut)
    want, plain, plain_delta = _fold_keys(keys, window, 10**9, cut)  # never spills: a set, as before
    assert got == want
    assert s.to_snapshot() == plain.to_snapshot() and delta == plain_delta
    assert s._seen_new == plain._seen_new and plain._seen_new == s._seen_new
    assert s._seen_old == plain._seen_old


@settings(max_examples=80, deadline=None)
@given(ds=st.lists(st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=40),
                   max_size=80),
       spill=st.integers(min_value=1, max_value=6), other=st.sets(st.integers(min_value=0, max_value=40)))
def test_recent_is_the_set_of_its_digests(ds: list[int], spill: int, other: set[int]) -> None:
    with patch.object(Recent, "SPILL", spill):
        r = Recent(ds[:3], window=100)
        ref = set(ds[:3])
        for d in ds[3:]:
            r.add(d)
            ref.add(d)
            assert d in r and len(r) == len(ref)
        fresh = next(x for x in range(41, 200) if x not in ref)
        copy = r.copy()
        copy.add(fresh)
        assert fresh in copy and fresh not in r and len(copy) == len(r) + 1
        assert r == ref and ref == r and set(r) == ref and sorted(r) == sorted(ref)
        if ref:  # one digest swapped for another: as many, not equal
            swapped = (ref - {min(ref)}) | {fresh}
            assert r != swapped and swapped != r and r != frozenset(swapped)
        assert all(x in r for x in ref) and not any(x in r for x in other - ref) and "k" not in r
        assert r - other == ref - other and r | other == ref | other
        assert list(r.sorted_array()) == sorted(ref) and encode(r) == encode(ref)
        old = r.frozen()
        assert old == ref and old == Digests(ref) and len(old) == len(ref) and encode(old) == encode(ref)
        assert all(x in old for x in ref) and not any(x in old for x in other - ref)


@settings(max_examples=80, deadline=None)
@given(ds=st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60, unique=True),
       spill=st.integers(min_value=1, max_value=6), start=st.integers(min_value=0, max_value=10),
       cut=st.integers(min_value=0, max_value=60), rotate=st.booleans())
def test_the_digests_added_since_a_copy_are_the_set_difference(ds: list[int], spill: int, start: int, cut: int,
                                                               rotate: bool) -> None:
    """A delta's digests added since its base (delta.py): from the runs the new half added since
    the base's copy of it, or the old half it became, as the set difference of all gives."""
    with patch.object(Recent, "SPILL", spill):
        r = Recent(ds[:start], window=64)
        cut = max(cut, start)
        for d in ds[start:cut]:
            r.add_new(d)
        then = r.copy()
        for d in ds[cut:]:
            r.add_new(d)
        now: Recent | Digests = r.frozen() if rotate else r
        assert added_since(now, then) == set(ds[cut:])
        assert added_since(now, set(ds[:cut])) == set(ds[cut:])  # (a base's plain set: the difference)
        assert added_since(Digests(ds), then) == set(ds[cut:])  # (runs not shared: the difference)
        assert added_since(set(ds), then) == set(ds[cut:])


@settings(max_examples=80, deadline=None)
@given(ds=st.sets(st.integers(min_value=0, max_value=2**64 - 1), max_size=60),
       spill=st.integers(min_value=1, max_value=8), shuffle=st.randoms(use_true_random=False))
def test_a_written_new_half_loads_as_runs_of_its_sorted_digests_from_the_spill_size_on(
        ds: set[int], spill: int, shuffle: Any) -> None:
    """decode_half: the half a snapshot or delta wrote (sorted) is cut into runs as it is, not
    sorted again; smaller than a spill it stays a set; digests written out of order (not
    encode's) load as the same digests all the same."""
    with patch.object(Recent, "SPILL", spill):
        half = decode_half(encode(ds), REDUCER_VERSION, 64)
        assert half == ds and len(half) == len(ds) and (type(half) is Recent) is (len(ds) >= spill)
        if type(half) is Recent:
            assert all(_bit(half, d) for d in ds) and not half._set
            assert [list(r) for r in half._runs] == [sorted(ds)[i:i + spill] for i in range(0, len(ds), spill)]
        jumbled = sorted(ds)
        shuffle.shuffle(jumbled)
        raw = array.array("Q", jumbled + jumbled[:1])  # and one twice
        if sys.byteorder == "little":
            raw.byteswap()
        again = decode_half(base64.b64encode(raw.tobytes()).decode(), REDUCER_VERSION, 64)
        assert again == ds and len(again) == len(ds)


@settings(max_examples=80, deadline=None)
@given(ds=st.lists(st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=40),
                   max_size=60, unique=True),
       spill=st.integers(min_value=1, max_value=6), added=st.sets(st.integers(min_value=0, max_value=60)))
def test_digests_added_to_a_half_make_a_copy_that_holds_both(ds: list[int], spill: int, added: set[int]) -> None:
    """Recent.with_added (a delta's added digests onto its base's half): the union, whatever
    the two share, each digest's bit set; the half it was made from is left as it was."""
    with patch.object(Recent, "SPILL", spill):
        r = Recent(ds[:2], window=64)
        for d in ds[2:]:
            r.add_new(d)
        before = set(ds)
        both = r.with_added(added)
        assert both == before | added and len(both) == len(before | added) and len(both._set) < spill
        assert all(_bit(both, d) for d in before | added) and all(d in both for d in added)
        assert r == before and len(r) == len(before)
        assert both.frozen() == before | added


@settings(max_examples=120, deadline=None)
@given(ds=st.lists(st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=40),
                   max_size=60, unique=True),
       spill=st.integers(min_value=1, max_value=6),
       added=st.sets(st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=60),
                     max_size=30),
       shared=st.booleans(), jumbled=st.booleans(), shuffle=st.randoms(use_true_random=False))
def test_a_deltas_added_digests_as_written_join_a_half_as_runs_of_their_own(
        ds: list[int], spill: int, added: set[int], shared: bool, jumbled: bool, shuffle: Any) -> None:
    """Recent.with_added given a delta's digests as written (decode_added: an array, ascending,
    none in the half): the union, each digest's bit set, the half's own runs first and shared
    (added_since from it reads only what follows), the added ones as further runs and nothing
    in the set; given digests the half holds already, or out of order, the same union as a set
    of them gives. The half it was made from is left as it was."""
    with patch.object(Recent, "SPILL", spill):
        r = Recent(ds[:2], window=64)
        for d in ds[2:]:
            r.add_new(d)
        before = set(ds)
        new = sorted(added - before)
        if shared and ds:
            new = sorted({*new, ds[0]})  # one the half holds
        if jumbled:
            shuffle.shuffle(new)
        given_ = decode_added(encode(set(new)) if not jumbled else _b64(new), REDUCER_VERSION)
        assert type(given_) is array.array and list(given_) == (sorted(new) if not jumbled else new)
        both = r.with_added(given_)
        want = before | set(new)
        assert both == want and len(both) == len(want) and all(_bit(both, d) for d in want)
        assert all(d in both for d in new) and r == before and len(r) == len(before)
        if not (shared and ds) and new == sorted(new):
            k = len(r._runs)
            assert all(a is b for a, b in zip(both._runs[:k], r._runs, strict=True))
            assert both._set == r._set and [x for run in both._runs[k:] for x in run] == new
            assert added_since(both, r) == set(new)
        assert both.frozen() == want  # (last: it moves the set into a run)


def _b64(digests: list[int]) -> str:
    raw = array.array("Q", digests)
    if sys.byteorder == "little":
        raw.byteswap()
    return base64.b64encode(raw.tobytes()).decode()


def _bit(half: Recent | Digests, d: int) -> bool:
    i = d & half.mask
    return half.bits[i >> 3] >> (i & 7) & 1 == 1


@settings(max_examples=60, deadline=None)
@given(ds=st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60),
       spill=st.integers(min_value=1, max_value=6), start=st.integers(min_value=0, max_value=10))
def test_every_digest_of_a_half_has_its_bit_set(ds: list[int], spill: int, start: int) -> None:
    # apply.py skips `in` when a digest's bit is clear: a digest of the half with a clear bit
    # would let its duplicate through. The newest (still in Recent's set) are marked too.
    with patch.object(Recent, "SPILL", spill):
        r = Recent(ds[:start], window=64)
        for d in ds[start:]:
            if d not in r:
                assert r.add_new(d) == len(r)
        assert all(_bit(r, d) for d in ds)
        assert all(_bit(r.copy(), d) for d in ds)
        old = r.frozen()
        assert all(_bit(old, d) for d in ds) and all(_bit(Digests(ds), d) for d in ds)


def test_a_duplicate_in_the_new_halfs_newest_digests_is_annotated() -> None:
    # the window's new half as a Recent (window 40: it becomes one at SPILL digests), the
    # duplicate's digest still in its set part, not yet in a run
    with patch.object(Recent, "SPILL", 4):
        log, s = Log(), ClusterState.empty("c1", Retention(dedupe_window=40))
        for i in range(10):
            apply(s, _ns(log, f"k{i}", f"ns-{i}"))
        assert type(s._seen_new) is Recent and len(s._seen_new) == 10
        assert _kinds(apply(s, _ns(log, "k9", "ns-9"))) == ["duplicate"]  # in the set part
        assert _kinds(apply(s, _ns(log, "k1", "ns-1"))) == ["duplicate"]  # in a run
        assert apply(s, _ns(log, "k10", "ns-10")) == []


# -- a version-4 state ----------------------------------------------------------------

def _fold_fixture_events(upto: int, *, base_at: int | None = None) -> ClusterState:
    """The fixture's events folded by THIS reducer, as the fixture was recorded."""
    s = ClusterState.empty("fx1", Retention(dedupe_window=128))
    for i, line in enumerate(_v4("events.jsonl.gz").splitlines()[:upto + 1]):
        apply(s, orjson.loads(line), partition=0, offset=i)
        if i == base_at:
            s.mark_base()
    return s


def test_a_version_4_snapshot_loads_as_the_version_5_fold_of_the_same_log() -> None:
    data = _v4("snapshot-299.json.gz")
    doc = orjson.loads(data)
    assert doc["reducer_version"] == 4 and type(doc["dedupe"]["old"][0]) is str  # keys as text
    loaded = ClusterState.from_snapshot(data)
    assert loaded.to_snapshot(chain_hash="c299") == _fold_fixture_events(299).to_snapshot(chain_hash="c299")
    assert len(loaded._seen_old) == 128 and len(loaded._seen_new) == 44
    # and its window still knows the keys: a key of its old half and one of its new half
    events = [orjson.loads(b) for b in _v4("events.jsonl.gz").splitlines()]
    assert _kinds(apply(loaded, events[200])) == ["duplicate"]
    assert _kinds(apply(loaded, events[299])) == ["duplicate"]


@pytest.mark.parametrize("upto", [229, 299])
def test_a_version_4_delta_applies_to_its_version_4_base(upto: int) -> None:
    base = ClusterState.from_snapshot(_v4("snapshot-199.json.gz"))
    rebuilt = apply_delta(base, _v4(f"delta-{upto}.json.gz"))
    expected = _fold_fixture_events(upto, base_at=199)
    assert rebuilt.to_snapshot(chain_hash="c") == expected.to_snapshot(chain_hash="c")


# -- format 6: the halves' bitmaps stored beside their digests -------------------------------

def _spilled_state() -> tuple[ClusterState, Log]:
    """A state whose window rotated and whose halves both spilled into runs (SPILL patched to 4)."""
    log, s = Log(), ClusterState.empty("c1", Retention(dedupe_window=40))
    for i in range(70):  # one rotation at 40: old half 40 digests, new half 30
        apply(s, _ns(log, f"k{i}", f"ns-{i % 7}"))
    assert type(s._seen_old) is Digests and type(s._seen_new) is Recent and len(s._seen_new) == 30
    return s, log


def test_a_format_6_snapshot_stores_the_halves_bitmaps_and_a_load_takes_them() -> None:
    from kmevents.reducer.dedupe import _bitmap, _mark, half_bits
    from kmevents.reducer.snapshot import FORMAT_5, dump

    with patch.object(Recent, "SPILL", 4):
        s, log = _spilled_state()
        data = s.to_snapshot(chain_hash="c")
        w = orjson.loads(data[:data.index(b"\n")])["dedupe"]
        assert w["new_bits"] and w["old_bits"] and type(w["bits_crc"]) is int
        for name, half in (("new", s._seen_new), ("old", s._seen_old)):
            bits, mask = _bitmap(40)
            _mark(bits, mask, half)  # exactly its digests, window-sized
            assert base64.b64decode(w[name + "_bits"]) == bytes(bits) == half_bits(half, 40), name
        loaded = ClusterState.from_snapshot(data)
        assert type(loaded._seen_old) is Digests and type(loaded._seen_new) is Recent
        assert loaded._seen_old == s._seen_old and loaded._seen_new == s._seen_new
        assert all(_bit(loaded._seen_old, d) for d in s._seen_old) and all(_bit(loaded._seen_new, d) for d in s._seen_new)
        assert loaded.to_snapshot(chain_hash="c") == data
        # a key of each half is still a duplicate, a new one is not, and the two fold on alike
        more = [_ns(log, "k35", "ns-0"), _ns(log, "k65", "ns-2"), _ns(log, "k70", "ns-1")]
        for st_ in (s, loaded):
            assert [_kinds(apply(st_, e)) for e in more] == [["duplicate"], ["duplicate"], []]  # old half, new half
        assert loaded.to_snapshot(chain_hash="c") == s.to_snapshot(chain_hash="c")
        # format 5 (no bitmaps) loads to the same state; its halves are marked as before
        again = ClusterState.from_snapshot(dump(s, "c", format=FORMAT_5))
        assert again.to_snapshot(chain_hash="c") == s.to_snapshot(chain_hash="c")


def _with_window(data: bytes, **changes: Any) -> bytes:
    nl = data.index(b"\n")
    doc = orjson.loads(data[:nl])
    doc["dedupe"] = {**doc["dedupe"], **changes}
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + data[nl:]


def _flip(text: str) -> bytes:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x10
    return bytes(raw)


def test_a_format_6_snapshot_whose_bitmaps_are_damaged_does_not_load() -> None:
    # a bit missing would let a duplicate through: the CRC and the size are checked
    from kmevents.checksum import crc32

    with patch.object(Recent, "SPILL", 4):
        s, _ = _spilled_state()
        data = s.to_snapshot(chain_hash="c")
        w = orjson.loads(data[:data.index(b"\n")])["dedupe"]
        new, old = base64.b64decode(w["new_bits"]), base64.b64decode(w["old_bits"])
        flipped = _flip(w["old_bits"])
        short = new[:-8]
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        for damage, why in [
            ({"old_bits": b64(flipped)}, "CRC"),
            ({"bits_crc": w["bits_crc"] ^ 1}, "CRC"),
            ({"new_bits": b64(short), "bits_crc": crc32(old, crc32(short))}, "bytes, not the window"),
            ({"new_bits": "not base64!"}, "not base64"),
            ({"new_bits": None}, "CRC"),
        ]:
            with pytest.raises(SnapshotError, match=why):
                ClusterState.from_snapshot(_with_window(data, **damage))
