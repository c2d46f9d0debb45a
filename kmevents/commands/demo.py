"""``kmevents demo``: the main job end to end on the local stack.

Today: bring the stack up and prove it with a round trip (10,000 events
produced and consumed through Kafka, written and read back in etcd in
transactions), then leave the stack running and say what to try next.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

from kmevents.commands._common import add_format_flag, emit_json
from kmevents.settings import Settings, load

HELP = """\
Run the main job on a local stack: start Kafka + etcd (kmevents stack up),
then prove the stack with a round trip of 10,000 events through Kafka and
etcd. The stack keeps running afterwards; `kmevents stack down` stops it.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the main job end to end on the local stack",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000, help="events in the round trip (default 10000)")
    add_format_flag(p, ("text", "json"))
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from kmevents.stack import Stack

    settings = load()
    text = args.format == "text"
    say = (lambda m: print(m, file=sys.stderr)) if text else (lambda m: None)
    say("1/2 starting the local stack (Kafka + etcd) ...")
    t0 = time.monotonic()
    stack = Stack(settings)
    statuses = stack.up(progress=lambda m: say(f"    {m}"))
    for w in stack.warnings:
        print(f"warning: {w}", file=sys.stderr)
    say(f"    up in {time.monotonic() - t0:.1f}s: Kafka {stack.bootstrap}, etcd {stack.etcd_endpoint}")
    say(f"2/2 round trip of {args.events:,} events through Kafka and etcd ...")
    result = asyncio.run(round_trip(settings, args.events))
    summary = {"stack": {s.name: s.as_dict() for s in statuses}, "round_trip": result}
    if not text:
        emit_json(summary)
    else:
        print(f"Kafka: produced {result['kafka_produced']:,} and consumed {result['kafka_consumed']:,} "
              f"in order in {result['kafka_seconds']:.2f}s")
        print(f"etcd:  wrote {result['etcd_written']:,} keys in transactions of "
              f"{result['etcd_txn_ops']} and read {result['etcd_read']:,} back in {result['etcd_seconds']:.2f}s")
        print()
        print("The stack is still running. Try next:")
        print("  kmevents stack status              health of Kafka and etcd")
        print("  kmevents stack logs kafka          the broker's log")
        print("  kmevents stack down                stop it (data kept; --wipe deletes it)")
    return 0 if result["ok"] else 1


async def round_trip(settings: Settings, n: int) -> dict[str, object]:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter

    tag = uuid.uuid4().hex[:8]
    topic = f"kmevents.demo.roundtrip.{tag}"
    payloads = [b'{"demo":%d,"tag":"%s"}' % (i, tag.encode()) for i in range(n)]

    t0 = time.monotonic()
    prod = kafka_adapter.producer(settings.kafka)
    await prod.start()
    try:
        for p in payloads:
            await prod.send(topic, p, partition=0)
        await prod.flush()
    finally:
        await prod.stop()
    cons = kafka_adapter.consumer(settings.kafka, topic)
    await cons.start()
    got: list[bytes] = []
    try:
        while len(got) < n:
            batch = await cons.getmany(timeout_ms=10_000)
            if not batch:
                break
            for recs in batch.values():
                got.extend(r.value for r in recs)
    finally:
        await cons.stop()
    kafka_seconds = time.monotonic() - t0

    t1 = time.monotonic()
    prefix = f"{settings.etcd.prefix}/_demo/{tag}/".encode()
    per_txn = min(100, settings.etcd.max_txn_ops)
    async with etcd_adapter.client(settings.etcd) as c:
        for i in range(0, n, per_txn):
            ops = [c.transactions.put(prefix + b"%08d" % j, payloads[j]) for j in range(i, min(n, i + per_txn))]
            ok, _ = await c.transaction(compare=[], success=ops, failure=[])
            assert ok
        _, kvs = await etcd_adapter.range_at(c, prefix, range_end=etcd_adapter.prefix_end(prefix))
        read = [kv.value for kv in kvs]
        await c.delete_prefix(prefix)
    etcd_seconds = time.monotonic() - t1
    return {
        "topic": topic,
        "kafka_produced": n,
        "kafka_consumed": len(got),
        "kafka_in_order": got == payloads,
        "kafka_seconds": round(kafka_seconds, 3),
        "etcd_written": n,
        "etcd_read": len(read),
        "etcd_txn_ops": per_txn,
        "etcd_equal": read == payloads,
        "etcd_seconds": round(etcd_seconds, 3),
        "ok": got == payloads and read == payloads,
    }
