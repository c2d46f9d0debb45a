"""The local stack is real: Kafka round trips, etcd transactions and past reads, restarts keep data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings
from tests.stacks import TestStack


async def _produce(s: Settings, n: int, topic: str | None = None) -> None:
    p = kafka_adapter.producer(s.kafka)
    await p.start()
    try:
        for i in range(n):
            await p.send(topic or s.kafka.events_topic, f"event-{i}".encode(), key=b"k", partition=0)
        await p.flush()
    finally:
        await p.stop()


async def _consume(s: Settings, n: int, topic: str | None = None) -> list:
    c = kafka_adapter.consumer(s.kafka, topic or s.kafka.events_topic)
    await c.start()
    got: list = []
    try:
        while len(got) < n:
            batch = await c.getmany(timeout_ms=5000)
            if not batch:
                break
            for recs in batch.values():
                got.extend(recs)
    finally:
        await c.stop()
    return got


async def test_kafka_round_trip_keeps_order_and_uses_log_append_time(isolated: Settings) -> None:
    await _produce(isolated, 1000)
    recs = await _consume(isolated, 1000)
    assert [r.value for r in recs] == [f"event-{i}".encode() for i in range(1000)]
    assert [r.offset for r in recs] == list(range(1000))
    assert {r.timestamp_type for r in recs} == {kafka_adapter.LOG_APPEND_TIME}


async def test_topics_are_created_with_their_settings(isolated: Settings) -> None:
    k = isolated.kafka
    info = await kafka_adapter.describe_topics(k, [k.events_topic, k.snapshots_topic, k.deadletter_topic])
    assert info[k.events_topic]["partitions"] == k.partitions
    assert info[k.events_topic]["configs"]["message.timestamp.type"] == "LogAppendTime"
    assert info[k.events_topic]["configs"]["retention.ms"] == "-1"
    assert int(info[k.snapshots_topic]["configs"]["max.message.bytes"]) == k.snapshot_max_message_bytes
    assert info[k.deadletter_topic]["partitions"] == 1


async def test_etcd_transaction_compares_and_reads_at_past_revision(isolated: Settings) -> None:
    prefix = isolated.etcd.prefix.encode()
    key = prefix + b"/checkpoint"
    async with etcd_adapter.client(isolated.etcd) as c:
        t = c.transactions
        ok, _ = await c.transaction(compare=[t.version(key) == 0], success=[t.put(key, b"offset=1")], failure=[])
        assert ok
        rev1, kvs = await etcd_adapter.range_at(c, key)
        assert kvs[0].value == b"offset=1"
        # A stale writer (expects version 0) is refused: this is the fencing compare.
        ok, _ = await c.transaction(compare=[t.version(key) == 0], success=[t.put(key, b"stale")], failure=[])
        assert not ok
        ok, _ = await c.transaction(compare=[t.value(key) == b"offset=1"], success=[t.put(key, b"offset=2")], failure=[])
        assert ok
        _, now = await etcd_adapter.range_at(c, key)
        _, past = await etcd_adapter.range_at(c, key, revision=rev1)
        assert now[0].value == b"offset=2"
        assert past[0].value == b"offset=1"
        # A transaction over the limit is refused by etcd itself.
        too_many = [t.put(prefix + f"/k{i}".encode(), b"v") for i in range(isolated.etcd.max_txn_ops + 1)]
        with pytest.raises(Exception, match="too many operations"):
            await c.transaction(compare=[], success=too_many, failure=[])
        _, listed = await etcd_adapter.range_at(c, prefix, range_end=etcd_adapter.prefix_end(prefix))
        assert [kv.key for kv in listed] == [key]
        # The probe finds the server's limit by halving from what is asked, and writes nothing.
        limit = isolated.etcd.max_txn_ops
        assert await etcd_adapter.txn_ops_limit(c, limit) == limit
        assert await etcd_adapter.txn_ops_limit(c, limit * 4) == limit
        assert await etcd_adapter.txn_ops_limit(c, limit * 4, floor=limit * 2) == limit * 2  # floor wins
        assert await etcd_adapter.txn_ops_limit(c, 3) == 3
        _, everything = await etcd_adapter.range_at(c, b"\x00", range_end=b"\x00kmevents0")
        assert everything == []


def test_restart_keeps_data(stack: TestStack, isolated: Settings) -> None:
    if stack.restart_kafka is None or stack.restart_etcd is None:
        pytest.skip(f"the {stack.kind} backend cannot restart services")
    import asyncio

    async def write() -> None:
        await _produce(isolated, 50)
        async with etcd_adapter.client(isolated.etcd) as c:
            await c.put(isolated.etcd.prefix.encode() + b"/kept", b"yes")

    async def read() -> tuple[int, bytes]:
        recs = await _consume(isolated, 50)
        async with etcd_adapter.client(isolated.etcd) as c:
            _, kvs = await etcd_adapter.range_at(c, isolated.etcd.prefix.encode() + b"/kept")
        return len(recs), kvs[0].value

    asyncio.run(write())
    stack.restart_kafka()
    stack.restart_etcd()
    assert asyncio.run(read()) == (50, b"yes")


def test_status_json_reports_both_components_healthy(stack: TestStack) -> None:
    if stack.kind != "native":
        pytest.skip("status reads the native stack's PID files")
    st = stack.settings.stack
    out = subprocess.run(
        [sys.executable, "-m", "kmevents.cli", "stack", "status", "--format", "json",
         "--home", str(st.home), "--kafka-port", str(st.kafka_port), "--etcd-port", str(st.etcd_port)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["kafka"]["bootstrap"] == f"127.0.0.1:{st.kafka_port}"
    assert data["kafka"]["healthy"] is True
    assert data["etcd"]["endpoint"] == f"http://127.0.0.1:{st.etcd_port}"
    assert data["etcd"]["healthy"] is True
