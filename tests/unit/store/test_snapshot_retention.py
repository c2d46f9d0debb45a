"""Which snapshots ``kmevents snapshots prune`` keeps (store/snapshot_retention.py ``plan``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmevents.store.snapshot_retention import chunk_keys, plan, record_of


def entries_of(fulls: list[int], deltas_per_full: int = 2, step: int = 100) -> list[dict[str, Any]]:
    """Index entries as the worker writes them: one per offset, each delta after its base and
    before the next full snapshot."""
    out: list[dict[str, Any]] = []
    fs = sorted(set(fulls))
    for f, nxt in zip(fs, [*fs[1:], None], strict=True):
        out.append({"offset": f, "kind": "full", "stored_bytes": 1000})
        out += [{"offset": f + step * (i + 1), "kind": "delta", "base": f, "stored_bytes": 10}
                for i in range(deltas_per_full) if nxt is None or f + step * (i + 1) < nxt]
    return sorted(out, key=lambda e: e["offset"])


def offsets(es: list[dict[str, Any]], kind: str | None = None) -> list[int]:
    return [e["offset"] for e in es if kind is None or e["kind"] == kind]


def test_the_newest_fulls_keep_their_deltas_and_older_ones_thin_to_one_per_interval() -> None:
    es = entries_of(list(range(0, 20_000, 1_000)), step=250)  # fulls every 1,000, deltas at +250, +500
    p = plan(es, keep_recent=3, thin_every=5_000)
    assert offsets(p.keep, "full") == [0, 5_000, 10_000, 15_000, 17_000, 18_000, 19_000]
    assert offsets(p.keep, "delta") == [17_250, 17_500, 18_250, 18_500, 19_250, 19_500]
    assert sorted(offsets(p.keep) + offsets(p.drop)) == offsets(es)
    assert p.as_dict()["dropped_bytes"] == 13 * 1000 + 34 * 10


def test_the_last_clean_verifys_snapshot_is_kept_and_a_kept_delta_keeps_its_base() -> None:
    es = entries_of(list(range(0, 10_000, 1_000)))
    p = plan(es, keep_recent=1, thin_every=100_000, also_keep=frozenset({4_000, 6_100}))
    assert offsets(p.keep) == [0, 4_000, 6_000, 6_100, 9_000, 9_100, 9_200]


def test_nothing_goes_when_every_full_is_recent_and_bad_limits_are_refused() -> None:
    es = entries_of([0, 1_000, 2_000])
    assert not plan(es, keep_recent=3, thin_every=1).drop
    for bad in ({"keep_recent": 0}, {"thin_every": 0}):
        with pytest.raises(ValueError):
            plan(es, **bad)  # type: ignore[arg-type]


def test_chunk_keys_are_the_writers() -> None:
    assert chunk_keys({"cluster": "c", "offset": 7, "chunk_offsets": [3, 4], "chunk_key": "r5/c/7"}) == [
        b"r5/c/7/0/2", b"r5/c/7/1/2"]
    assert chunk_keys({"cluster": "c", "offset": 7, "chunk_offsets": [3]}) == [b"c/7/0/1"]  # before chunk_key


@given(fulls=st.lists(st.integers(0, 50_000), min_size=1, max_size=40), deltas=st.integers(0, 3),
       keep_recent=st.integers(1, 6), thin_every=st.integers(1, 20_000),
       also=st.frozensets(st.integers(0, 50_000), max_size=3))
def test_plan_invariants(fulls: list[int], deltas: int, keep_recent: int, thin_every: int,
                         also: frozenset[int]) -> None:
    es = entries_of(fulls, deltas, step=7)
    p = plan(es, keep_recent=keep_recent, thin_every=thin_every, also_keep=also)
    kept, dropped = offsets(p.keep), offsets(p.drop)
    assert sorted(kept + dropped) == offsets(es) and not set(kept) & set(dropped)
    all_fulls = offsets(es, "full")
    recent = all_fulls[-keep_recent:]
    assert set(recent) <= set(kept)  # the worker restores from the newest
    kept_fulls = set(offsets(p.keep, "full"))
    for e in p.keep:  # a kept delta can be loaded: its base is kept
        assert e["kind"] == "full" or e["base"] in kept_fulls
    for e in es:  # every delta of a recent full is kept
        if e["kind"] == "delta" and e["base"] in recent:
            assert e["offset"] in kept
    # before the recent ones, each interval of thin_every offsets that had a full keeps its first
    older = [f for f in all_fulls if f < recent[0]]
    for bucket in {f // thin_every for f in older}:
        first = min(f for f in older if f // thin_every == bucket)
        assert first in kept_fulls
    assert {o for o in also if o in offsets(es)} <= set(kept)
    # and nothing else is kept: recent, first of a bucket, also_keep, a base of a kept delta
    bases = {e["base"] for e in p.keep if e["kind"] == "delta"}
    for f in kept_fulls - set(recent) - also - bases:
        assert f == min(x for x in older if x // thin_every == f // thin_every)


def test_an_unreclaimed_record_is_checked_and_each_fault_named() -> None:
    good = {"chunk_keys": ["r5/c/10/0/1"], "partition": 0, "offset": 10}
    assert record_of(orjson.dumps(good)) == good
    for raw, says in [(b"{", "not JSON"), (b"[]", "a JSON list, not an object"),
                      (orjson.dumps({**good, "chunk_keys": "r5/c/10/0/1"}), "chunk_keys is not a list of strings"),
                      (orjson.dumps({**good, "chunk_keys": [1]}), "chunk_keys is not a list of strings"),
                      (orjson.dumps({**good, "partition": "0"}), "partition is not an int >= 0: '0'"),
                      (orjson.dumps({k: v for k, v in good.items() if k != "offset"}),
                       "offset is not an int >= 0: None"),
                      (orjson.dumps({**good, "offset": -1}), "offset is not an int >= 0: -1")]:
        with pytest.raises(ValueError) as err:
            record_of(raw)
        assert str(err.value).startswith(says), (raw, str(err.value))
