"""``kmevents snapshots backfill`` on real Kafka + etcd (replay/versions_backfill.py): the versions
records of the blocks the worker stored none for, built from the stored state before them, equal
byte for byte to a plain fold's capture (the worker's own records are checked against the same
oracle in test_versions_worker.py); a second run builds nothing; a follower builds the blocks a
``--no-versions`` worker closes while it runs, says so on its /metrics and /readyz (real HTTP), and
stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
from kmevents.replay.engine import Target, replay
from kmevents.replay.opening import open_log
from kmevents.replay.verify_versions import check
from kmevents.replay.versions_backfill import Backfill, Pass

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings, child_env
from kmevents.stack.process import free_port
from kmevents.store.snapshots import SnapshotStore, SnapshotWriter
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_versions_worker import SMALL, _check_against_the_fold, _stored
from tests.integration.test_worker_hardening import _get


def _cli(s: Settings, *args: str, which: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "kmevents.cli", "snapshots", "backfill", *(which or ("--cluster", s.cluster)),
            "--no-progress", *args]


def _env(s: Settings) -> dict[str, str]:
    return {**os.environ, **child_env(s)}


def _backfill_json(s: Settings, *args: str) -> dict[str, Any]:
    out = subprocess.run(_cli(s, "--format", "json", *args), env=_env(s), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return orjson.loads(out.stdout)


async def _backfill(s: Settings, **kw: Any) -> Pass:
    """One pass in this process (``Backfill`` with ``kw``)."""
    k = s.kafka
    producer = kafka_adapter.producer(k, max_request_size=k.snapshot_max_message_bytes)
    await producer.start()
    try:
        async with open_log(s, cluster=s.cluster) as o:
            store = SnapshotStore(s, o.client)
            b = Backfill(s, s.cluster, o.client, snapshots=store, writer=SnapshotWriter(s, producer, o.client),
                         partition=o.source.partition, **kw)
            return await b.run(o.source)
    finally:
        await producer.stop()


async def _verify_versions(s: Settings) -> Any:
    async with open_log(s, cluster=s.cluster) as o, etcd_adapter.client(s.etcd) as c:
        return await check(s, o.source, s.cluster, c)


async def _a_pod(s: Settings) -> str:
    """A pod of the log's middle."""
    async with open_log(s, cluster=s.cluster) as o:
        _, last = await o.source.covers()
        st = (await replay(o.source, s.cluster, Target(offset=last // 2), progress=False)).state
    return sorted(st.pods)[len(st.pods) // 2]


def _history(s: Settings, pod: str) -> tuple[dict[str, Any], str]:
    """``history pod/POD --format json`` (its document), and the text form's stderr."""
    argv = [sys.executable, "-m", "kmevents.cli", "history", "--cluster", s.cluster, "--no-progress", f"pod/{pod}"]
    doc = subprocess.run([*argv, "--format", "json"], env=_env(s), capture_output=True, text=True, timeout=300)
    text = subprocess.run(argv, env=_env(s), capture_output=True, text=True, timeout=300)
    assert doc.returncode == 0 and text.returncode == 0, (doc.stderr[-2000:], text.stderr[-2000:])
    return orjson.loads(doc.stdout), text.stderr


def test_a_backfill_builds_every_record_a_no_versions_worker_left_equal_to_the_folds_capture(
        isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 3000))
    asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
    blocks, entries = asyncio.run(_stored(s))
    assert len(blocks) == 15 and entries == {}

    planned = _backfill_json(s, "--dry-run")
    (row,) = planned["clusters"]
    assert (row["blocks"], row["missing"], row["built"], row["left_to_worker"]) == (15, 12, 0, 3)
    assert row["missing_blocks"] == [[b.first, b.last] for b in blocks[:12]]
    assert asyncio.run(_stored(s))[1] == {}  # a dry run writes nothing
    assert asyncio.run(_verify_versions(s)).without_record == 15
    text = subprocess.run(_cli(s, "--dry-run"), env=_env(s), capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "15 closed blocks, 0 with a versions record, 12 without" in text.stdout, text
    assert f"  {blocks[0].first}..{blocks[0].last}\n" in text.stdout and "--skip-newest 0" in text.stderr

    pod = asyncio.run(_a_pod(s))
    before, note = _history(s, pod)
    assert before["index"]["folded_without_record"] >= 1 and before["index"]["read"] == 0, before["index"]
    assert f"kmevents snapshots backfill --cluster {s.cluster}" in note

    (row,) = _backfill_json(s, "--skip-newest", "0")["clusters"]
    assert (row["built"], row["had_records"], row["skipped"]) == (15, 0, None)
    after, note = _history(s, pod)  # the same history, now read from the records
    assert after["index"]["folded_without_record"] == 0 and after["index"]["read"] >= 1, after["index"]
    assert after["events"] == before["events"] and "backfill" not in note
    assert row["records_folded"] == blocks[-1].last + 1  # folded once, from the start
    blocks, entries = asyncio.run(_stored(s))
    assert set(entries) == {(b.first, b.last) for b in blocks}
    asyncio.run(_check_against_the_fold(s, blocks, entries))

    again = subprocess.run(_cli(s, "--skip-newest", "0"), env=_env(s), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "15 with a versions record, 0 without; built 0" in again.stdout, again
    found = asyncio.run(_verify_versions(s))
    assert (found.checked, found.without_record, found.differ) == (15, 0, [])


def test_blocks_a_restart_refolded_or_whose_record_was_deleted_are_built_from_the_stored_state_before_them(
        isolated: Settings) -> None:
    """The worker's own records with holes: the block a restart resumed (no record) and a deleted
    record; each is built from the snapshot or delta before it when there is one past the fold
    (``jump=0``), and equals the plain fold's capture."""
    s = isolated
    kw = {**SMALL, "snapshot_every_events": 550, "max_records": 100}
    asyncio.run(ingest_sim(s, s.cluster, 1130))  # the worker stops with a block open
    asyncio.run(run_worker_until_caught_up(s, **kw))
    asyncio.run(ingest_sim(s, s.cluster, 900, seed=2))
    asyncio.run(run_worker_until_caught_up(s, **kw))
    blocks, entries = asyncio.run(_stored(s))
    holes = [b for b in blocks if (b.first, b.last) not in entries]
    assert len(holes) == 1, holes  # the block the restart resumed
    deleted = blocks[3]  # (600..799: the worker took a snapshot in 400..599)
    assert deleted.last < holes[0].first

    async def delete() -> None:
        key = layout.versions_index_key(f"{s.etcd.prefix}/{layout.live_generation()}", s.cluster, deleted.first)
        async with etcd_adapter.client(s.etcd) as c:
            await c.delete(key)

    asyncio.run(delete())
    got = asyncio.run(_backfill(s, skip_newest=0, jump=0))
    assert got.built == 2 and got.missing == sorted([(deleted.first, deleted.last), (holes[0].first, holes[0].last)])
    # from a stored state, not from the log's start (which would fold through the hole's end)
    assert got.loads >= 1 and got.folded < holes[0].last + 1, got
    blocks, entries = asyncio.run(_stored(s))
    assert set(entries) == {(b.first, b.last) for b in blocks}
    asyncio.run(_check_against_the_fold(s, blocks, entries))


def test_a_follower_builds_the_blocks_a_no_versions_worker_closes_while_it_runs_and_stops_on_sigterm(
        isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 1000))
    asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
    port = free_port()
    started = time.time()
    proc = subprocess.Popen(_cli(s, "--skip-newest", "0", "--follow", "--interval", "0.3", "--format", "json",
                                 "--metrics-port", str(port), which=("--all-clusters",)),
                            env=_env(s), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_built(s, proc, 5)  # the log so far
        asyncio.run(ingest_sim(s, s.cluster, 1400, seed=3))  # then the blocks a worker closes meanwhile
        asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
        _wait_built(s, proc, 12)
        # its metrics say what it built, per cluster, once the pass that stored the last record ended
        m = _until(lambda: _metrics(port), lambda m: m.get(("kmevents_backfill_records_built_total", s.cluster)) == 12)
        assert m[("kmevents_backfill_blocks_waiting", s.cluster)] == 0
        assert m[("kmevents_backfill_pass_failures_total", s.cluster)] == 0
        assert m[("kmevents_backfill_failing_seconds", s.cluster)] == 0
        assert m[("kmevents_backfill_passes_total", s.cluster)] >= 2
        assert m[("kmevents_backfill_records_folded_total", s.cluster)] >= 1000
        assert m[("kmevents_backfill_stored_bytes_total", s.cluster)] > 0
        assert started < m[("kmevents_backfill_last_pass_timestamp_seconds", s.cluster)] <= time.time()
        code, doc = _get(port, "/readyz")
        assert code == 200 and doc["ready"] and doc["clusters"][s.cluster]["built"] == 12, doc
        assert _get(port, "/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    *passes, last = [orjson.loads(line) for line in stdout.splitlines()]  # JSON lines: a pass each, then totals
    assert passes and all(p["built"] for p in passes) and sum(p["built"] for p in passes) == 12
    assert last["stopped"] and last["passes"] >= 2 and last["clusters"][0]["built"] == 12
    blocks, entries = asyncio.run(_stored(s))
    asyncio.run(_check_against_the_fold(s, blocks, entries))


def test_before_any_worker_it_says_there_is_nothing_to_build_and_why(isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 100))  # ingested, never derived
    one = subprocess.run(_cli(s), env=_env(s), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and "0 closed blocks" in one.stdout, one
    assert "no closed block of the touched-entity index yet" in one.stderr, one.stderr
    every = subprocess.run(_cli(s, which=("--all-clusters",)), env=_env(s), capture_output=True, text=True, timeout=300)
    assert every.returncode == 0 and "no cluster has a worker checkpoint" in every.stderr, every.stderr
    unknown = subprocess.run(_cli(s, which=("--cluster", "nosuch")), env=_env(s), capture_output=True, text=True,
                             timeout=300)
    assert unknown.returncode == 2 and "never ingested" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_backfill_killed_mid_run_leaves_only_whole_records_and_the_next_run_builds_the_rest(
        isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 16000))  # (80 blocks: a few seconds to build, the kill comes in ~0.1 s)
    asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
    blocks = asyncio.run(_stored(s))[0]
    assert len(blocks) == 80
    proc = subprocess.Popen(_cli(s, "--skip-newest", "0"), env=_env(s), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not asyncio.run(_stored(s))[1]:  # killed once its first records are stored
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    some = asyncio.run(_stored(s))[1]
    assert 0 < len(some) < len(blocks), len(some)  # (killed mid-run)
    asyncio.run(_check_against_the_fold(s, blocks, some))  # each record stored is whole and right
    (row,) = _backfill_json(s, "--skip-newest", "0")["clusters"]
    assert row["built"] == len(blocks) - row["had_records"] and row["had_records"] >= len(some)
    blocks, entries = asyncio.run(_stored(s))
    assert set(entries) == {(b.first, b.last) for b in blocks}
    asyncio.run(_check_against_the_fold(s, blocks, entries))


def test_a_follower_outlives_an_etcd_outage_and_builds_the_blocks_closed_after_it(isolated: Settings,
                                                                                   tmp_path: Any) -> None:
    from tests.integration.test_worker_hardening import _PrivateEtcd

    etcd = _PrivateEtcd(tmp_path)
    etcd.start(quota=256 * 1024 * 1024)
    s = isolated.model_copy(deep=True)
    s.etcd.endpoint = etcd.endpoint
    proc = None
    try:
        asyncio.run(ingest_sim(s, s.cluster, 1000))
        asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
        port = free_port()
        proc = subprocess.Popen(_cli(s, "--skip-newest", "0", "--follow", "--interval", "0.3",
                                     "--metrics-port", str(port)), env=_env(s),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_built(s, proc, 5)
        assert _until(lambda: _get(port, "/readyz"), lambda got: got[0] == 200)
        etcd.stop()
        time.sleep(3)  # passes fail meanwhile
        assert proc.poll() is None
        # not ready while its passes fail, and its metrics say for how long; alive all the same
        code, doc = _until(lambda: _get(port, "/readyz"), lambda got: got[0] == 503)
        assert not doc["ready"] and s.cluster in doc["reason"] and doc["clusters"][s.cluster]["last_error"], doc
        assert _get(port, "/healthz")[0] == 200
        m = _metrics(port)
        assert m[("kmevents_backfill_pass_failures_total", s.cluster)] >= 1
        assert m[("kmevents_backfill_failing_seconds", s.cluster)] > 0
        etcd.start(quota=256 * 1024 * 1024)
        asyncio.run(ingest_sim(s, s.cluster, 1400, seed=3))
        asyncio.run(run_worker_until_caught_up(s, versions=False, **SMALL))
        _wait_built(s, proc, 12)
        assert _until(lambda: _get(port, "/readyz"), lambda got: got[0] == 200)
        assert _metrics(port)[("kmevents_backfill_failing_seconds", s.cluster)] == 0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        etcd.stop()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert "backfill pass failed; retrying" in stderr, stderr[-3000:]


def _wait_built(s: Settings, proc: Any, n: int) -> None:
    """Until every one of the ``n`` closed blocks has a record (the follower ``proc`` running)."""
    blocks = asyncio.run(_stored(s))[0]
    assert len(blocks) == n
    deadline = time.monotonic() + 120
    while set(asyncio.run(_stored(s))[1]) != {(b.first, b.last) for b in blocks}:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"the follower did not build the {n} blocks' records in 120 s"
        time.sleep(0.3)


def _metrics(port: int) -> dict[tuple[str, str], float]:
    """The follower's /metrics: each ``name{cluster="..."}`` sample's value by ``(name, cluster)``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(sample.name, sample.labels.get("cluster", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _until(get: Any, ok: Any, timeout: float = 30.0) -> Any:
    """``get()`` again until ``ok`` of it (at most ``timeout`` seconds); the last one."""
    deadline = time.monotonic() + timeout
    while True:
        got = get()
        if ok(got) or time.monotonic() > deadline:
            assert ok(got), f"not so after {timeout:.0f} s: {got}"
            return got
        time.sleep(0.2)
