"""How a backfill cuts the blocks it builds into runs folded in one read of the log
(replay/versions_backfill.py ``_runs``), and how a follower adds its passes up (``Pass.add``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kmevents.replay.versions_backfill import RUN_BLOCKS, Pass, _runs

from kmevents.store.touched import Block


@st.composite
def blocks_in_order(draw: st.DrawFn) -> list[Block]:
    """Blocks in log order: each starts right after the one before, or after a gap."""
    out, at = [], 0
    for size, gap in draw(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 3)), max_size=60)):
        at += gap
        out.append(Block(at, at + size - 1))
        at += size
    return out


@given(blocks_in_order())
def test_runs_are_the_blocks_in_order_cut_only_at_gaps_or_when_full(blocks: list[Block]) -> None:
    runs = _runs(blocks)
    assert [b for r in runs for b in r] == blocks
    for r in runs:
        assert 1 <= len(r) <= RUN_BLOCKS
        assert all(a.last + 1 == b.first for a, b in zip(r, r[1:], strict=False))
    for a, b in zip(runs, runs[1:], strict=False):  # a cut: a gap, or the run before it was full
        assert a[-1].last + 1 != b[0].first or len(a) == RUN_BLOCKS


def test_a_gap_starts_a_run() -> None:
    runs = _runs([Block(0, 9), Block(10, 19), Block(30, 39)])
    assert [[(b.first, b.last) for b in r] for r in runs] == [[(0, 9), (10, 19)], [(30, 39)]]


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10**6), st.integers(0, 3), st.integers(0, 9000),
                          st.integers(0, 200)), min_size=1, max_size=8))
def test_a_followers_totals_sum_what_its_passes_did_and_keep_the_last_ones_view(
        passes: list[tuple[int, int, int, int, int]]) -> None:
    made = []
    for built, size, loads, folded, blocks in passes:
        made.append(Pass("c", blocks=blocks, had=blocks // 2, missing=[(0, 1)] * (blocks % 3), built=built,
                         bytes=size, stored_bytes=size // 3, loads=loads, folded=folded, seconds=0.5,
                         left_to_worker=blocks % 4, skipped=None if built else "nothing"))
    total = Pass("c")
    for p in made:
        total.add(p)
    got, last = total.as_dict(), made[-1].as_dict()
    for key, attr in (("built", "built"), ("bytes", "bytes"), ("stored_bytes", "stored_bytes"),
                      ("states_loaded", "loads"), ("records_folded", "folded")):
        assert got[key] == sum(getattr(p, attr) for p in made)
    assert got["seconds"] == round(0.5 * len(made), 3)
    for key in ("blocks", "had_records", "missing", "missing_blocks", "left_to_worker", "overlapping", "skipped"):
        assert got[key] == last[key]
