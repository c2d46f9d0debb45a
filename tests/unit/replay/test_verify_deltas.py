"""verify checks a delta as the fold's own changes since its base, and falls back to the
full rebuild-and-compare whenever the bytes differ (a difference is never a finding by itself)."""

from __future__ import annotations

import asyncio

import pytest
from kmevents.replay.verify import _check_snapshot, _same_delta

from kmevents.reducer import ClusterState, apply
from kmevents.reducer.delta import FORMAT_1, FORMAT_2, dump_delta
from kmevents.simulate import generate
from tests.unit.store.test_snapshot_deltas import InMemory


def _fold_to(n: int, base_at: int | None) -> ClusterState:
    st = ClusterState.empty("sd")
    for i, e in enumerate(generate("sd", 3, n)):
        apply(st, e, offset=i)
        if i == base_at:
            st.take_dirty()
            st.mark_base(i)
    st.take_dirty()
    return st


def test_a_delta_equal_to_the_folds_changes_is_checked_without_a_rebuild() -> None:
    st = _fold_to(2000, 999)
    entry = {"cluster": "sd", "offset": 1999, "chain": "c1999", "kind": "delta", "base": 999}
    store = InMemory([entry], {1999: st.to_delta(chain_hash="c1999")})
    assert asyncio.run(_same_delta(store, entry, st, "c1999")) == {}
    assert store.loads == 0, "no snapshot was loaded"


def test_a_changed_delta_is_left_to_the_full_check_which_finds_it() -> None:
    st = _fold_to(2000, 999)
    other = _fold_to(1990, 999)  # ten events short: a wrong delta that still loads
    base = _fold_to(1000, None).to_snapshot(chain_hash="c999")
    full = {"cluster": "sd", "offset": 999, "chain": "c999", "kind": "full"}
    entry = {"cluster": "sd", "offset": 1999, "chain": "c1999", "kind": "delta", "base": 999}
    store = InMemory([full, entry], {999: base, 1999: other.to_delta(chain_hash="c1999")})
    assert asyncio.run(_same_delta(store, entry, st, "c1999")) is None
    found = asyncio.run(_check_snapshot(store, entry, st, "c1999"))
    assert "content differs from the fold at offset 1999" in found[1999]


def test_no_cheap_check_without_the_named_base_or_with_another_chain() -> None:
    st = _fold_to(2000, 500)
    entry = {"cluster": "sd", "offset": 1999, "chain": "c1999", "kind": "delta", "base": 999}
    store = InMemory([entry], {1999: st.to_delta(chain_hash="c1999")})
    assert asyncio.run(_same_delta(store, entry, st, "c1999")) is None
    st2 = _fold_to(2000, 999)
    assert asyncio.run(_same_delta(store, entry, st2, "not-the-chain")) is None


@pytest.mark.parametrize("fmt", [FORMAT_1, FORMAT_2])
def test_a_delta_of_an_older_format_is_checked_by_changes_too(fmt: str) -> None:
    # a store written before format 3 (format 2: the values in the document; 1: the indexes
    # whole) is compared in its own format
    st = _fold_to(2000, 999)
    entry = {"cluster": "sd", "offset": 1999, "chain": "c1999", "kind": "delta", "base": 999}
    store = InMemory([entry], {1999: dump_delta(st, "c1999", format=fmt)})
    assert asyncio.run(_same_delta(store, entry, st, "c1999")) == {}
    assert store.loads == 0, "no snapshot was loaded"



def test_deltas_checked_one_after_another_with_remembered_values_still_find_a_wrong_one() -> None:
    from kmevents.reducer.delta import Remembered

    memo = Remembered()
    st = ClusterState.empty("sd")
    evs = list(generate("sd", 3, 2000))
    short = ClusterState.empty("sd")  # the same fold, missing one event after the first delta
    for i, e in enumerate(evs):
        apply(st, e, offset=i)
        if i != 1700:
            apply(short, e, offset=i)
        else:
            short.offset = i
        for s in (st, short):
            s.take_dirty()
            if i == 999:
                s.mark_base(i)
        if i in (1499, 1999):
            entry = {"cluster": "sd", "offset": i, "chain": f"c{i}", "kind": "delta", "base": 999}
            right = InMemory([entry], {i: st.to_delta(chain_hash=f"c{i}")})
            wrong = InMemory([entry], {i: short.to_delta(chain_hash=f"c{i}")})
            # (before the missing event both folds' deltas are the same bytes)
            assert asyncio.run(_same_delta(wrong, entry, st, f"c{i}", memo)) == (None if i == 1999 else {})
            assert asyncio.run(_same_delta(right, entry, st, f"c{i}", memo)) == {}
    assert st.to_delta(chain_hash="c") != short.to_delta(chain_hash="c")
