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


def _fail_after_applying(monkeypatch: pytest.MonkeyPatch, offsets: tuple[int, ...]) -> None:
    """The fold's apply, at ``offsets``, changes the state and then raises (a fold-failed event)."""
    real = folding.apply

    def failing(st: ClusterState, ev: dict[str, Any], **kw: Any) -> Any:
        anns = real(st, ev, **kw)
        if kw.get("offset") in offsets:
            raise RuntimeError("boom")
        return anns

    monkeypatch.setattr(folding, "apply", failing)


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
    _fail_after_applying(monkeypatch, (298, 449))
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


# -- the open block's parts, written by live batches ------------------------------------------

def _derive_live(d: _Recorded, records: list[Rec], batch: int, live: Any = lambda i: True
                 ) -> list[dict[bytes, bytes]]:
    """Derive ``records`` in batches (batch ``i`` live when ``live(i)``); etcd's keys after each
    batch (the recorded transactions applied in order)."""
    async def run() -> list[dict[bytes, bytes]]:
        store: dict[bytes, bytes] = {}
        after = []
        for n, i in enumerate(range(0, len(records), batch)):
            before = len(d.txns)
            await d.process(records[i:i + batch], live=live(n))
            for t in d.txns[before:]:
                for k, v in t.items():
                    if v is None:
                        store.pop(k, None)
                    else:
                        store[k] = v
            after.append(dict(store))
        return after
    return asyncio.run(run())


def _open_parts(d: _Recorded, store: dict[bytes, bytes]) -> tuple[Block | None, list[versions.Versions]]:
    """The open block in ``store`` and the parts of records there (ascending)."""
    from kmevents.store import snapshots

    gen = f"{d.prefix}/{d.generation}"
    raw = store.get(layout.touched_open_key(gen, CLUSTER))
    prefix = layout.versions_open_prefix(gen, CLUSTER)
    parts = sorted((versions.decode(snapshots.decompress(v, "zstd", 0)) for k, v in store.items()
                    if k.startswith(prefix)), key=lambda p: p.first)
    return (touched.decode(raw) if raw is not None else None), parts


def _check_open(d: _Recorded, records: list[Rec], after: list[dict[bytes, bytes]], batch: int,
                live: Any = lambda i: True) -> int:
    """After each batch, the open block's parts joined through its last offset equal the oracle's
    record of that block so far, when the batch was live; how many were checked."""
    checked = 0
    for n, store in enumerate(after):
        opened, parts = _open_parts(d, store)
        closed = sorted((touched.decode(v) for k, v in store.items()
                         if k.startswith(layout.touched_index_prefix(f"{d.prefix}/{d.generation}", CLUSTER))),
                        key=lambda b: b.first)
        if opened is None or opened.last != min(len(records), (n + 1) * batch) - 1:
            assert not parts or opened is not None  # parts only beside an open block
            continue
        assert all(p.first >= opened.first for p in parts)
        joined = versions.joined(CLUSTER, parts, opened.first, opened.last)
        if not live(n):
            continue
        assert joined is not None, n
        want = versions.decode(oracle(records, [(b.first, b.last) for b in closed]
                                      + [(opened.first, opened.last)])[opened.first])
        assert (joined.first, joined.last, joined.applied, joined.anns, joined.values) == (
            want.first, want.last, want.applied, want.anns, want.values), n
        checked += 1
    return checked


def test_live_batches_write_the_open_blocks_parts_which_join_into_its_record_and_go_when_it_closes() -> None:
    records = _records(1500, junk_at=(7, 640))
    d = _Recorded(touched_every_events=200)
    after = _derive_live(d, records, 70)  # blocks close inside batches and at their ends
    assert _check_open(d, records, after, 70) >= 10
    opened, parts = _open_parts(d, after[-1])
    assert opened is not None and len(parts) >= 2  # the open block's parts, one a live batch
    # a closed block's parts are deleted in the transaction that writes its key
    gen = f"{d.prefix}/{d.generation}"
    assert all(k.startswith(layout.versions_open_prefix(gen, CLUSTER, opened.first))
               for k in after[-1] if k.startswith(layout.versions_open_prefix(gen, CLUSTER)))
    # the writes besides the parts are those of a batch that is not live
    off = _Recorded(touched_every_events=200)
    _derive_live(off, records, 70, live=lambda i: False)
    is_part = b"/_versions_open/"
    assert [{k: v for k, v in t.items() if is_part not in k} for t in d.txns] == off.txns
    assert not any(is_part in k for t in off.txns for k in t)


