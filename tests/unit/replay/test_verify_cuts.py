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


def test_a_growing_state_moves_the_cuts_later_to_even_out_the_segments_work() -> None:
    from kmevents.replay.verify_split import STATE_BYTES_PER_WEIGHT, weights

    growing = [_full(o, bytes=o * 2000) for o in range(1000, 100_000, 1000)]
    same = [_full(o, bytes=STATE_BYTES_PER_WEIGHT) for o in range(1000, 100_000, 1000)]
    assert [e["offset"] for e in cuts(same, 0, 100_000, 2)] == [50_000]
    (cut,) = cuts(growing, 0, 100_000, 2)
    # the later half of the log weighs more: its segment is shorter
    assert 60_000 <= cut["offset"] <= 80_000
    w = weights(growing, 0, [cut["offset"], 100_000])
    assert abs(w[0] - w[1] / 2) <= w[1] / 100
    # without sizes (entries of an older store), a record weighs 1 wherever it is
    assert weights([_full(o) for o in range(1000, 5000, 1000)], 0, [10, 2500, 9000]) == [10, 2500, 9000]


def test_weights_follow_a_line_through_the_snapshots_sizes() -> None:
    from kmevents.replay.verify_split import STATE_BYTES_PER_WEIGHT as U
    from kmevents.replay.verify_split import weights

    entries = [_full(100, bytes=2 * U), _full(100, kind="delta", base=50, bytes=100 * U), _full(300, bytes=2 * U)]
    # 0..100: the size grows from 0 to 2U (mean U: weight 2 a record); then 2U (weight 3)
    assert weights(entries, 0, [50, 100, 200, 400]) == [50 * 1.5, 200.0, 500.0, 1100.0]
