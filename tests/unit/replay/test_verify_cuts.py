"""Where a split verify cuts the log (replay/verify_split.py ``cuts``, ``default_jobs``)."""

from __future__ import annotations

from kmevents.replay.verify_split import SEGMENT_MIN_OFFSETS, cuts, default_jobs

from kmevents.reducer import REDUCER_VERSION


def _full(off: int, **kw: object) -> dict:
    return {"offset": off, "chain": "c" * 64, "reducer_version": REDUCER_VERSION, **kw}


def test_cuts_are_the_full_snapshots_nearest_even_shares_of_the_log() -> None:
    entries = [_full(o) for o in range(1000, 100_000, 1000)]
    assert [e["offset"] for e in cuts(entries, 0, 100_000, 4)] == [25_000, 50_000, 75_000]
    assert [e["offset"] for e in cuts(entries, 0, 100_000, 1)] == []


def test_deltas_other_reducers_unchained_and_out_of_range_entries_are_never_cuts() -> None:
    entries = [_full(10, kind="delta", base=5), _full(20, reducer_version=REDUCER_VERSION - 1),
               _full(30, chain=None), _full(0), _full(100), _full(60)]
    assert [e["offset"] for e in cuts(entries, 0, 100, 2)] == [60]
    assert cuts(entries[:5], 0, 100, 3) == []


def test_fewer_snapshots_than_jobs_give_fewer_cuts_each_once() -> None:
    assert [e["offset"] for e in cuts([_full(40)], 0, 100, 4)] == [40]


def test_default_jobs_grow_with_the_span_up_to_the_cores() -> None:
    assert default_jobs(SEGMENT_MIN_OFFSETS - 1) == 1
    assert 1 <= default_jobs(100 * SEGMENT_MIN_OFFSETS) <= 4
