"""The ingest path on real Kafka + etcd: per-event results, redaction, partition pinning."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from kmevents.adapters import kafka as kafka_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.store.partition_map import PartitionMap
from tests.stacks import TestStack

SECRET = "hunter2-do-not-log"


def status_event(cluster: str, n: int, **status: object) -> dict:
    return {
        "type": "task.status_updated", "schema_version": 1, "cluster": cluster,
        "source": {"kind": "mesos.scheduler", "stream_id": "s1", "seq": n},
        "occurred_at": f"2026-01-01T00:00:{n % 60:02d}Z", "clock": "agent", "raw_type": "UPDATE",
        "actor": None, "correlation_id": None, "causation_id": None,
        "payload": {"status": {
            "task_id": f"pod.{n}", "state": "TASK_RUNNING", "source": "SOURCE_AGENT", "reason": None,
            "message": None, "uuid": f"u{n}", "healthy": None, "timestamp": 1.0 + n, "agent_id": "a1",
            "executor_id": None, "labels": None, "data": None, **status}},
    }


async def read_all(s: Settings) -> list:
    c = kafka_adapter.consumer(s.kafka, s.kafka.events_topic)
    await c.start()
    out: list = []
    try:
        while True:
            batch = await c.getmany(timeout_ms=2000)
            if not batch:
                return out
            for recs in batch.values():
                out.extend(recs)
    finally:
        await c.stop()


async def test_invalid_events_are_refused_precisely_and_valid_ones_of_the_batch_accepted(isolated: Settings) -> None:
    bad = status_event(isolated.cluster, 2)
    bad["payload"]["status"]["state"] = 42
    unknown = status_event(isolated.cluster, 3) | {"type": "task.teleported"}
    batch = [status_event(isolated.cluster, 1), bad, unknown, "not an object", status_event(isolated.cluster, 4)]
    async with Ingestor(isolated) as ing:
        results = await ing.submit(batch)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert any(f == "payload.status.state" for f, _ in results[1].errors)
    assert "task.teleported" in results[2].errors[0][1]
    assert results[0].partition == results[4].partition
    assert results[4].offset == results[0].offset + 1
    recs = await read_all(isolated)
    assert [orjson.loads(r.value)["payload"]["status"]["task_id"] for r in recs] == ["pod.1", "pod.4"]
    assert {r.key for r in recs} == {isolated.cluster.encode()}


async def test_offsets_hold_across_many_record_batches_and_partitions(isolated: Settings) -> None:
    """Full record batches go to Kafka while the rest of the submission is still validated
    (``ingest.outbox``): every event's reported offset must still hold exactly that event."""
    clusters = [isolated.cluster, f"{isolated.cluster}-b", f"{isolated.cluster}-c"]
    pad = "x" * 2000  # ~2.5 kB events: a record batch holds ~200, so the submission spans many
    batch = [status_event(clusters[n % 3], n, message=pad) for n in range(3000)]
    async with Ingestor(isolated) as ing:
        results = await ing.submit(batch)
    assert all(r.ok for r in results)
    where = {(r.partition, r.offset): r.event_id for r in results}
    assert len(where) == len(batch)
    recs = await read_all(isolated)
    assert {(r.partition, r.offset): orjson.loads(r.value)["event_id"] for r in recs} == where
    for cluster in clusters:  # each cluster's events keep their submission order in its partition
        mine = [r for r in results if r.cluster == cluster]
        assert [r.offset for r in mine] == sorted(r.offset for r in mine)


async def test_secrets_never_reach_kafka(isolated: Settings) -> None:
    launched = {
        "type": "task.launched", "schema_version": 1, "cluster": isolated.cluster,
        "source": {"kind": "mesos.scheduler", "stream_id": "s1", "seq": 9},
        "occurred_at": "2026-01-01T00:00:00Z", "clock": "master", "raw_type": "ACCEPT", "actor": None,
        "correlation_id": None, "causation_id": None,
        "payload": {"offer_id": "o1", "task": {
            "task_id": "pod.9", "name": "web", "framework_id": "f1", "agent_id": "a1", "executor_id": None,
            "resources": [], "labels": {"app": "web", "db-password": SECRET}, "pod": None,
            "data": f'{{"env": [{{"name": "MYSQL_ROOT_PASSWORD", "value": "{SECRET}"}}]}}'}},
    }
    status = status_event(isolated.cluster, 10, data=SECRET, message=f"start failed: API_TOKEN={SECRET}")
    async with Ingestor(isolated) as ing:
        results = await ing.submit([launched, status])
    assert all(r.ok for r in results), [r.errors for r in results]
    assert "payload.task.data" in results[0].redacted
    recs = await read_all(isolated)
    assert len(recs) == 2
    for r in recs:
        assert SECRET.encode() not in r.value
    stored = orjson.loads(recs[0].value)
    assert "payload.task.labels.db-password" in stored["redacted"]
    assert stored["payload"]["task"]["labels"]["app"] == "web"


async def test_clusters_are_pinned_to_the_least_loaded_partition_and_stay_there(isolated: Settings) -> None:
    names = [f"{isolated.cluster}-{i}" for i in range(isolated.kafka.partitions)]
    async with Ingestor(isolated) as ing:
        first = [r.partition for r in await ing.submit([status_event(n, 1) for n in names])]
    assert sorted(first) == list(range(isolated.kafka.partitions)), "one new cluster per empty partition"
    # A new ingestor (a restart) reads the persistent map: nothing moves.
    async with Ingestor(isolated) as ing:
        again = [r.partition for r in await ing.submit([status_event(n, 2) for n in reversed(names)])]
    assert again == list(reversed(first))
    pm = PartitionMap(isolated, isolated.kafka.partitions + 4)  # partitions added later
    await pm.start()
    try:
        assert [await pm.partition_for(n) for n in names] == first
    finally:
        await pm.stop()


