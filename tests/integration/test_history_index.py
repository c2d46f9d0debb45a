"""History through the worker's touched-entity index equals the full scan (real Kafka + etcd)."""

from __future__ import annotations

import random

import orjson
import pytest
from kmevents.replay import history, logsource
from kmevents.replay.engine import replay
from kmevents.replay.opening import open_log

from kmevents.settings import Settings
from kmevents.store import touched
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli


async def _both(s: Settings, kind: str, id: str, reads: list[int] | None = None
                ) -> tuple[dict, dict, history.Indexed]:
    """``(indexed, scanned)`` history of ``kind/id``, each as the JSON the CLI prints; ``reads``
    gets the records the indexed passes read (pass 1, then pass 2)."""
    out = []
    async with open_log(s) as o:
        idx = await history.open_index(o)
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
    for kind, id in cases:
        indexed, scanned, idx = await _both(s, kind, id, reads)
        assert idx.serves, (kind, id, idx.scanned)
        assert indexed == scanned, (kind, id)
        if id != "no-such/pod":
            assert scanned["events"], (kind, id)
        skipped_somewhere |= idx.folded < idx.units
        loads += idx.loads
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
    assert orjson.loads(again.stdout)["events"] == indexed["events"]


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
    indexed, scanned, idx = await _both(s, "pod", pod, reads)
    assert idx.serves and indexed == scanned and scanned["events"]
    assert idx.loads >= 1, "the fold starts from an early snapshot"
    # from offset 0 it would read at least every record up to the pod's first block
    assert sum(reads) < start, (reads, start)
