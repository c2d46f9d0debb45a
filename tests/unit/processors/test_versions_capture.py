"""The worker's entity-versions records (store/versions.py), with etcd replaced by a recorder:
each closed touched-index block's record equals a plain fold's capture (the dirty set taken
after each applied event), and taking those sets per event leaves the batch's etcd writes as
they were."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pytest
from kmevents.processors.derive import BatchOutcome, PartitionDeriver

from kmevents import folding, layout
from kmevents.folding import APPLIED, Fold
from kmevents.reducer import ClusterState
from kmevents.settings import Settings
from kmevents.simulate import generate
from kmevents.store import touched, versions
from kmevents.store.touched import Block

CLUSTER = "c1"


@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def _records(n: int, seed: int = 3, *, junk_at: tuple[int, ...] = ()) -> list[Rec]:
    out = []
    for i, ev in enumerate(generate(CLUSTER, seed, n, agents=6)):
        value = b"not json" if i in junk_at else orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)
        out.append(Rec(0, i, CLUSTER.encode(), value))
    return out


class _Recorded(PartitionDeriver):
    """A deriver whose transactions are recorded instead of sent to etcd."""

    def __init__(self, max_txn_ops: int = 1024, **kw: Any) -> None:
        s = Settings()
        s.etcd.max_txn_ops = max_txn_ops
        super().__init__(s, cast(Any, None), 0, worker_id="w", snapshot_every_events=10**9,
                         delta_every_events=0, **kw)
        self.txns: list[dict[bytes, bytes | None]] = []

    async def _guarded_txn(self, ops: dict[bytes, bytes | None], *, moves_checkpoint: Any) -> tuple[bool, int]:
        self.txns.append(dict(ops))
        return True, len(self.txns)


def _derive(d: _Recorded, records: list[Rec], batch: int) -> list[tuple[str, int, int, bytes]]:
    async def run() -> list[tuple[str, int, int, bytes]]:
        got = []
        for i in range(0, len(records), batch):
            out: BatchOutcome = await d.process(records[i:i + batch])
            got += out.versions
        return got
    return asyncio.run(run())


def _blocks(d: _Recorded) -> list[Block]:
    prefix = layout.touched_index_prefix(f"{d.prefix}/{d.generation}", CLUSTER)
    vals = {k: v for t in d.txns for k, v in t.items() if k.startswith(prefix)}
    return sorted((touched.decode(v) for v in vals.values() if v is not None), key=lambda b: b.first)


def oracle(records: Sequence[Any], spans: list[tuple[int, int]], cluster: str = CLUSTER, partition: int = 0
           ) -> dict[int, bytes]:
    """Each block's record (by first offset) from a plain fold of ``records`` (the cluster's, from
    the log's start): the dirty set taken after each applied event only, as history's hook takes it."""
    f = Fold(ClusterState.empty(cluster), partition=partition)
    cap = versions.Capture()
    out = {}
    ends = dict(spans)
    first = spans[0][0]
    for rec in records:
        if rec.offset > spans[-1][1]:
            break
        if f.step(rec.offset, rec.key, rec.value) is APPLIED:
            dirty = f.state.take_dirty()
            if rec.offset >= first:  # (the spans tile the log from the first one's start)
                cap.event(rec.offset, dirty, f.state, f.anns)
        if ends.get(first) == rec.offset:
            raw = cap.close(cluster, first, rec.offset)
            assert raw is not None
            out[first] = raw
            first = rec.offset + 1
    return out


@pytest.mark.parametrize("max_txn_ops", [1024, 60])  # 60: batches are committed in parts as they fill
def test_each_closed_block_gets_the_record_a_plain_fold_captures_and_the_etcd_writes_stay_as_without(
        max_txn_ops: int) -> None:
    records = _records(2300, junk_at=(7, 640))
    on = _Recorded(max_txn_ops, touched_every_events=200)
    off = _Recorded(max_txn_ops, touched_every_events=200, versions=False)
    got = _derive(on, records, 170)  # blocks close inside batches and at their ends
    assert _derive(off, records, 170) == []
    blocks = _blocks(on)
    assert len(blocks) == 11 and [(b.first, b.last) for b in blocks] == [(b.first, b.last) for b in _blocks(off)]
    assert [(c, f, la) for c, f, la, _ in got] == [(CLUSTER, b.first, b.last) for b in blocks]
    want = oracle(records, [(b.first, b.last) for b in blocks])
    for _, first, _, raw in got:
        assert raw == want[first], first
    rec = versions.decode(got[3][3])
    assert rec.applied and all(rec.dirty_at(o) for o in rec.applied[:20])
    # the same keys and values in the same transactions, the touched blocks included
    assert [set(t) for t in on.txns] == [set(t) for t in off.txns]
    assert on.txns == off.txns
    assert len(on.txns) > (2300 // 170 + 1) * (max_txn_ops < 100)


def test_a_fold_failed_events_changes_go_with_the_next_applied_event_even_across_a_batch_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(900)
    real = folding.apply

    def failing(st: ClusterState, ev: dict[str, Any], **kw: Any) -> Any:
        anns = real(st, ev, **kw)
        if kw.get("offset") in (298, 449):  # changed the state, then raised
            raise RuntimeError("boom")
        return anns

    monkeypatch.setattr(folding, "apply", failing)
    on, off = _Recorded(touched_every_events=200), _Recorded(touched_every_events=200, versions=False)
    # 449 is the last record of its batch, whose flush collects what it marked; the next applied
    # event (450) changes none of those entities: its versions have them only if they were kept
    got = _derive(on, records, 150)
    _derive(off, records, 150)
    blocks = _blocks(on)
    want = oracle(records, [(b.first, b.last) for b in blocks])
    assert len(got) == len(blocks) == 4
    for _, first, _, raw in got:
        assert raw == want[first], first
    for failed in (298, 449):
        rec = versions.decode(next(raw for _, f, la, raw in got if f <= failed <= la))
        assert failed not in rec.applied and failed + 1 in rec.applied
        assert not rec.dirty_at(failed) and rec.dirty_at(failed + 1) > versions.decode(
            _oracle_without_failures(records, failed + 1)).dirty_at(failed + 1)
    assert on.txns == off.txns


def _oracle_without_failures(records: list[Rec], offset: int) -> bytes:
    """A record of the event at ``offset`` alone, folded after everything before it (no failures)."""
    f = Fold(ClusterState.empty(CLUSTER), partition=0)
    for rec in records[:offset]:
        f.step(rec.offset, rec.key, rec.value)
    f.state.take_dirty()
    cap = versions.Capture()
    rec = records[offset]
    f.step(rec.offset, rec.key, rec.value)
    cap.event(offset, f.state.take_dirty(), f.state, f.anns)
    out = cap.close(CLUSTER, offset, offset)
    assert out is not None
    return out


def _restarted(records: list[Rec], ckpt: int, every: int = 200
               ) -> tuple[list[tuple[str, int, int, bytes]], dict[int, bytes]]:
    """A worker derives ``records`` up to ``ckpt`` and stops; another restores (resuming the open
    block from the last one closed) and derives the rest: its records, and the oracle's."""
    before = _Recorded(touched_every_events=200)
    _derive(before, records[:ckpt + 1], 100)
    closed = _blocks(before)[-1]
    assert closed.last == 999
    d = _Recorded(touched_every_events=every)
    d.checkpoint.offset = ckpt
    d.checkpoint.chains = {CLUSTER: "x"}
    d.block_ends = {CLUSTER: closed}
    d.begin_restore({}, {}, start=0)
    d.restore_batch(records[:ckpt + 1])
    d.end_restore()
    got = _derive(d, records[ckpt + 1:], 100)
    return got, oracle(records, [(b.first, b.last) for b in _blocks(before) + _blocks(d)])


