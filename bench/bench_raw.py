"""Raw references later benchmarks compare against: aiokafka and aetcd on the local stack.

- aiokafka produce of N messages of ~200 bytes (idempotent, acks=all, batched)
  and consume of the same N; the same-run reference is each other.
- aetcd puts of 100-byte values in transactions of 100, against transactions of 1
  (one put per round trip) measured in the same run.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench._stack import running_stack
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings


async def _produce(s: Settings, topic: str, msgs: list[bytes]) -> float:
    p = kafka_adapter.producer(s.kafka, linger_ms=10, max_batch_size=512 * 1024)
    await p.start()
    t0 = time.perf_counter()
    try:
        batch = []
        for m in msgs:
            batch.append(await p.send(topic, m, partition=0))
            if len(batch) >= 20_000:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    finally:
        await p.stop()
    return time.perf_counter() - t0


async def _consume(s: Settings, topic: str, n: int) -> float:
    c = kafka_adapter.consumer(s.kafka, topic, max_partition_fetch_bytes=8 * 1024 * 1024,
                               fetch_max_bytes=32 * 1024 * 1024)
    await c.start()
    got = 0
    t0 = time.perf_counter()
    try:
        while got < n:
            batch = await c.getmany(timeout_ms=5000, max_records=50_000)
            if not batch:
                break
            got += sum(len(v) for v in batch.values())
    finally:
        await c.stop()
    assert got == n, f"consumed {got} of {n}"
    return time.perf_counter() - t0


async def _etcd_puts(s: Settings, n: int, per_txn: int) -> float:
    value = b"v" * 100
    prefix = f"/bench/{uuid.uuid4().hex[:8]}/".encode()
    async with etcd_adapter.client(s.etcd) as c:
        t0 = time.perf_counter()
        for i in range(0, n, per_txn):
            ops = [c.transactions.put(prefix + b"%08d" % j, value) for j in range(i, min(n, i + per_txn))]
            await c.transaction(compare=[], success=ops, failure=[])
        took = time.perf_counter() - t0
        await c.delete_prefix(prefix)
    return took


def run(quick: bool) -> list[dict]:
    n_kafka = 100_000 if quick else 1_000_000
    n_etcd_batched = 20_000 if quick else 200_000
    n_etcd_single = 2_000 if quick else 10_000
    msg = (b'{"type":"task.status_updated","cluster":"bench","payload":{"task_id":"pod.%08d",'
           b'"state":"TASK_RUNNING","uuid":"0123456789abcdef"}}').ljust(200, b" ")
    msgs = [msg.replace(b"%08d", b"%08d" % i) for i in range(n_kafka)]
    with running_stack() as s:
        topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
        produce_s = asyncio.run(_produce(s, topic, msgs))
        consume_s = asyncio.run(_consume(s, topic, n_kafka))
        single_s = asyncio.run(_etcd_puts(s, n_etcd_single, 1))
        batched_s = asyncio.run(_etcd_puts(s, n_etcd_batched, 100))
    prod_rate, cons_rate = n_kafka / produce_s, n_kafka / consume_s
    single_rate, batched_rate = n_etcd_single / single_s, n_etcd_batched / batched_s
    return [
        {"name": f"aiokafka produce {n_kafka:,} x 200 B (idempotent, acks=all)", "figure": prod_rate,
         "unit": "msgs/s", "baseline": "aiokafka consume, same run", "baseline_figure": cons_rate,
         "ratio": prod_rate / cons_rate, "aim": None, "met": None,
         "notes": f"{prod_rate * 200 / 1e6:.1f} MB/s"},
        {"name": f"aiokafka consume {n_kafka:,} x 200 B", "figure": cons_rate, "unit": "msgs/s",
         "baseline": "aiokafka produce, same run", "baseline_figure": prod_rate,
         "ratio": cons_rate / prod_rate, "aim": None, "met": None, "notes": ""},
        {"name": f"aetcd {n_etcd_batched:,} puts in transactions of 100", "figure": batched_rate,
         "unit": "puts/s", "baseline": "aetcd transactions of 1, same run", "baseline_figure": single_rate,
         "ratio": batched_rate / single_rate, "aim": None, "met": None, "notes": "100-byte values"},
    ]
