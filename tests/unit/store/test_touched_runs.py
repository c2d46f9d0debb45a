"""The touched index's hash -> groups runs (store/touched_runs.py): parts round-trip, a run cut into
parts by top bits holds every posting once, and runs merged level by level (whatever bits each has)
answer every needle with exactly the groups holding a hash of its top 48 bits."""

from __future__ import annotations

from array import array
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.store import touched_runs as tr

hashes64 = st.integers(min_value=0, max_value=2**64 - 1)


def test_a_part_round_trips_and_a_damaged_one_is_refused() -> None:
    a = array("Q", [1, 5 << 16, (5 << 16) | 3, 2**64 - 1])
    data = tr.encode_part(a)
    assert tr.decode_part(data) == a
    with pytest.raises(tr.RunError):
        tr.decode_part(b"XXXX" + data[4:])
    with pytest.raises(tr.RunError):
        tr.decode_part(data[:-3])
    assert tr.numbers_of(a, (5 << 16) | 0x1234) == [0, 3] and tr.numbers_of(a, 4 << 16) == []


def test_bits_grow_with_the_postings_up_to_the_cap() -> None:
    assert tr.bits_for(0) == 0 and tr.bits_for(tr.PART_POSTINGS) == 0 and tr.bits_for(tr.PART_POSTINGS + 1) == 1
    assert tr.bits_for(10**12) == tr.MAX_BITS
    assert [tr.bits_for(n, 4) for n in (4, 5, 8, 9, 16, 17)] == [0, 1, 1, 2, 2, 3]


def test_a_group_number_past_sixteen_bits_gets_no_run() -> None:
    assert list(tr.level0([[7 << 16, (7 << 16) | 9]], tr.MAX_NUMBER)) == [(7 << 16) | tr.MAX_NUMBER]
    with pytest.raises(ValueError):
        tr.level0([[1]], tr.MAX_NUMBER + 1)


@given(st.sets(hashes64, max_size=200), st.integers(min_value=0, max_value=6))
def test_a_run_cut_into_parts_holds_each_posting_once_in_the_part_its_top_bits_name(hs: set[int], bits: int) -> None:
    a = tr.level0([hs], 3)
    parts = tr.cut(a, bits)
    assert len(parts) == 1 << bits
    assert array("Q", [x for p in parts for x in p]) == a
    for p, part in enumerate(parts):
        assert all(tr.part_of(x, bits) == p for x in part)


def _level0(groups: list[set[int]], per_part: int) -> list[dict[str, Any]]:
    """A level-0 run of each group (numbered in order), in memory: bits, numbers and parts."""
    out = []
    for n, g in enumerate(groups):
        a = tr.level0([g], n)
        bits = tr.bits_for(len(a), per_part)
        out.append({"bits": bits, "numbers": [n], "postings": len(a), "parts": tr.cut(a, bits)})
    return out


def _merge(runs: list[dict[str, Any]], per_part: int) -> dict[str, Any]:
    bits = tr.bits_for(sum(r["postings"] for r in runs), per_part)
    inputs = [(r["bits"], lambda q, r=r: r["parts"][q]) for r in runs]
    parts = [tr.merged_part(p, bits, inputs) for p in range(1 << bits)]
    return {"bits": bits, "numbers": [n for r in runs for n in r["numbers"]], "postings": sum(map(len, parts)),
            "parts": parts}


def _holders(run: dict[str, Any], needle: int) -> set[int]:
    return set(tr.numbers_of(run["parts"][tr.part_of(needle, run["bits"])], needle))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(hashes64 | st.integers(min_value=0, max_value=2**20), max_size=60), min_size=16, max_size=16),
       st.integers(min_value=1, max_value=16), st.lists(hashes64, max_size=10))
