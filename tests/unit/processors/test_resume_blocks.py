"""Which snapshot a restore starts from, so that the open touched-index block is resumed."""

from __future__ import annotations

from array import array
from typing import Any, cast

from kmevents.processors.derive import PartitionDeriver

from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint
from kmevents.store.touched import Block


def _deriver(ckpt: int, blocks: dict[str, Block], snapshot_every: int = 550) -> PartitionDeriver:
    d = PartitionDeriver(Settings(), cast(Any, None), 0, worker_id="w", snapshot_every_events=snapshot_every,
                         touched_every_events=200)
    d.checkpoint = Checkpoint(partition=0, offset=ckpt, chains={c: "x" for c in blocks})
    d.block_ends = dict(blocks)
    return d


def _block(first: int, last: int, events: int = 200) -> Block:
    return Block(first, last, events, None, array("Q"))


def test_the_restore_starts_before_the_open_block_from_the_snapshot_before_its_start() -> None:
    d = _deriver(1129, {"c": _block(800, 999)})
    assert d.restore_ceiling("c", [599, 1099]) == 999
    assert "c" in d.block_ends
    d.begin_restore({}, {}, start=600)
    assert d.touched["c"].first == 1000 and d.touched["c"].events == 0


def test_a_block_closed_at_the_checkpoint_resumes_without_a_refold() -> None:
    d = _deriver(999, {"c": _block(800, 999)})
    assert d.restore_ceiling("c", [599, 999]) == 999
    d.begin_restore({}, {}, start=1000)
    assert d.touched["c"].first == 1000  # not the first record after it: other clusters' may come first


def test_a_cluster_without_a_closed_block_restores_from_the_newest_snapshot_and_resumes_nothing() -> None:
    d = _deriver(1129, {})
    assert d.restore_ceiling("c", [599, 1099]) == 1129
    d.begin_restore({}, {}, start=1100)
    assert d.touched == {}


def test_a_refold_over_two_snapshot_intervals_is_not_done_the_range_stays_unindexed() -> None:
    # the index was off from 1000 on: the snapshot before the block is 10,000 events older
    d = _deriver(11_200, {"c": _block(800, 999)})
    assert d.restore_ceiling("c", [599, 11_000]) == 11_200
    assert "c" not in d.block_ends
    d.begin_restore({}, {}, start=11_001)
    assert d.touched == {}


def test_the_refold_cost_counts_the_clusters_events_not_the_partitions_offsets() -> None:
    # a block of 200 events over 2,000 offsets (other clusters between): 10,500 offsets are ~1,050 events
    d = _deriver(12_000, {"c": _block(8_000, 9_999)})
    assert d.restore_ceiling("c", [995, 11_500]) == 9_999
    d = _deriver(12_000, {"c": _block(8_000, 9_999, events=2_000)})
    assert d.restore_ceiling("c", [995, 11_500]) == 12_000


def test_a_restore_from_past_the_blocks_end_resumes_nothing() -> None:
    d = _deriver(1129, {"c": _block(800, 999)})
    d.begin_restore({}, {}, start=1100)  # the caller read records from past the block's end
    assert d.touched == {}
