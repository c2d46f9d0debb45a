"""``verify --versions``'s check of the touched-entity index (replay/verify_versions.py, ``_IndexCheck``):
blocks as the worker hashes them pass; a block that lacks an entity's key, one of its names, or a
correlation id is named, with what it lacks."""

from __future__ import annotations

from array import array

from kmevents.replay.verify_versions import _IndexCheck

from kmevents import chain
from kmevents.folding import APPLIED, Fold
from kmevents.reducer import ClusterState
from kmevents.store import touched
from tests.unit.replay.test_history_versions import BLOCKS, CLUSTER, RECS


def _check(blocks: list[touched.Block]) -> _IndexCheck:
    check = _IndexCheck(blocks)
    f = Fold(ClusterState.empty(CLUSTER), chain.GENESIS, partition=0)
    for r in RECS:
        if f.step(r.offset, r.key, r.value) is APPLIED:
            assert f.event is not None
            check.event(r.offset, f.event, f.state.take_dirty(), f.state)
    check.close_through(RECS[-1].offset + 1)
    return check


def _without(b: touched.Block, h: int) -> touched.Block:
    assert b.holds(h)
    return touched.Block(b.first, b.last, b.events, b.max_occurred_at, array("Q", [x for x in b.hashes if x != h]))


def test_the_blocks_the_worker_hashes_hold_everything_their_events_changed() -> None:
    got = _check(BLOCKS)
    assert (got.checked, got.differ) == (len(BLOCKS), [])


def test_a_block_lacking_a_key_a_name_or_a_correlation_id_is_named_with_what_it_lacks() -> None:
    b = BLOCKS[3]
    f = Fold(ClusterState.empty(CLUSTER), chain.GENESIS, partition=0)
    pod = corr = None
    for r in RECS[:b.last + 1]:
        if f.step(r.offset, r.key, r.value) is APPLIED and r.offset >= b.first:
            assert f.event is not None
            pod = next((k for k in f.state.take_dirty() if k[0] == "pod" and f.state.entity_read(*k)), pod)
            corr = f.event.get("correlation_id") or corr
        else:
            f.state.take_dirty()
    assert pod is not None and type(corr) is str
    value = f.state.entity_read(*pod)
    assert value is not None
    for lacking, named in ((touched.key(*pod), f"{pod[0]}/{pod[1]}"),
                           (touched.name("pod", value["name"]), f"{pod[0]}/{pod[1]}"),
                           (touched.corr(corr), f"correlation id {corr}")):
        got = _check([*BLOCKS[:3], _without(b, lacking), *BLOCKS[4:]])
        assert got.checked == len(BLOCKS) and [k for k, _ in got.differ] == [f"touched/{b.first}..{b.last}"]
        assert named in got.differ[0][1], got.differ
