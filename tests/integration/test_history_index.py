"""History through the worker's touched-entity index equals the full scan (real Kafka + etcd)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from kmevents.replay import history, logsource
from kmevents.replay.engine import replay
from kmevents.replay.opening import open_log
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store import touched
from tests.integration.test_processors import checkpoints, ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli


async def _both(s: Settings, kind: str, id: str, reads: list[int] | None = None, *, records: bool = True,
                parts: bool = True) -> tuple[dict, dict, history.Indexed]:
    """``(indexed, scanned)`` history of ``kind/id``, each as the JSON the CLI prints; ``reads``
    gets the records the indexed passes read (pass 1, then pass 2); ``records=False``: the
    worker's versions records left unread (every unit wanted is folded); ``parts=False``: the
    open block's parts left unread (it is folded when wanted)."""
    out = []
    async with open_log(s) as o:
        idx = await history.open_index(o)
        if not records:
            idx.versions, idx.fetch = {}, None
        if not records or not parts:
            idx.fetch_open = None
        for index in (idx, None):
            rel = await history.related(o.source, o.cluster, kind, [id], None, progress=False, index=index)
            if index is not None and reads is not None:
                reads.append(idx.events)
            entries = await history.collect(o.source, o.cluster, rel, progress=False, index=index)
            if index is not None and reads is not None:
                reads.append(idx.events - reads[-1])
            out.append(orjson.loads(orjson.dumps({
                "targets": sorted(rel.targets), "keys": sorted(rel.keys), "corr": sorted(rel.correlation),
                "events": entries})))
    return out[0], out[1], idx


