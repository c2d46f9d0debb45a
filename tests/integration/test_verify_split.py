"""A verify's fold from the start split over processes at the worker's full snapshots
(replay/verify_split.py), on a real Kafka + etcd: the same report as one process, and a cut
that does not verify sends the whole fold back to one process, which reports it."""

from __future__ import annotations

import orjson
from kmevents.replay.verify import verify

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store.snapshots import SnapshotStore, index_entries
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli


def _same(a: dict, b: dict) -> None:
    for k in ("clean", "records", "snapshots_checked", "deltas_by_changes", "annotations", "unfolded_records",
              "checked_keys", "chain_heads", "drift", "checkpoints"):
        assert a[k] == b[k], k


async def test_a_split_fold_reports_what_one_process_does(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 6000)
    await run_worker_until_caught_up(s, snapshot_every_events=900, delta_every_events=300, max_records=200)
    one = await verify(s, [s.cluster], full=True, jobs=1)
    three = await verify(s, [s.cluster], full=True, jobs=3)
    assert one.clean and one.segments == {}
    assert three.segments == {s.cluster: 3}, three.notes
    assert three.records == 6000
    _same(one.as_dict(), three.as_dict())
    assert three.deltas_by_changes >= 3
    # the command line: --jobs, the split said in JSON and in text
    out = cli(s, "verify", "--full", "--jobs", "2", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert doc["segments"] == {s.cluster: 2} and doc["clean"] and doc["records"] == 6000
    text = cli(s, "verify", "--full", "--jobs", "2")
    assert "split over 2 processes" in text.stdout, text.stdout
    bad = cli(s, "verify", "--jobs", "-1")
    assert bad.returncode == 2 and "--jobs -1" in bad.stderr


async def test_a_cut_that_does_not_verify_sends_the_fold_back_to_one_process(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 4000)
    await run_worker_until_caught_up(s, snapshot_every_events=900, delta_every_events=0, max_records=200)
    async with etcd_adapter.client(s.etcd) as c:
        fulls = [e for e in await index_entries(s, c, s.cluster) if e.get("kind", "full") == "full"]
        from kmevents.replay.verify_split import cuts

        clean_entries = await SnapshotStore(s, c).entries(s.cluster)
        # where verify cuts: before the checkpoint (the last record), its last segment comparing etcd
        cut = cuts(clean_entries, 0, 3999, 2, compare=True)[0]
        victim = next(e for e in fulls if e["offset"] == cut["offset"])
        # the index entry at the cut names another chain head than the log's there
        await c.put(victim["_key"].encode(), orjson.dumps({**{k: v for k, v in victim.items() if k != "_key"},
                                                            "chain": "f" * 64}))
    report = await verify(s, [s.cluster], full=True, jobs=2)
    assert report.segments == {}
    assert any("did not verify" in n for n in report.notes), report.notes
    assert [f.key for f in report.drift] == [f"snapshot@{cut['offset']}"]
    assert report.records == 4000


async def test_a_split_fold_compares_etcd_in_its_last_segment_and_finds_what_one_process_does(
        isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 5000)
    await run_worker_until_caught_up(s, snapshot_every_events=900, delta_every_events=300, max_records=200)
    sp = layout.state_prefix(s.etcd.prefix, s.cluster, layout.live_generation())
    async with etcd_adapter.client(s.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
        changed, deleted = kvs[3], kvs[-2]
        value = orjson.loads(changed.value)
        value["since"] = "1999-01-01T00:00:00.000000Z"
        await c.put(changed.key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        await c.delete(deleted.key)
        await c.put(sp + b"task/made-up", b"{}")
    one = await verify(s, [s.cluster], full=True, jobs=1)
    two = await verify(s, [s.cluster], full=True, jobs=2)
    assert two.segments == {s.cluster: 2}, two.notes
    name = lambda kv: "/".join(layout.split_entity_key(sp, kv.key))  # noqa: E731
    assert {(f.kind, f.key) for f in one.drift} == {("different", name(changed)), ("missing", name(deleted)),
                                                     ("extra", "task/made-up")}
    # the same findings, field changes and keys counted, though the comparison ran in a child
    assert [f.as_dict() for f in two.findings] == [f.as_dict() for f in one.findings]
    assert two.checked_keys == one.checked_keys == len(kvs) + 1
    # a report with drift records no verified point; the next verify still folds from the start
    again = await verify(s, [s.cluster], jobs=2)
    assert again.resumed_from == {s.cluster: None}
    assert [f.as_dict() for f in again.findings] == [f.as_dict() for f in one.findings]
