"""The warm read's cost model (kmevents/api/timetravel.py ``plans``): the plan tried first is the cheapest."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kmevents.api.timetravel import (
    DELTA_BYTES_PER_RECORD,
    FULL_BYTES_PER_RECORD,
    SEGMENT_BYTES_PER_RECORD,
    plan_cost,
    plans,
)
from kmevents.reducer import REDUCER_VERSION

MB = 1_000_000


def full(offset: int, size: int) -> dict[str, Any]:
    return {"offset": offset, "bytes": size, "kind": "full", "reducer_version": REDUCER_VERSION}


def delta(offset: int, base: int, size: int) -> dict[str, Any]:
    return {"offset": offset, "bytes": size, "kind": "delta", "base": base, "reducer_version": REDUCER_VERSION}


#: the quick large log's index around 240,000: a full snapshot every 20,000 offsets, deltas every 4,000
INDEX = [full(219_999, 34 * MB), delta(223_999, 219_999, 4 * MB), delta(227_999, 219_999, 8 * MB),
         delta(231_999, 219_999, 11 * MB), delta(235_999, 219_999, 13 * MB), full(239_999, 36 * MB),
         delta(243_999, 239_999, 4 * MB), delta(247_999, 239_999, 8 * MB)]


def test_a_long_fold_from_a_held_state_loses_to_a_delta_and_its_base() -> None:
    # held at 237,177 (a read there, in the interval of the 34 MB snapshot), read at 248,134:
    # 10,957 records in 3 segments of 4,000
    ps = plans(INDEX, 248_134, 0, 237_177, every=4_000)
    best = ps[0]
    assert best.entry is not None and best.entry["offset"] == 247_999
    assert (best.full_bytes, best.delta_bytes) == (36 * MB, 8 * MB)
    fold = next(p for p in ps if p.entry is None)
    assert fold.segments == 3
    assert fold.cost == 10_957 + 2 * 34 * MB / SEGMENT_BYTES_PER_RECORD
    assert best.cost == 135 + 36 * MB / FULL_BYTES_PER_RECORD + 8 * MB / DELTA_BYTES_PER_RECORD < fold.cost


def test_a_short_fold_from_a_held_state_wins() -> None:
    ps = plans(INDEX, 239_000, 0, 237_177, every=4_000)
    assert ps[0].entry is None and ps[0].start == 237_177 and ps[0].cost == 1_823


def test_a_delta_whose_base_is_held_costs_only_its_own_bytes() -> None:
    ps = plans(INDEX, 245_000, 0, 240_500, lambda o: o == 239_999, every=4_000)
    assert ps[0].entry is not None and ps[0].entry["offset"] == 243_999
    assert (ps[0].full_bytes, ps[0].delta_bytes) == (0, 4 * MB)
    # not held: the base's bytes count too, and the fold from 240,500 (4,500 records) is cheaper
    ps = plans(INDEX, 245_000, 0, 240_500, every=4_000)
    assert ps[0].entry is None and ps[0].start == 240_500
    assert next(p for p in ps if p.start == 243_999).full_bytes == 36 * MB


def test_stored_states_before_the_held_one_or_the_logs_start_are_not_plans() -> None:
    starts = {p.start for p in plans(INDEX, 248_134, 0, 237_177, every=4_000)}
    assert starts == {237_177, 239_999, 243_999, 247_999}
    starts = {p.start for p in plans(INDEX, 248_134, 230_000, None, every=4_000)}
    assert starts == {229_999, 231_999, 235_999, 239_999, 243_999, 247_999}
    old = [dict(e, reducer_version=REDUCER_VERSION - 1) for e in INDEX]
    assert [p.entry for p in plans(old, 248_134, 0, None, every=4_000)] == [None]


@st.composite
def indexes(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, int | None, set[int]]:
    entries: list[dict[str, Any]] = []
    base = None
    for i in range(draw(st.integers(0, 12))):
        off = 999 + 1_000 * i
        if base is None or draw(st.booleans()):
            entries.append(full(off, draw(st.integers(1, 40)) * MB))
            base = off
        else:
            entries.append(delta(off, base, draw(st.integers(1, 20)) * MB))
    end = draw(st.integers(0, 14_000))
    held = draw(st.one_of(st.none(), st.integers(0, end)))
    held_bases = set(draw(st.lists(st.sampled_from([e["offset"] for e in entries]), max_size=3))) if entries else set()
    return entries, end, held, held_bases


@given(indexes(), st.integers(1, 5_000))
def test_the_first_plan_is_the_cheapest_of_all_ways_to_build_the_state(case: Any, every: int) -> None:
    entries, end, held, held_bases = case
    ps = plans(entries, end, 0, held, held_bases.__contains__, every=every)
    # every way, costed from its parts independently
    sizes = {e["offset"]: e["bytes"] for e in entries if e["kind"] == "full"}
    costs = []
    if held is None:
        costs.append(float(end + 1))
    else:
        segs = max(1, -(-(end - held) // every))
        near = max((o for o in sizes if o <= held), default=None)
        costs.append(plan_cost(end - held, segments=segs, state_bytes=0 if near is None else sizes[near]))
    for e in entries:
        if e["offset"] > end or (held is not None and e["offset"] <= held):
            continue
        if e["kind"] == "full":
            costs.append(plan_cost(end - e["offset"], full_bytes=e["bytes"]))
        else:
            base = 0 if e["base"] in held_bases else sizes[e["base"]]
            costs.append(plan_cost(end - e["offset"], full_bytes=base, delta_bytes=e["bytes"]))
    assert sorted(p.cost for p in ps) == sorted(costs)
    assert ps[0].cost == min(costs)
    assert [p.cost for p in ps] == sorted(p.cost for p in ps)