def test_a_batch_that_is_not_live_leaves_a_gap_the_next_live_part_covers() -> None:
    records = _records(1000)
    d = _Recorded(touched_every_events=300)
    def live(i: int) -> bool:
        return i % 3 != 1  # batches 1, 4, 7, ... catch up: no parts

    after = _derive_live(d, records, 40, live)
    assert _check_open(d, records, after, 40, live) >= 10
    # right after a batch that was not live the open block's parts stop short of it
    gaps = 0
    for n, store in enumerate(after):
        opened, parts = _open_parts(d, store)
        if not live(n) and opened is not None and opened.first < n * 40:
            gaps += versions.joined(CLUSTER, parts, opened.first, opened.last) is None
    assert gaps >= 3


def test_no_part_while_a_fold_failed_events_marks_wait_for_the_next_applied_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(600)
    _fail_after_applying(monkeypatch, (449,))  # the last record of its batch
    d = _Recorded(touched_every_events=1000)
    after = _derive_live(d, records, 150)
    opened, parts = _open_parts(d, after[2])
    assert opened is not None and opened.last == 449 and parts[-1].last == 299  # none for 300..449
    assert versions.joined(CLUSTER, parts, opened.first, opened.last) is None
    opened, parts = _open_parts(d, after[3])
    assert opened is not None and parts[-1].first == 300 and parts[-1].last == 599
    joined = versions.joined(CLUSTER, parts, opened.first, opened.last)
    assert joined is not None and 449 not in joined.applied and joined.dirty_at(450)


def test_an_earlier_workers_parts_are_deleted_with_the_next_block_close() -> None:
    d = _Recorded(touched_every_events=200)
    gen = f"{d.prefix}/{d.generation}"
    stale = [layout.versions_open_key(gen, CLUSTER, 0, s) for s in (13, 57)]  # no live batch starts there
    d._stale_parts = {CLUSTER: list(stale)}
    _derive_live(d, _records(150), 150)
    assert not any(k in t for t in d.txns for k in stale)  # the block is still open
    _derive_live(d, _records(400)[150:], 250)
    closing = next(t for t in d.txns if layout.touched_index_key(gen, CLUSTER, 0) in t)
    assert all(k in closing and closing[k] is None for k in stale)


def test_joined_needs_parts_that_follow_each_other_through_the_last_offset() -> None:
    def part(first: int, last: int) -> versions.Versions:
        return versions.Versions(CLUSTER, first, last, {first: [{"kind": "x"}]}, [first, last],
                                 {("pod", "a"): [(first, b'{"v":%d}' % first), (last, b'{"v":%d}' % last)]})

    parts = [part(10, 19), part(20, 29), part(30, 39)]
    got = versions.joined(CLUSTER, parts, 10, 29)
    assert got is not None and got.applied == [10, 19, 20, 29] and got.anns == {10: [{"kind": "x"}],
                                                                              20: [{"kind": "x"}]}
    assert got.value_after(("pod", "a"), 29) == (True, {"v": 29})
    cut = versions.joined(CLUSTER, parts, 10, 35)  # a later part cut where the block ends
    assert cut is not None and cut.applied[-1] == 30 and cut.value_after(("pod", "a"), 39) == (True, {"v": 30})
    assert versions.joined(CLUSTER, parts, 10, 45) is None  # not through the last offset
    assert versions.joined(CLUSTER, [parts[0], parts[2]], 10, 35) is None  # a gap
    assert versions.joined(CLUSTER, parts[1:], 10, 29) is None  # not from the first offset
