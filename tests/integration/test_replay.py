"""Replay, verify and archives on a real Kafka + etcd."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
from kmevents.replay import archive, archiving, logsource
from kmevents.replay.engine import Target, replay
from kmevents.replay.sources import ArchiveSource, KafkaSource, MergedSource
from kmevents.replay.verify import anchor_document, read_anchor, verify

from kmevents import chain, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.ingest import Ingestor
from kmevents.reducer import ClusterState, apply
from kmevents.settings import Settings, child_env
from kmevents.simulate import generate
from kmevents.store.snapshots import SnapshotStore
from kmevents.timespec import iso_of_micros, micros_of, parse_time
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up


async def derived(s: Settings, n: int = 3000) -> int:
    await ingest_sim(s, s.cluster, n)
    await run_worker_until_caught_up(s, snapshot_every_events=700, max_records=400)
    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    return p


def kafka_src(s: Settings, p: int, topic: str | None = None) -> KafkaSource:
    return KafkaSource(s.kafka, topic or s.kafka.events_topic, p, s.cluster)


async def all_records(src: KafkaSource | ArchiveSource | MergedSource) -> list:
    first, last = await src.covers()
    return [r for b in [b async for b in src.batches(first, last)] for r in b]


def cli(s: Settings, *argv: str, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **child_env(s, cluster=True), **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


async def test_a_clean_system_verifies_clean_including_snapshots(isolated: Settings) -> None:
    await derived(isolated)
    report = await verify(isolated, [isolated.cluster])
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
    assert report.snapshots_checked >= 3
    assert report.checked_keys > 100
    assert report.heads and report.heads[0]["head"] != chain.GENESIS


async def reads_equal_the_fold(s: Settings, src: KafkaSource, store: SnapshotStore, recs: list, offsets: list[int]) -> int:
    """Each point-in-time read (from the snapshots ``store`` holds) equals the fold of the log up to
    its offset, chain head included; how many started from a snapshot."""
    used_snapshot = 0
    for off in offsets:
        r = await replay(src, s.cluster, Target(offset=off), snapshots=store, progress=False)
        st = ClusterState.empty(s.cluster)
        h = chain.GENESIS
        for x in recs:
            if x.offset > off:
                break
            h = chain.link(h, x.key, x.value)
            apply(st, orjson.loads(x.value), partition=src.partition, offset=x.offset)
        assert r.state.to_snapshot() == st.to_snapshot(), off
        assert r.chain_head == h
        used_snapshot += r.from_snapshot is not None
    return used_snapshot


async def test_state_at_random_offsets_from_snapshots_equals_the_fold_of_that_prefix(isolated: Settings) -> None:
    p = await derived(isolated)
    src = kafka_src(isolated, p)
    recs = await all_records(src)
    async with etcd_adapter.client(isolated.etcd) as c:
        store = SnapshotStore(isolated, c)
        rng = random.Random(11)
        offsets = rng.sample([r.offset for r in recs], 5) + [recs[-1].offset]
        assert await reads_equal_the_fold(isolated, src, store, recs, offsets) >= 3


async def test_a_point_at_a_snapshot_still_names_its_last_event(isolated: Settings) -> None:
    """A read that starts from a snapshot and folds nothing after it (the point is the
    snapshot's, e.g. the checkpoint) printed "last event applied: offset None"."""
    p = await derived(isolated)
    src = kafka_src(isolated, p)
    recs = {r.offset: r for r in await all_records(src)}
    async with etcd_adapter.client(isolated.etcd) as c:
        store = SnapshotStore(isolated, c)
        off = int((await store.entries(isolated.cluster))[-1]["offset"])
        r = await replay(src, isolated.cluster, Target(offset=off), snapshots=store, progress=False)
    assert r.from_snapshot == off and r.applied == 0
    assert r.last is not None and r.last["offset"] == r.state.offset == off
    assert r.last["type"] == orjson.loads(recs[off].value)["type"] and r.last["recorded_at"]
    assert r.last["occurred_at"] == r.state.last_occurred_at


async def test_deltas_between_snapshots_answer_points_in_time_and_verify_clean(isolated: Settings) -> None:
    """The worker stores what changed since its last full snapshot every --delta-every events;
    a read just after a delta starts from it (base + delta) and equals the fold of the prefix,
    verify checks each delta's state against its own fold, and a restarted worker restores from
    a full snapshot and goes on writing deltas against it."""
    s = isolated
    evs = list(generate(s.cluster, 1, 4000, agents=20))
    async with Ingestor(s) as ing:
        assert all(r.ok for r in await ing.submit(evs[:2500]))
    w = await run_worker_until_caught_up(s, snapshot_every_events=1200, delta_every_events=250, max_records=100)
    assert w.stats.deltas >= 3, (w.stats.snapshots, w.stats.deltas)
    async with Ingestor(s) as ing:
        assert all(r.ok for r in await ing.submit(evs[2500:]))
    w2 = await run_worker_until_caught_up(s, snapshot_every_events=1200, delta_every_events=250, max_records=100)
    assert w2.stats.deltas >= 1
    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    src = kafka_src(s, p)
    recs = await all_records(src)
    async with etcd_adapter.client(s.etcd) as c:
        entries = await SnapshotStore(s, c).entries(s.cluster)
        fulls = {int(e["offset"]) for e in entries if e.get("kind", "full") == "full"}
        deltas = [e for e in entries if e.get("kind") == "delta"]
        assert deltas and all(int(e["base"]) in fulls and int(e["base"]) < int(e["offset"]) for e in deltas)
        # deltas are small next to the snapshot they patch
        size = {int(e["offset"]): int(e["bytes"]) for e in entries}
        assert all(size[int(e["offset"])] < size[int(e["base"])] for e in deltas[:3])
        # each entry records its state's latest event time: a time is placed among them without loads
        for e in [entries[0], deltas[0], deltas[-1], entries[-1]]:
            loaded = await SnapshotStore(s, c).load(e)
            assert loaded is not None and e["max_occurred_at"] == loaded.max_occurred_at, e["offset"]
        for e in deltas[:2] + deltas[-2:]:
            off = min(int(e["offset"]) + 3, recs[-1].offset)
            store = SnapshotStore(s, c)
            r = await replay(src, s.cluster, Target(offset=off), snapshots=store, progress=False)
            assert r.from_snapshot == int(e["offset"]), (off, r.from_snapshot)
            st = ClusterState.empty(s.cluster)
            for x in recs:
                if x.offset > off:
                    break
                apply(st, orjson.loads(x.value), partition=p, offset=x.offset)
            assert r.state.to_snapshot() == st.to_snapshot(), off
    report = await verify(s, [s.cluster], full=True)
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
    assert report.snapshots_checked >= len(deltas) + len(fulls) - 1
    # deltas are checked as the fold's own changes since their base, not rebuilt and encoded whole
    assert report.deltas_by_changes >= len(deltas) // 2, (report.deltas_by_changes, len(deltas))
    # and full snapshots by the fold's changes since the full one before (snapshot_match.py)
    assert report.full_by_changes >= 1, (report.full_by_changes, len(fulls))


async def test_verify_finds_a_changed_a_deleted_and_an_extra_key_with_field_diffs(isolated: Settings) -> None:
    await derived(isolated, 2000)
    sp = layout.state_prefix(isolated.etcd.prefix, isolated.cluster, layout.live_generation())
    async with etcd_adapter.client(isolated.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
        changed, deleted = kvs[0], kvs[1]
        value = orjson.loads(changed.value)
        value["since"] = "1999-01-01T00:00:00.000000Z"
        await c.put(changed.key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        await c.delete(deleted.key)
        await c.put(sp + b"task/made-up", b"{}")
    report = await verify(isolated, [isolated.cluster])
    found = {(f.kind, f.key) for f in report.drift}
    name = lambda kv: "/".join(layout.split_entity_key(sp, kv.key))  # noqa: E731
    assert ("different", name(changed)) in found
    assert ("missing", name(deleted)) in found
    assert ("extra", "task/made-up") in found
    diff = next(f for f in report.drift if f.kind == "different")
    assert diff.changes == [{"path": "since", "log": orjson.loads(changed.value)["since"],
                             "etcd": "1999-01-01T00:00:00.000000Z"}]
    assert not [f for f in report.findings if f.kind == "ahead"]


async def test_a_rewritten_record_breaks_the_chain_and_the_anchor(isolated: Settings, tmp_path: Path) -> None:
    p = await derived(isolated, 1500)
    src = kafka_src(isolated, p)
    clean = await verify(isolated, [isolated.cluster])
    anchor = tmp_path / "anchor.json"
    anchor.write_bytes(anchor_document(clean.heads))
    recs = await all_records(src)
    victim = recs[len(recs) // 3]
    ev = orjson.loads(victim.value)
    ev["occurred_at"] = "2001-01-01T00:00:00.000000Z"
    victim.value = orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)  # same offset, other bytes
    arc = tmp_path / "tampered.kmarch"
    archive.write(arc, recs, cluster=isolated.cluster, partition=p, topic="x", covers_from=0)
    copy = f"{isolated.kafka.events_topic}.copy"
    await archiving.import_archive(isolated.kafka, arc, topic=copy, partition=0)
    report = await verify(isolated, [isolated.cluster], topic=copy, anchors=read_anchor(anchor.read_bytes()))
    kinds = {f.kind for f in report.drift}
    assert "chain" in kinds and "anchor" in kinds, [f.as_dict() for f in report.drift]
    # and the untouched topic still matches its anchor
    assert (await verify(isolated, [isolated.cluster], anchors=read_anchor(anchor.read_bytes()))).clean


async def test_export_import_export_gives_the_same_records_and_chain(isolated: Settings, tmp_path: Path) -> None:
    p = await derived(isolated, 1500)
    src = kafka_src(isolated, p)
    first, last = await src.covers()
    h1 = await archiving.export(src, tmp_path / "one.kmarch", cluster=isolated.cluster, topic="t", start=first,
                                end=last, chain_head_start=chain.GENESIS)
    copy = f"{isolated.kafka.events_topic}.imported"
    await archiving.import_archive(isolated.kafka, tmp_path / "one.kmarch", topic=copy, partition=0)
    src2 = kafka_src(isolated, 0, topic=copy)
    f2, l2 = await src2.covers()
    h2 = await archiving.export(src2, tmp_path / "two.kmarch", cluster=isolated.cluster, topic="t", start=f2, end=l2,
                                chain_head_start=await src2.chain_start())
    one = [r for b in archive.iter_batches(tmp_path / "one.kmarch") for r in b]
    two = [r for b in archive.iter_batches(tmp_path / "two.kmarch") for r in b]
    assert one == two and len(one) == 1500
    assert h1["chain_head_end"] == h2["chain_head_end"] == (await verify(isolated, [isolated.cluster])).heads[0]["head"]
    assert h2["partition"] == p  # the original partition survives the import
    # What the first record said carries to a successor source while the log start is the same
    # (the API makes a fresh source each second); a different log start makes it look again.
    assert src2.origin == (0, True, p)
    told = KafkaSource(isolated.kafka, copy, 0, isolated.cluster, origin=(0, False, 0))
    assert await told.imported() is False and told.partition == 0
    moved = KafkaSource(isolated.kafka, copy, 0, isolated.cluster, origin=(5, False, 0))
    assert await moved.imported() is True and moved.partition == p and moved.origin == (0, True, p)


async def test_archives_plus_topic_replay_like_the_topic_alone(isolated: Settings, tmp_path: Path) -> None:
    p = await derived(isolated, 2500)
    src = kafka_src(isolated, p)
    recs = await all_records(src)
    mid = recs[len(recs) // 2].offset
    await archiving.export(src, tmp_path / "a.kmarch", cluster=isolated.cluster, topic="t", start=0, end=mid,
                           chain_head_start=chain.GENESIS)
    both = MergedSource([ArchiveSource(tmp_path / "a.kmarch"), kafka_src(isolated, p)])
    r1 = await replay(src, isolated.cluster, Target(), progress=False)
    r2 = await replay(both, isolated.cluster, Target(), progress=False)
    r3 = await replay(ArchiveSource(tmp_path / "a.kmarch"), isolated.cluster, Target(), progress=False)
    assert r1.state.to_snapshot() == r2.state.to_snapshot()
    assert r1.chain_head == r2.chain_head and r2.applied == r1.applied
    assert r3.end_offset == mid


async def test_at_and_known_at_differ_on_a_log_with_a_late_event(isolated: Settings) -> None:
    t0 = micros_of("2026-03-01T10:00:00.000000Z")

    def ns(name: str, occurred_us: int, i: int) -> bytes:
        return orjson.dumps({
            "event_id": f"late-{i}", "type": "namespace.upserted", "schema_version": 1, "cluster": isolated.cluster,
            "source": {"kind": "simulator", "stream_id": "s", "seq": i}, "occurred_at": iso_of_micros(occurred_us),
            "clock": "apiserver", "raw_type": "ADDED", "actor": None, "correlation_id": None, "causation_id": None,
            "dedupe_key": f"ns|{name}", "redacted": [], "payload": {"namespace": {"name": name, "phase": "Active",
                                                                                  "labels": {}}}},
            option=orjson.OPT_SORT_KEYS)

    prod = kafka_adapter.producer(isolated.kafka)
    await prod.start()
    key = isolated.cluster.encode()
    try:
        await prod.send_and_wait(isolated.kafka.events_topic, ns("a", t0, 0), key=key, partition=0)
        await prod.send_and_wait(isolated.kafka.events_topic, ns("b", t0 + 300_000_000, 1), key=key, partition=0)
        await asyncio.sleep(1.2)
        between = int(time.time() * 1000)
        await asyncio.sleep(1.2)
        await prod.send_and_wait(isolated.kafka.events_topic, ns("c", t0 + 60_000_000, 2), key=key, partition=0)
    finally:
        await prod.stop()
    src = kafka_src(isolated, 0)

    async def names(target: Target) -> list[str]:
        r = await replay(src, isolated.cluster, target, progress=False)
        return sorted(i for i, _ in r.state.entities("namespace"))

    assert await names(Target(at=parse_time("2026-03-01T10:02:00Z"))) == ["a", "c"]
    assert await names(Target(known_at=parse_time(str(between)))) == ["a", "b"]
    assert await names(Target(at=parse_time("2026-03-01T10:05:00Z"))) == ["a", "b", "c"]
    assert await names(Target()) == ["a", "b", "c"]


def test_cli_exit_codes_clean_drift_usage(isolated: Settings, tmp_path: Path) -> None:
    asyncio.run(derived(isolated, 1200))
    ok = cli(isolated, "verify", "--no-progress")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "clean" in ok.stdout
    st = cli(isolated, "state", "--format", "json", "--no-progress")
    assert st.returncode == 0, st.stderr
    doc = orjson.loads(st.stdout)
    assert doc["position"]["last_event"]["recorded_at"] and doc["position"]["last_event"]["occurred_at"]
    assert "ingest_lag_seconds" in doc["position"]["last_event"]
    sp = layout.state_prefix(isolated.etcd.prefix, isolated.cluster, layout.live_generation())

    async def tamper() -> None:
        async with etcd_adapter.client(isolated.etcd) as c:
            await c.put(sp + b"agent/ghost", b"{}")

    asyncio.run(tamper())
    bad = cli(isolated, "verify", "--format", "json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert orjson.loads(bad.stdout)["drift"][0]["key"] == "agent/ghost"
    usage = cli(isolated, "state", "--at", "not-a-time")
    assert usage.returncode == 2 and "not understood" in usage.stderr
    assert cli(isolated, "verify", "--yes").returncode == 2
    # a topic that does not exist: said so, and not created by asking (the stack's broker auto-creates)
    typo = f"{isolated.kafka.events_topic}.typo"
    missing = cli(isolated, "state", "--topic", typo, "--partition", "0", "--no-progress")
    assert missing.returncode == 2 and f"topic '{typo}' does not exist" in missing.stderr, missing.stderr

    async def topics() -> set[str]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**kafka_adapter.client_options(isolated.kafka))
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    assert typo not in asyncio.run(topics())


def test_a_report_starts_from_the_snapshot_before_its_window_and_says_what_the_whole_log_says(
        isolated: Settings, tmp_path: Path) -> None:
    """``kmevents report --from`` reads the log from the newest snapshot whose events all happened
    a lookback (the rules' rate window, a source's silence) before the window, not from its first
    record, and writes the report ``--no-snapshots`` (the whole log) writes."""
    p = asyncio.run(derived(isolated, 6000))
    recs = asyncio.run(all_records(kafka_src(isolated, p)))
    times = sorted(micros_of(orjson.loads(r.value)["occurred_at"]) for r in recs)
    start, end = iso_of_micros(times[int(0.8 * len(times))]), iso_of_micros(times[int(0.95 * len(times))])
    short = {"KMEVENTS_MONITOR__WINDOW_SECONDS": "20", "KMEVENTS_MONITOR__SILENT_SECONDS": "30"}  # 31 s lookback
    out = {}
    for how in ("snapshot", "whole"):
        path = tmp_path / f"{how}.json"
        r = cli(isolated, "report", "--from", start, "--to", end, "--format", "json", "-o", str(path), "--no-progress",
                *(["--no-snapshots"] if how == "whole" else []), extra_env=short)
        assert r.returncode == 0, r.stdout + r.stderr
        out[how] = (r.stdout, orjson.loads(path.read_bytes()))
    said = out["snapshot"][0]
    assert "read from the snapshot at offset" in said and "read from the log's start" in out["whole"][0]
    offset = int(said.rsplit("offset ", 1)[1].split()[0])

    async def newest_before() -> int:
        bound = iso_of_micros(micros_of(start) - 31_000_000)
        async with etcd_adapter.client(isolated.etcd) as c:
            entries = await SnapshotStore(isolated, c).entries(isolated.cluster)
        return max(int(e["offset"]) for e in entries if e["max_occurred_at"] <= bound)

    assert offset == asyncio.run(newest_before()) and offset > 0
    assert out["snapshot"][1] == out["whole"][1]
    assert out["whole"][1]["events_in_window"] > 500


def test_follow_writes_segments_that_chain_and_replay_like_the_topic(isolated: Settings, tmp_path: Path) -> None:
    p = asyncio.run(derived(isolated, 1500))
    seg_dir = tmp_path / "segs"
    r = cli(isolated, "archive", "export", "--follow", "--dir", str(seg_dir), "--segment-records", "500",
            "--max-segments", "3", "--poll-seconds", "0.2", "--max-seconds", "120", "--snapshot-every", "1")
    assert r.returncode == 0, r.stderr
    segs = sorted(seg_dir.glob("*.kmarch"))
    assert len(segs) == 3
    heads = [archive.read_header(x) for x in segs]
    assert [h["chain_head_start"] for h in heads[1:]] == [h["chain_head_end"] for h in heads[:-1]]
    # each segment keeps the worker's snapshots of its range (one every 700 events here)
    kept = [x["offset"] for h in heads for x in h["snapshots"]]
    assert kept and all(h["covers_from"] <= x["offset"] <= h["covers_to"] for h in heads for x in h["snapshots"]), \
        [(h["covers_from"], h["covers_to"], h["snapshots"]) for h in heads]
    v = cli(isolated, "verify", "--source", *map(str, segs), "--format", "json")
    assert v.returncode == 0, v.stdout + v.stderr
    assert orjson.loads(v.stdout)["snapshots_checked"] == len(kept), v.stdout
    a = orjson.loads(cli(isolated, "state", "--format", "json", "--source", *map(str, segs)).stdout)
    assert a["position"]["started_from_snapshot"] == kept[-1], (a["position"], kept)
    b = orjson.loads(cli(isolated, "state", "--format", "json", "--no-snapshots").stdout)
    assert a["state"] == b["state"] and a["position"]["chain_head"] == b["position"]["chain_head"]
    assert p == heads[0]["partition"]


def test_an_exported_archive_keeps_snapshots_and_answers_points_in_time_from_them_alone(
        isolated: Settings, tmp_path: Path) -> None:
    asyncio.run(derived(isolated, 3000))

    async def store_entries() -> list[dict]:
        async with etcd_adapter.client(isolated.etcd) as c:
            return await SnapshotStore(isolated, c).entries(isolated.cluster)

    entries = asyncio.run(store_entries())
    assert len(entries) >= 3
    out = tmp_path / "all.kmarch"
    r = cli(isolated, "archive", "export", "-o", str(out), "--snapshot-every", "1000", "--format", "json",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    h = orjson.loads(r.stdout)
    by_offset = {int(e["offset"]): e for e in entries}
    assert len(h["snapshots"]) >= 2
    prev = -1
    for x in h["snapshots"]:
        assert x["chain"] == by_offset[x["offset"]]["chain"] and x["offset"] - prev >= 1000
        prev = x["offset"]
    # From here on no server is needed: the same reads with endpoints where nothing listens.
    off = h["snapshots"][-1]["offset"] + 37
    gone = isolated.model_copy(deep=True)
    gone.kafka.bootstrap, gone.etcd.endpoint = "127.0.0.1:9", "http://127.0.0.1:9"
    alone = orjson.loads(cli(gone, "state", "--source", str(out), "--offset", str(off), "--format", "json").stdout)
    live = orjson.loads(cli(isolated, "state", "--offset", str(off), "--format", "json", "--no-snapshots").stdout)
    assert alone["position"]["started_from_snapshot"] == h["snapshots"][-1]["offset"]
    assert alone["position"]["events_applied"] == 37
    assert alone["state"] == live["state"] and alone["position"]["chain_head"] == live["position"]["chain_head"]
    v = cli(gone, "verify", "--source", str(out), "--format", "json")
    assert v.returncode == 0, v.stdout + v.stderr
    assert orjson.loads(v.stdout)["snapshots_checked"] == len(h["snapshots"])


def test_archive_export_takes_an_incident_window_in_source_time_not_log_time(
        isolated: Settings, tmp_path: Path) -> None:
    """Issue 18: --from/--to were log times, so a window of when things happened gave an empty
    archive ("offsets 0..-1")."""
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 3000))

    async def records() -> list:
        p = await logsource.partition_of(s, s.cluster)
        assert p is not None
        return await all_records(kafka_src(s, p))

    recs = asyncio.run(records())
    occ = [orjson.loads(r.value)["occurred_at"] for r in recs]
    t1, t2 = occ[1000], occ[2000]
    inside = [r.offset for r, o in zip(recs, occ, strict=True) if t1 <= o <= t2]
    out = tmp_path / "incident.kmarch"
    r = cli(s, "archive", "export", "--from", t1, "--to", t2, "-o", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"offsets {inside[0]}..{inside[-1]}" in r.stderr and "events that happened" in r.stderr
    h = archive.read_header(out)
    assert (h["covers_from"], h["covers_to"]) == (inside[0], inside[-1])
    # log time (--known): the same window saw nothing recorded (all was ingested just now)
    none = cli(s, "archive", "export", "--from", t1, "--to", t2, "--known", "-o", str(tmp_path / "k.kmarch"))
    assert none.returncode == 2 and "nothing selected" in none.stderr, none.stderr