def test_no_accepted_event_is_lost_across_a_broker_restart(stack: TestStack, isolated: Settings) -> None:
    if stack.restart_kafka is None:
        pytest.skip(f"the {stack.kind} backend cannot restart Kafka")

    async def ingest_through_restart() -> list:
        accepted: list = []
        async with Ingestor(isolated) as ing:
            loop = asyncio.get_running_loop()
            restart = loop.run_in_executor(None, stack.restart_kafka)
            n = 0
            while not restart.done() or n < 3000:
                batch = [status_event(isolated.cluster, n + i) for i in range(200)]
                for r in await ing.submit(batch, start_index=n):
                    if r.ok:
                        accepted.append(r.event_id)
                n += 200
                if n > 20_000:
                    break
            await restart
        return accepted

    accepted = asyncio.run(ingest_through_restart())
    stored = {orjson.loads(r.value)["event_id"] for r in asyncio.run(read_all(isolated))}
    assert accepted, "nothing was accepted"
    assert set(accepted) <= stored, f"{len(set(accepted) - stored)} accepted events are missing"


def test_ingest_command_reports_every_bad_line_and_writes_the_good_ones(isolated: Settings, tmp_path: Path) -> None:
    good = [status_event(isolated.cluster, i) for i in range(5)]
    bad = copy.deepcopy(good[0])
    del bad["payload"]["status"]["task_id"]
    bad["event_id"] = "e-bad"
    lines = [orjson.dumps(e) for e in good[:3]] + [b"{not json", orjson.dumps(bad), b"",
                                                    b"\xff\xfe", orjson.dumps(good[3]), orjson.dumps(good[4])[:-5]]
    f = tmp_path / "events.jsonl"
    f.write_bytes(b"\n".join(lines))
    out = subprocess.run(
        [sys.executable, "-m", "kmevents.cli", "ingest", str(f), "--quiet",
         "--bootstrap", isolated.kafka.bootstrap, "--etcd", isolated.etcd.endpoint],
        capture_output=True, text=True, timeout=120,
        env={"KMEVENTS_KAFKA__EVENTS_TOPIC": isolated.kafka.events_topic,
             "KMEVENTS_ETCD__PREFIX": isolated.etcd.prefix, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1, out.stderr
    errs = out.stderr.strip().splitlines()
    assert errs[0].startswith(f"{f}:4: -: -: not JSON")
    assert errs[1].startswith(f"{f}:5: e-bad: payload.status.task_id:")
    assert errs[2].startswith(f"{f}:7: -: -: not UTF-8")
    assert errs[3].startswith(f"{f}:9: -: -: truncated last line")
    assert "accepted 4 events" in out.stdout
    assert len(asyncio.run(read_all(isolated))) == 4


def test_odd_lines_in_every_batch_are_refused_one_by_one_and_every_valid_event_is_written(
        isolated: Settings, tmp_path: Path) -> None:
    """Issue 14: an odd line used to abort the run with a traceback, leaving its batch unwritten and no
    summary (a rerun then duplicated the earlier batches)."""
    good = [status_event(isolated.cluster, i) for i in range(8)]
    odd = [
        {**good[0], "schema_version": {}},                          # was a TypeError
        {**good[0], "occurred_at": 1767225600000000},               # epoch microseconds: was an OverflowError
        {**good[0], "occurred_at": 1767225600000.0},                # float milliseconds: was an OverflowError
        {**good[0], "occurred_at": "9999-12-31T23:59:59Z"},         # far beyond the ingest clock
    ]
    twice = orjson.dumps(good[0])[:-1] + b',"type":"task.status_updated"}'
    lines = [orjson.dumps(good[0]), orjson.dumps(odd[0]), orjson.dumps(good[1]), orjson.dumps(odd[1]),
             orjson.dumps(good[2]), orjson.dumps(good[3]), orjson.dumps(odd[2]), twice, orjson.dumps(good[4]),
             orjson.dumps(odd[3]), orjson.dumps(good[5]), orjson.dumps(good[6]), orjson.dumps(good[7])]
    f = tmp_path / "odd.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = subprocess.run(
        [sys.executable, "-m", "kmevents.cli", "ingest", str(f), "--quiet", "--batch", "3",
         "--bootstrap", isolated.kafka.bootstrap, "--etcd", isolated.etcd.endpoint],
        capture_output=True, text=True, timeout=120,
        env={"KMEVENTS_KAFKA__EVENTS_TOPIC": isolated.kafka.events_topic,
             "KMEVENTS_ETCD__PREFIX": isolated.etcd.prefix, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    errs = out.stderr.strip().splitlines()
    assert errs[0].startswith(f"{f}:2: ") and ": schema_version: " in errs[0]
    assert errs[1].startswith(f"{f}:4: ") and "looks like microseconds: divide by 1,000" in errs[1]
    assert errs[2].startswith(f"{f}:7: ") and "looks like milliseconds" in errs[2]
    assert errs[3].startswith(f"{f}:8: -: -: duplicate key 'type' in event at line 8")
    assert errs[4].startswith(f"{f}:10: ") and "KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS" in errs[4]
    assert "accepted 8 events" in out.stdout and "refused 5" in out.stdout
    written = [orjson.loads(r.value) for r in asyncio.run(read_all(isolated))]
    assert sorted(e["source"]["seq"] for e in written) == list(range(8))