async def test_indexed_history_of_pods_tasks_agents_and_offers_equals_the_full_scan(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s = isolated
    monkeypatch.setattr(history, "JUMP", 400)  # start units from snapshots (and deltas) at this small scale
    await ingest_sim(s, s.cluster, 6000)
    # small blocks and frequent snapshots, so that units are skipped and folds start from snapshots
    await run_worker_until_caught_up(s, snapshot_every_events=1500, delta_every_events=500,
                                     touched_every_events=200, max_records=300)
    p = await logsource.partition_of(s, s.cluster)
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
    rng = random.Random(5)
    cases = [("pod", i) for i in rng.sample(sorted(st.pods), 4)]
    cases += [("task", i) for i in rng.sample(sorted(st.tasks), 3)]
    cases += [("agent", i) for i in rng.sample(sorted(st.agents), 2)]
    some_agent = st.agents[sorted(st.agents)[0]]
    cases += [("agent", some_agent["hostname"])]  # agent/HOST: by name, every id the host had
    pod = st.pods[sorted(st.pods)[0]]
    cases += [("pod", pod["name"])]  # pod/NAME in any namespace
    if pod.get("task_id"):
        cases += [("task", pod["task_id"])]  # task/TASK_ID without its framework
    cases += [("pod", "no-such/pod")]
    skipped_somewhere, loads, reads = False, 0, []
    served = 0
    for kind, id in cases:
        indexed, scanned, idx = await _both(s, kind, id, reads, records=False)
        assert idx.serves, (kind, id, idx.scanned)
        assert indexed == scanned, (kind, id)
        with_records, _, ridx = await _both(s, kind, id)
        assert with_records == scanned, (kind, id)
        served += ridx.served
        if id != "no-such/pod":
            assert scanned["events"], (kind, id)
        skipped_somewhere |= idx.folded < idx.units
        loads += idx.loads
    assert served, "the worker's versions records were read"
    assert skipped_somewhere, "the index let history skip blocks"
    assert loads, "units far from the fold start from a snapshot or delta"
    # pass 2 folds only the units links found late implicate: pass 1 kept what the others did
    assert sum(reads[1::2]) < sum(reads[0::2]) / 2, reads
    assert p is not None
    async with open_log(s) as o:
        blocks = (await history.open_index(o)).blocks
    # blocks close on their own count, inside the worker's batches of 300 records
    assert [b.events for b in blocks[:-1]] == [200] * (len(blocks) - 1)
    assert [b.first for b in blocks[1:]] == [b.last + 1 for b in blocks[:-1]]


async def test_history_without_an_index_scans_and_says_so_with_the_same_answer(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 1500)
    await run_worker_until_caught_up(s, touched_every_events=0)  # a worker that writes no index
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
    pod = sorted(st.pods)[0]
    plain = cli(s, "history", f"pod/{pod}", "--format", "json")
    assert plain.returncode == 0, plain.stderr
    assert "scanning the whole log: no touched-entity index" in plain.stderr
    await run_worker_until_caught_up(s, touched_every_events=100)  # nothing new: still none
    await ingest_sim(s, s.cluster, 1500, seed=2)
    await run_worker_until_caught_up(s, touched_every_events=100)
    again = cli(s, "history", f"pod/{pod}", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert "scanning" not in again.stderr  # the new blocks serve; the older range is folded as not indexed
    indexed, scanned, idx = await _both(s, "pod", pod)
    assert idx.serves and indexed == scanned
    out = orjson.loads(again.stdout)
    assert out["events"] == indexed["events"]
    assert out["index"]["units"] == idx.units and out["index"]["folded"] >= 1  # (the range with no index)
    assert orjson.loads(plain.stdout)["index"] is None  # scanned


async def test_a_worker_snapshots_from_its_first_delta_interval_so_history_of_an_early_pod_skips_the_log_start(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before its first full interval the worker writes the deltas due as (early) full snapshots:
    a history whose units all lie late in that interval starts from one, not from offset 0."""
    s = isolated
    monkeypatch.setattr(history, "JUMP", 400)
    await ingest_sim(s, s.cluster, 3000)
    await run_worker_until_caught_up(s, snapshot_every_events=5000, delta_every_events=500,
                                     touched_every_events=200, max_records=100)
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
        entries = await o.snapshots.entries(s.cluster)
        idx = await history.open_index(o)
    # no full interval (5,000 events) has passed: every snapshot is an early full one
    assert len(entries) >= 4, entries
    assert all(e.get("kind", "full") == "full" for e in entries)
    # a pod whose first block (what any history of it folds first) starts late in the log
    first_block = {p: next((b.first for b in idx.blocks if b.holds(touched.key("pod", p))), -1) for p in st.pods}
    pod, start = max(first_block.items(), key=lambda kv: kv[1])
    assert start >= 1500, first_block
    reads: list[int] = []
    indexed, scanned, idx = await _both(s, "pod", pod, reads, records=False)  # (the units folded)
    assert idx.serves and indexed == scanned and scanned["events"]
    assert idx.loads >= 1, "the fold starts from an early snapshot"
    # from offset 0 it would read at least every record up to the pod's first block
    assert sum(reads) < start, (reads, start)


async def test_a_worker_restored_mid_block_resumes_the_open_block_so_the_index_tiles_the_log(
        isolated: Settings) -> None:
    """A worker that stops with a block open (its records committed by the checkpoint, the block
    not yet closed) and a successor that restores from the checkpoint: the successor's first block
    starts where the last closed one ended and holds what the records before the checkpoint
    touched (re-folded, not re-applied), so the blocks cover every offset with no hole."""
    s = isolated
    await ingest_sim(s, s.cluster, 1130)
    # a full snapshot past the last closed block (1099 events in): the restore must start before it
    first = await run_worker_until_caught_up(s, snapshot_every_events=550, delta_every_events=0,
                                             touched_every_events=200, max_records=100)
    ckpt = (await checkpoints(s))[await logsource.partition_of(s, s.cluster) or 0].offset
    async with open_log(s) as o:
        before = (await history.open_index(o)).blocks
        entries = await o.snapshots.entries(s.cluster)
    closed = before[-1].last
    assert closed < ckpt, (closed, ckpt)  # the first worker stopped with a block open
    assert any(closed < int(e["offset"]) <= ckpt for e in entries), (closed, ckpt, entries)
    await ingest_sim(s, s.cluster, 700, seed=2)
    second = await run_worker_until_caught_up(s, snapshot_every_events=550, delta_every_events=0,
                                              touched_every_events=200, max_records=100)
    assert first.stats.events + second.stats.events <= 1830  # nothing applied twice
    report = await verify(s, [s.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
    async with open_log(s) as o:
        blocks = (await history.open_index(o)).blocks
        st = (await replay(o.source, s.cluster, progress=False)).state
    assert blocks[0].first == 0
    assert [b.first for b in blocks[1:]] == [b.last + 1 for b in blocks[:-1]], \
        [(b.first, b.last) for b in blocks]
    assert [b.events for b in blocks[:-1]] == [200] * (len(blocks) - 1)
    # the block across the restart holds what its re-folded records touched: history of a pod
    # touched only there answers as the full scan
    across = next(b for b in blocks if b.first <= ckpt < b.last)
    assert across.first == closed + 1
    found = 0
    for pod in sorted(st.pods):
        indexed, scanned, idx = await _both(s, "pod", pod)
        if not any(closed < e["offset"] <= ckpt and f"pod/{pod}" in e["results"] for e in scanned["events"]):
            continue
        assert idx.serves and indexed == scanned, pod
        assert across.holds(touched.key("pod", pod)), pod
        found += 1
        if found == 3:
            break
    assert found, "some pod was touched between the last closed block and the checkpoint"


async def test_a_restore_under_a_smaller_block_size_closes_the_resumed_block_and_writes_it_with_the_next_batch(
        isolated: Settings) -> None:
    """The resumed block already holds more records than the new worker's block size: the restore
    closes blocks of that size as it re-folds, written with the first batch it commits."""
    s = isolated
    await ingest_sim(s, s.cluster, 1130)
    await run_worker_until_caught_up(s, touched_every_events=200, max_records=100)
    await ingest_sim(s, s.cluster, 300, seed=2)
    await run_worker_until_caught_up(s, touched_every_events=50, max_records=100)
    async with open_log(s) as o:
        blocks = (await history.open_index(o)).blocks
    assert [(b.first, b.events) for b in blocks[:5]] == [(0, 200), (200, 200), (400, 200), (600, 200), (800, 200)]
    assert [b.first for b in blocks[1:]] == [b.last + 1 for b in blocks[:-1]], \
        [(b.first, b.last) for b in blocks]
    assert blocks[5].first == 1000 and [b.events for b in blocks[5:-1]] == [50] * (len(blocks) - 6)
    assert blocks[-1].last == 1399  # 1,430 records: 1400.. is the open block


async def test_a_block_written_past_the_checkpoint_is_passed_over_and_replaced_by_the_resumed_one(
        isolated: Settings) -> None:
    """A batch over several transactions may write a block before its checkpoint lands, then die:
    the block ends past the checkpoint. The successor resumes from the last block that ends at or
    before the checkpoint, and the block it closes there takes that key."""
    s = isolated
    await ingest_sim(s, s.cluster, 1130)
    await run_worker_until_caught_up(s, touched_every_events=200, max_records=100)
    stray = touched.corr("from a batch whose checkpoint never landed")
    key = layout.touched_index_key(f"{s.etcd.prefix}/{layout.live_generation()}", s.cluster, 1000)
    async with etcd_adapter.client(s.etcd) as c:
        await c.put(key, touched.encode(1000, 1199, 200, None, [stray]))
    await ingest_sim(s, s.cluster, 300, seed=2)
    await run_worker_until_caught_up(s, touched_every_events=200, max_records=100)
    async with open_log(s) as o:
        blocks = (await history.open_index(o)).blocks
    assert [(b.first, b.last, b.events) for b in blocks] == [(i, i + 199, 200) for i in range(0, 1400, 200)]
    assert not blocks[5].holds(stray)


async def test_history_reads_the_workers_versions_records_and_the_open_blocks_parts(
        isolated: Settings) -> None:
    """With the worker's versions records (store/versions.py) a history decodes no state for the
    blocks it wants: it reads their records. The records past the last closed block (the open
    block, as the worker's last batch wrote it) are wanted only when its hashes name what a pass
    looks for; then they are read from the parts the worker's live batch wrote, and without
    those, folded from a state. Every answer is the full scan's."""
    s = isolated
    await ingest_sim(s, s.cluster, 2130)
    await run_worker_until_caught_up(s, snapshot_every_events=1500, delta_every_events=500,
                                     touched_every_events=200, max_records=300)
    async with open_log(s) as o:
        idx = await history.open_index(o)
        st = (await replay(o.source, s.cluster, progress=False)).state
        first, last = await o.source.covers()
    assert idx.opened is not None and idx.opened.first == idx.blocks[-1].last + 1 and idx.opened.last == last
    assert len(idx.versions) == len(idx.blocks)  # a record for every closed block
    in_open = {p for p in st.pods if idx.opened.holds(touched.key("pod", p))}
    assert in_open and len(in_open) < len(st.pods)
    rng = random.Random(8)
    quiet = rng.sample(sorted(set(st.pods) - in_open), 4)
    served = stateless = 0
    named = rng.sample(sorted(in_open), 2)
    for pod in quiet + named:
        indexed, scanned, idx = await _both(s, "pod", pod)
        assert idx.serves and indexed == scanned, pod
        assert scanned["events"], pod
        served += idx.served
        if pod in quiet and not any(idx.opened.holds(touched.key(*k)) for k in (tuple(x) for x in scanned["keys"])):
            assert idx._open_record is None  # not wanted: its parts are not even read
            stateless += 1
        # the open block, when wanted, is read from its parts (the worker's last batch was live)
        assert idx.folded == 0 and idx.loads == 0, (pod, idx.folded, idx.loads)  # no state decoded at all
    assert served and stateless
    assert idx._open_record is not None and idx._open_record[2] is not None
    # without the parts, a pod the open block names has that block folded, from a state
    for pod in named:
        indexed, scanned, idx = await _both(s, "pod", pod, parts=False)
        assert indexed == scanned and idx.folded >= 1 and idx.loads >= 1, pod
    # without the open block the records past the last closed one are always folded, from a state
    async with open_log(s) as o:
        idx = await history.open_index(o)
        idx.opened, idx.refresh = None, None  # (and not read again while waiting for the worker)
        rel = await history.related(o.source, o.cluster, "pod", [quiet[0]], None, progress=False, index=idx)
        await history.collect(o.source, o.cluster, rel, progress=False, index=idx)
    assert idx.folded >= 1
    # the records come through one kept-open reader of the snapshots topic (Opened.snapshot_points),
    # not a consumer started for each (an agent's history at the large profile started 38)
    import aiokafka

    starts: list[int] = []
    real = aiokafka.AIOKafkaConsumer.start

    async def counted(self: Any) -> None:
        starts.append(1)
        await real(self)

    aiokafka.AIOKafkaConsumer.start = counted  # type: ignore[method-assign]
    try:
        async with open_log(s) as o:
            idx = await history.open_index(o)
            rel = await history.related(o.source, o.cluster, "pod", [quiet[0]], None, progress=False, index=idx)
            await history.collect(o.source, o.cluster, rel, progress=False, index=idx)
    finally:
        aiokafka.AIOKafkaConsumer.start = real  # type: ignore[method-assign]
    assert idx.served >= 2 and len(starts) <= 3, (idx.served, len(starts))


async def test_history_waits_briefly_for_a_live_worker_to_index_the_last_records_and_not_for_a_stopped_one(
        isolated: Settings) -> None:
    """A live cluster's log always has records past the worker's last batch. History lets a worker
    that is making progress index them (bounded: ``WAIT_FOR_WORKER``), so a history they do not
    concern decodes no state; with no worker running it stops waiting after ``STALL`` and folds
    them. The answers are the full scan's either way."""
    import asyncio

    from kmevents.processors.worker import DeriveWorker

    s = isolated
    kw: dict[str, Any] = {"snapshot_every_events": 1500, "delta_every_events": 500, "touched_every_events": 200,
                          "max_records": 100}
    await ingest_sim(s, s.cluster, 1130)
    await run_worker_until_caught_up(s, **kw)
    await ingest_sim(s, s.cluster, 400, seed=2)  # past the index; no worker running
    async with open_log(s) as o:
        st = (await replay(o.source, s.cluster, progress=False)).state
        idx = await history.open_index(o)
    tail = (idx.opened or idx.blocks[-1]).last
    quiet = [p for p in sorted(st.pods) if any(b.holds(touched.key("pod", p)) for b in idx.blocks)][:2]
    indexed, scanned, idx = await _both(s, "pod", quiet[0])
    assert indexed == scanned and idx.folded >= 1  # the records past the index: folded
    assert idx.waited < history.STALL + 1.0, idx.waited
    # a live worker: history waits for it, then reads only what the index names
    w = DeriveWorker(s, group_id=f"g-{s.cluster}", **kw)
    await w.start()
    task = asyncio.create_task(w.run())
    try:
        found = []
        for pod in quiet:
            indexed, scanned, idx = await _both(s, "pod", pod)
            assert indexed == scanned, pod
            found.append((idx.folded, idx.loads, (idx.opened or idx.blocks[-1]).last > tail, idx.waited))
        assert any(covered for _, _, covered, _ in found), found
        assert found[0][3] > 0, found  # the first history waited (the worker was still restoring)
        # (a quiet pod's history then decodes no state, unless the new records touched it)
        assert any(f == 0 and loads == 0 for f, loads, _, _ in found), found
    finally:
        w.stop_requested.set()
        await task
        await w.stop()
