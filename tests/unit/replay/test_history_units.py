"""How indexed history cuts the log into units (replay/history.py ``_units``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from kmevents.replay.history import _units

from kmevents.store.touched import Block


def test_ranges_no_block_covers_are_units_without_a_block_and_always_folded() -> None:
    blocks = [Block(0, 99), Block(100, 199), Block(300, 399)]
    got = [(u.first, u.last, u.block is not None) for u in _units(blocks, 0, 450)]
    assert got == [(0, 99, True), (100, 199, True), (200, 299, False), (300, 399, True), (400, 450, False)]


def test_a_block_past_the_end_of_the_source_is_folded_as_not_indexed() -> None:
    got = [(u.first, u.last, u.block is not None) for u in _units([Block(0, 99), Block(100, 199)], 0, 150)]
    assert got == [(0, 99, True), (100, 150, False)]


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 80)), max_size=12), st.integers(0, 50),
       st.integers(0, 600))
def test_units_cover_every_offset_once_in_order_and_a_block_unit_lies_inside_its_block(
        spans: list[tuple[int, int]], first: int, length: int) -> None:
    blocks = sorted((Block(a, a + n) for a, n in spans), key=lambda b: b.first)
    last = first + length
    units = _units(blocks, first, last)
    covered = [o for u in units for o in range(u.first, u.last + 1)]
    assert covered == list(range(first, last + 1))  # nothing skipped unseen, nothing twice
    for u in units:
        if u.block is not None:
            assert u.block.first <= u.first <= u.last <= u.block.last


def test_a_fold_starts_from_the_state_that_costs_least_to_decode_and_fold_on_from() -> None:
    from kmevents.replay.history import BYTES_PER_RECORD, Indexed, _cheaper

    from kmevents.store.snapshots import Snapshots

    big = {"offset": 1000, "bytes": 8000 * BYTES_PER_RECORD}
    small = {"offset": 5000, "bytes": 1000 * BYTES_PER_RECORD}
    delta = {"offset": 9000, "bytes": 500 * BYTES_PER_RECORD, "kind": "delta", "base": 1000}
    idx = Indexed([], Snapshots())
    idx._entries = [big, small, delta]
    # to reach 9,999 from the start (10,000 records): the small full one 1,000 + 4,999; the delta
    # needs its big base decoded too, 8,000 + 500 + 999; the big one alone 8,000 + 8,999 costs more
    assert _cheaper(idx, "c", 9999, -1) == [small, delta]
    # folding on from 6,000 (3,999 records) beats every state after it
    assert _cheaper(idx, "c", 9999, 6000) == []
    # once the snapshot store holds the base (it decoded a delta against it), the delta costs its own bytes
    idx.snapshots._held_base = ("c", 1000, None)  # type: ignore[assignment, union-attr]
    assert _cheaper(idx, "c", 9999, -1)[0] is delta
    assert _cheaper(idx, "c", 9999, 6000) == [delta]


def test_a_delta_whose_base_the_history_decoded_costs_its_own_bytes_and_goes_onto_a_fork_of_that_base() -> None:
    """The store holds only the base of the last delta it loaded; a base this history decoded for
    an earlier unit (``Indexed._states``) is not decoded a second time for a delta against it."""
    import asyncio

    from kmevents.replay.history import BYTES_PER_RECORD, Indexed, _cheaper, _decode_cost, _load

    from kmevents.reducer import ClusterState
    from kmevents.store.snapshots import Snapshots

    class Store(Snapshots):
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        async def load(self, entry: dict[str, Any]) -> ClusterState | None:
            self.calls.append(("load", entry["offset"]))
            return ClusterState.empty("c")

        async def delta_onto(self, base: ClusterState, entry: dict[str, Any]) -> ClusterState | None:
            self.calls.append(("delta_onto", base))
            return base

    full = {"offset": 1000, "bytes": 8000 * BYTES_PER_RECORD}
    delta = {"offset": 9000, "bytes": 500 * BYTES_PER_RECORD, "kind": "delta", "base": 1000}
    store = Store()
    idx = Indexed([], store)
    idx._entries = [full, delta]
    assert _decode_cost(idx, "c", delta) == 8500  # its base decoded too
    assert _cheaper(idx, "c", 9999, -1) == [delta]  # 8,500 + 999; the full one 8,000 + 8,999
    held = ClusterState.empty("c").freeze()
    idx._states[1000] = held
    assert _decode_cost(idx, "c", delta) == 500 and _decode_cost(idx, "c", full) == 0
    assert _cheaper(idx, "c", 9999, -1) == [delta, full]  # 500 + 999, then 0 + 8,999
    got = asyncio.run(_load(idx, delta))
    assert store.calls == [("delta_onto", got)] and got is not held  # a fork of it: the held state stays as it is
    assert asyncio.run(_load(idx, full)) is not None and store.calls[-1] == ("load", 1000)


def test_a_delta_state_is_folded_on_as_it_is_and_a_full_one_kept_to_fork_from() -> None:
    """Keeping a delta's state would first pack the values it put in; a full state is kept (read
    only) and each fold gets a fork of it."""
    import asyncio

    from kmevents.replay.history import BYTES_PER_RECORD, Indexed, _start_from

    from kmevents.reducer import ClusterState
    from kmevents.store.snapshots import Snapshots

    made: list[ClusterState] = []

    class Store(Snapshots):
        async def entries(self, cluster: str) -> list[dict[str, Any]]:
            return [full, delta]

        async def load(self, entry: dict[str, Any]) -> ClusterState | None:
            made.append(ClusterState.empty("c"))
            return made[-1]

    full = {"offset": 1000, "bytes": 10 * BYTES_PER_RECORD}
    delta = {"offset": 9000, "bytes": 10 * BYTES_PER_RECORD, "kind": "delta", "base": 1000}
    idx = Indexed([], Store())
    got = asyncio.run(_start_from(idx, "c", 0, 9999))
    assert got is not None and got[1] == 9000 and got[0] is made[-1] and 9000 not in idx._states
    got = asyncio.run(_start_from(idx, "c", 0, 1500))
    assert got is not None and got[1] == 1000 and idx._states[1000] is made[-1] and got[0] is not made[-1]
    assert asyncio.run(_start_from(idx, "c", 0, 1500))[0] is not got[0]  # type: ignore[index]  # a new fork, no load
    assert len(made) == 2 and idx.loads == 2


def test_a_state_folded_on_from_unit_to_unit_packs_again_past_pack_from(monkeypatch: Any) -> None:
    """Values stay decoded only while the state has folded at most PACK_FROM records since it began:
    an entity touched in every block would otherwise leave the whole log's values decoded."""
    import asyncio

    import orjson
    from kmevents.replay import history
    from kmevents.replay.records import LogRecord
    from kmevents.replay.sources import Source

    from kmevents.simulate import generate

    recs = [LogRecord(i, i, b"c1", orjson.dumps(ev)) for i, ev in enumerate(generate("c1", 5, 4000, agents=8))]

    class Recs(Source):
        name, partition = "list", 0

        async def covers(self) -> tuple[int, int]:
            return 0, len(recs) - 1

        async def chain_start(self) -> str | None:
            return None

        async def batches(self, start: int, end: int | None) -> Any:
            yield recs[start:(len(recs) - 1 if end is None else end) + 1]

    monkeypatch.setattr(history, "PACK_FROM", 1500)
    packs: dict[int, bool] = {}

    def hook(rec: LogRecord, ev: Any, anns: Any, st: Any) -> None:
        packs.setdefault(rec.offset // 1000, st.packs)

    idx = history.Indexed([Block(a, a + 999) for a in range(0, 4000, 1000)])
    asyncio.run(history._fold_units(Recs(), "c1", idx, lambda b: True, hook))
    assert idx.folded == 4 and idx.loads == 0
    assert packs == {0: False, 1: True, 2: True, 3: True}  # 1,000 records since the start, then 2,000, ...
