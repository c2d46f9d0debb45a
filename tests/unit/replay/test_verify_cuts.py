"""Where a split verify cuts the log (replay/verify_split.py ``cuts``, ``default_jobs``)."""

from __future__ import annotations

from kmevents.replay.verify_split import SEGMENT_MIN_OFFSETS, cuts, default_jobs, weights

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


def test_the_last_segments_comparison_with_etcd_moves_the_cut_later_into_the_log() -> None:
    from kmevents.replay.verify_split import COMPARE_BYTES_PER_WEIGHT, compare_weight

    entries = [_full(o, bytes=20_000 * COMPARE_BYTES_PER_WEIGHT) for o in range(1000, 100_000, 1000)]
    # the last full snapshot at or before the checkpoint gives the comparison's weight
    assert compare_weight(entries, 99_000) == compare_weight(entries, 99_500)
    assert compare_weight([_full(10, bytes=COMPARE_BYTES_PER_WEIGHT), _full(20, bytes=5 * COMPARE_BYTES_PER_WEIGHT)],
                          15) == 1.0
    assert compare_weight([_full(10), _full(20, kind="delta", base=10, bytes=999)], 30) == 0.0
    (plain,) = cuts(entries, 0, 100_000, 2)
    (comparing,) = cuts(entries, 0, 100_000, 2, compare=True)
    assert comparing["offset"] > plain["offset"]  # the last segment folds less: it compares too
    # the segments' weights: the first as heavy as the last with its comparison
    w = weights(entries, 0, [comparing["offset"], 100_000])
    last = w[1] - w[0] + compare_weight(entries, 100_000)
    assert abs(w[0] - last) <= w[1] / 50


def test_children_are_started_with_huge_pages_and_the_environment_is_put_back(monkeypatch) -> None:
    import os

    from kmevents.replay.verify_split import HEAP_BUFFERS, HUGE_PAGES, child_env

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with child_env():
        assert os.environ["GLIBC_TUNABLES"] == f"{HUGE_PAGES}:{HEAP_BUFFERS}"
    assert "GLIBC_TUNABLES" not in os.environ
    # other tunables are kept, the children's added after them
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    with child_env():
        assert os.environ["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGES}:{HEAP_BUFFERS}"
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    # a choice already made (here: no huge pages, another threshold) is left alone
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")
    with child_env():
        assert os.environ["GLIBC_TUNABLES"] == f"glibc.malloc.hugetlb=0:{HEAP_BUFFERS}"
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1024:glibc.malloc.hugetlb=0")
    with child_env():
        assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.mmap_threshold=1024:glibc.malloc.hugetlb=0"
    # put back even when starting the children fails
    monkeypatch.delenv("GLIBC_TUNABLES")
    try:
        with child_env():
            raise OSError("no fork")
    except OSError:
        pass
    assert "GLIBC_TUNABLES" not in os.environ