def test_a_restored_block_gets_no_record_the_blocks_after_it_do() -> None:
    # the first worker stopped with the block 1000.. open at 1129: 1000..1129 are re-folded
    got, want = _restarted(_records(1500), 1129)
    assert [(f, la) for _, f, la, _ in got] == [(1200, 1399)]
    assert got[0][3] == want[1200]


def test_blocks_a_restore_closes_under_a_smaller_size_get_no_record_nor_does_the_one_it_leaves_open() -> None:
    # blocks of 50: the restore closes 1000..1049 and 1050..1099 and leaves 1100.. open at 1129
    got, want = _restarted(_records(1300), 1129, every=50)
    assert [(f, la) for _, f, la, _ in got] == [(1150, 1199), (1200, 1249), (1250, 1299)]
    assert all(raw == want[f] for _, f, _, raw in got)


def test_a_block_resumed_right_after_the_checkpoint_is_captured_whole() -> None:
    got, want = _restarted(_records(1300), 999)
    assert [(f, la) for _, f, la, _ in got] == [(1000, 1199)]
    assert got[0][3] == want[1000]


def test_without_the_touched_index_there_are_no_versions() -> None:
    d = _Recorded(touched_every_events=0)
    assert not d.versions
    assert _derive(d, _records(500), 100) == [] and not d.captures