def test_runs_merged_two_levels_answer_each_needle_with_exactly_the_groups_holding_its_prefix(
        groups: list[set[int]], per_part: int, extra: list[int]) -> None:
    level0 = _level0(groups, per_part)
    level1 = [_merge(level0[i:i + 4], per_part) for i in range(0, 16, 4)]
    level2 = _merge(level1, per_part)
    # every posting once, sorted, each in its part
    flat = [x for part in level2["parts"] for x in part]
    assert flat == sorted({(h & tr.PREFIX_MASK) | n for n, g in enumerate(groups) for h in g})
    for p, part in enumerate(level2["parts"]):
        assert all(tr.part_of(x, level2["bits"]) == p for x in part)
    for needle in [h for g in groups for h in g][:50] + extra:
        want = {n for n, g in enumerate(groups) if any(h >> 16 == needle >> 16 for h in g)}
        assert _holders(level2, needle) == want
        assert set().union(*(_holders(r, needle) for r in level1)) == want
        assert any(needle in g for g in groups) <= bool(want)  # never a miss


def _entry(level: int, first: int, groups: int = 1, numbers: list[int] | None = None) -> tr.Run:
    firsts = list(range(first, first + 10 * groups, 10))
    return tr.Run(level, first, first + 9, firsts, numbers or [f // 10 for f in firsts], 0, 1, 0, [[1]],
                  key=f"{level}/{first}".encode())


def test_a_merge_is_due_for_the_oldest_fanin_runs_of_the_lowest_level_that_has_them() -> None:
    assert tr.due([_entry(0, i * 10) for i in range(3)]) is None
    runs = [_entry(1, 0, 4), *(_entry(0, 40 + i * 10) for i in range(5))]
    assert [r.first for r in tr.due(runs) or []] == [40, 50, 60, 70]
    runs = [*(_entry(1, i * 40, 4) for i in range(4)), _entry(0, 160)]
    assert [r.first for r in tr.due(runs) or []] == [0, 40, 80, 120]
    # groups whose numbers meet (an entry rewritten by hand) are not merged
    assert tr.due([_entry(0, i * 10, numbers=[7]) for i in range(4)]) is None


def test_an_entry_round_trips_and_a_damaged_one_is_refused() -> None:
    run = tr.Run(1, 0, 99, [0, 50], [4, 5], 1, 7, 3, [[10], [11, 12]], key=b"k")
    assert tr.parse(orjson.dumps(run.entry("c")), b"k") == run
    bad = [b"{", orjson.dumps({**run.entry("c"), "parts": [[10]]}), orjson.dumps({**run.entry("c"), "groups": []}),
           orjson.dumps({**run.entry("c"), "groups": [[4, 0], [4, 50]]})]
    for b in bad:
        with pytest.raises(tr.RunError):
            tr.parse(b)


async def test_a_lookup_reads_one_part_a_run_a_needle_and_answers_all_groups_of_a_run_it_cannot_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stored = {(0, 0): array("Q", [(3 << 16) | 0, (9 << 16) | 0]), (1, 1): None}
    runs = [tr.Run(0, 0, 9, [0], [0], 0, 2, 0, [[1]]), tr.Run(1, 10, 49, [10, 20, 30, 40], [1, 2, 3, 4], 1, 0, 0,
                                                                 [[2], [3]])]
    reads = []

    async def read_part(settings: Any, run: tr.Run, p: int, reader_of: Any = None) -> Any:
        reads.append((run.first, p))
        return stored.get((run.level, p), array("Q"))

    monkeypatch.setattr(tr, "read_part", read_part)
    lk = tr.Lookup(None, runs)
    assert await lk.groups_holding([(3 << 16) | 77]) == {0}  # top bit 0: run 1's part 0 holds nothing
    assert await lk.groups_holding([2**63 + 1]) == {10, 20, 30, 40}  # run 1's part 1 unreadable
    assert await lk.groups_holding([3 << 16]) == {0} and reads == [(0, 0), (10, 0), (10, 1)]  # parts kept
    assert lk.covered() == {0, 10, 20, 30, 40}
