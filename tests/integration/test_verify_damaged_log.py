"""A byte damaged on the broker's disk, behind Kafka's back: ``verify --full`` reads without
Kafka's CRC-32C checks (``kafka.check_crcs``; they were ~3 s of its CPU at the large profile), so
what it reads must find the damage itself. An event's byte changed is a chain that does not
lead to the checkpoint's head; a snapshot chunk's byte changed is a snapshot that does not
match the fold (or cannot be read). Native stack only: the segment files are on this machine.

(Both damages keep the record's length and JSON valid where it is JSON: what a CRC alone would
catch, and a careless reader would not.) Every other reader checks the CRCs, and stops at such a
record with what is wrong (``kmevents.adapters.kafka.reader``), exit 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kmevents.processors.worker import DeriveWorker
from kmevents.replay import logsource
from kmevents.replay.verify import verify

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.errors import CheckFailed
from kmevents.settings import Settings
from kmevents.store.snapshots import index_entries
from tests.integration.test_processors import checkpoints, ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli
from tests.stacks import TestStack


def _damage(files: list[Path], needle: bytes, at: int) -> None:
    """Change the byte ``at`` of the one occurrence of ``needle`` in the segment ``files``
    (in place: the broker serves the file's pages as they are now)."""
    hits = [(f, i) for f in files for i in [f.read_bytes().find(needle)] if i >= 0]
    assert len(hits) == 1, f"{needle[:40]!r} found in {len(hits)} segment files"
    f, i = hits[0]
    with f.open("r+b") as fh:
        fh.seek(i + at)
        old = fh.read(1)
        fh.seek(i + at)
        fh.write(b"0" if old != b"0" else b"1")


def _segments(stack: TestStack, topic: str, partition: int) -> list[Path]:
    assert stack.kafka_data is not None
    return sorted((stack.kafka_data / f"{topic}-{partition}").glob("*.log"))


async def _damage_event(stack: TestStack, s: Settings, offset: int) -> int:
    """Damage the cluster's record at ``offset`` on disk (one hex digit of its event's id: the
    JSON stays valid, the record's length the same); returns its partition."""
    partition = await logsource.partition_of(s, s.cluster)
    assert partition is not None
    victim = (await kafka_adapter.read_range(s.kafka, s.kafka.events_topic, partition, offset, offset))[0]
    assert victim.value is not None
    at = victim.value.index(b'"event_id":"') + len(b'"event_id":"') + 3
    _damage(_segments(stack, s.kafka.events_topic, partition), victim.value, at)
    return partition


@pytest.fixture
def native_stack(stack: TestStack) -> TestStack:
    if stack.kafka_data is None:
        pytest.skip(f"the broker's segment files are not on this machine ({stack.kind} stack)")
    return stack


async def test_an_event_damaged_on_disk_breaks_the_chain(native_stack: TestStack, isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    await run_worker_until_caught_up(s, snapshot_every_events=600, delta_every_events=200, max_records=200)
    assert (await verify(s, [s.cluster], full=True, jobs=1)).clean
    await _damage_event(native_stack, s, 1000)

    report = await verify(s, [s.cluster], full=True, jobs=1)
    assert not report.clean
    assert any(f.kind == "chain" for f in report.findings), report.findings
    # a reader that checks the CRCs (every other one) stops with what is wrong, not a traceback
    out = cli(s, "verify")
    assert out.returncode == 1, out.stderr
    assert "fails Kafka's CRC-32C check" in out.stderr and "Traceback" not in out.stderr, out.stderr


async def test_a_snapshot_chunk_damaged_on_disk_is_drift(native_stack: TestStack, isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    await run_worker_until_caught_up(s, snapshot_every_events=600, delta_every_events=0, max_records=200)
    assert (await verify(s, [s.cluster], full=True, jobs=1)).clean
    async with etcd_adapter.client(s.etcd) as c:
        full = [e for e in await index_entries(s, c, s.cluster) if e.get("kind", "full") == "full"][-1]
    part, first = int(full["snapshot_partition"]), int(full["chunk_offsets"][0])
    chunk = (await kafka_adapter.read_range(s.kafka, s.kafka.snapshots_topic, part, first, first))[0].value
    assert chunk is not None and len(chunk) > 200
    _damage(_segments(native_stack, s.kafka.snapshots_topic, part), chunk[:64], 100)

    report = await verify(s, [s.cluster], full=True, jobs=1)
    assert not report.clean
    assert any(f.kind == "snapshot" and str(full["offset"]) in f"{f.key} {f.detail}" for f in report.findings), \
        report.findings


async def test_the_worker_stops_at_a_damaged_batch_with_what_is_wrong(native_stack: TestStack,
                                                                     isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 2000)
    partition = await _damage_event(native_stack, s, 1000)

    w = DeriveWorker(s, group_id=f"g-{s.cluster}", max_records=200)
    await w.start()
    try:
        with pytest.raises(CheckFailed, match="fails Kafka's CRC-32C check") as err:
            await asyncio.wait_for(w.run(), 120)
        assert "restore the partition" in (err.value.hint or "")
    finally:
        await w.stop()
    # nothing at or past the damaged record was committed
    cp = (await checkpoints(s)).get(partition)
    assert cp is None or cp.offset < 1000, cp
