"""``kmevents demo``: the main job end to end on the local stack.

Steps: bring the stack up and prove it with a round trip (10,000 events
through Kafka and etcd); simulate a Kubernetes-on-Mesos cluster; ingest it
(redact, validate, pin, produce); run a derivation worker until etcd holds
the fold of the whole log; print a summary of that state; verify etcd
against the log. The stack keeps running afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from kmevents.commands._common import add_format_flag, emit_json

if TYPE_CHECKING:
    from kmevents.settings import Settings

HELP = """\
Run the main job on a local stack: start Kafka + etcd (kmevents stack up),
prove the stack with a round trip, simulate a Kubernetes-on-Mesos cluster,
ingest it into the log, derive its state into etcd with a processor worker,
show a summary, one lost task's causal history (`kmevents history`) and the
evictions in the log (`kmevents search`), and verify etcd against the log
(`kmevents verify`). The stack keeps running
afterwards; `kmevents stack down` stops it.

examples:
  kmevents demo                                  everything, with the defaults
  kmevents demo --sim-events 200000 --seed 7     a bigger simulated cluster
  kmevents demo --format json | jq .round_trip.ok    the same, for a script
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job end to end on the local stack",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000, help="events in the round trip (default 10000)")
    p.add_argument("--cluster", default=None, help="simulated cluster name (default: demo-<random>)")
    p.add_argument("--sim-events", type=int, default=50_000, help="simulated cluster events (default 50000)")
    p.add_argument("--seed", type=int, default=1)
    add_format_flag(p, ("text", "json"))
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from kmevents.settings import load
    from kmevents.stack import Stack

    settings = load()
    text = args.format == "text"
    say = (lambda m: print(m, file=sys.stderr)) if text else (lambda m: None)
    say("1/6 starting the local stack (Kafka + etcd) ...")
    t0 = time.monotonic()
    stack = Stack(settings)
    statuses = stack.up(progress=lambda m: say(f"    {m}"))
    for w in stack.warnings:
        print(f"warning: {w}", file=sys.stderr)
    say(f"    up in {time.monotonic() - t0:.1f}s: Kafka {stack.bootstrap}, etcd {stack.etcd_endpoint}")
    say(f"2/6 round trip of {args.events:,} events through Kafka and etcd ...")
    result = asyncio.run(round_trip(settings, args.events))
    cluster = args.cluster or f"demo-{uuid.uuid4().hex[:6]}"
    pipeline = asyncio.run(pipeline_run(settings, cluster, args.sim_events, args.seed, say))
    result["ok"] = result["ok"] and pipeline["verify"]["clean"]
    summary = {"stack": {s.name: s.as_dict() for s in statuses}, "round_trip": result, "pipeline": pipeline}
    if not text:
        emit_json(summary)
    else:
        print(f"Kafka: produced {result['kafka_produced']:,} and consumed {result['kafka_consumed']:,} "
              f"in order in {result['kafka_seconds']:.2f}s")
        print(f"etcd:  wrote {result['etcd_written']:,} keys in transactions of "
              f"{result['etcd_txn_ops']} and read {result['etcd_read']:,} back in {result['etcd_seconds']:.2f}s")
        print(f"cluster {cluster}: simulated and ingested {pipeline['ingested']:,} events "
              f"({pipeline['ingest_rate']:,.0f}/s), derived into etcd in {pipeline['derive_seconds']:.1f}s")
        print("state in etcd: " + ", ".join(f"{n} {k}" for k, n in sorted(pipeline["entities"].items())))
        print(f"tasks by state: {pipeline['tasks_by_state']}")
        print_audit(pipeline, cluster)
        v = pipeline["verify"]
        print(f"verify: {'clean' if v['clean'] else 'DRIFT'}: {v['checked_keys']:,} keys compared with the fold "
              f"of the log; annotations {v['annotations']}")
        print()
        print("The stack is still running. Try next:")
        print("  kmevents process                   keep deriving as new events arrive")
        print(f"  kmevents simulate --cluster {cluster} --events 10000 --seed 2 -o more.jsonl && kmevents ingest more.jsonl")
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

    await kafka_adapter.ensure_topics(settings.kafka, [kafka_adapter.TopicSpec(topic, 1, 1, {})])
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
    got: list[bytes | None] = []
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


async def pipeline_run(settings: Settings, cluster: str, n: int, seed: int, say: object) -> dict[str, Any]:
    """Simulate -> ingest -> derive -> summarise -> verify, on the running stack."""
    from collections import Counter

    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.ingest import Ingestor
    from kmevents.processors.worker import DeriveWorker
    from kmevents.replay.verify import verify
    from kmevents.simulate import generate

    say(f"3/6 simulating cluster {cluster} ({n:,} events, seed {seed}) and ingesting it ...")  # type: ignore[operator]
    t0 = time.monotonic()
    refused = 0
    async with Ingestor(settings) as ing:
        buf: list[object] = []
        for ev in generate(cluster, seed, n):
            buf.append(ev)
            if len(buf) >= 5000:
                refused += sum(not r.ok for r in await ing.submit(buf))
                buf = []
        if buf:
            refused += sum(not r.ok for r in await ing.submit(buf))
    ingest_s = time.monotonic() - t0
    say("4/6 deriving the state into etcd (processor worker) ...")  # type: ignore[operator]
    t1 = time.monotonic()
    ends = await kafka_adapter.end_offsets(settings.kafka, settings.kafka.events_topic)
    worker = DeriveWorker(settings, group_id=f"kmevents-demo-{cluster}")
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        while True:
            done = all(p in worker.derivers and worker.derivers[p].checkpoint.offset >= end - 1
                       for p, end in ends.items() if end > 0)
            if done or task.done():
                break
            await asyncio.sleep(0.2)
    finally:
        worker.stop_requested.set()
        await task
        await worker.stop()
    derive_s = time.monotonic() - t1
    say("5/6 summarising etcd's state ...")  # type: ignore[operator]
    sp = layout.state_prefix(settings.etcd.prefix, cluster, layout.live_generation())
    async with etcd_adapter.client(settings.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
    import orjson

    kinds: Counter[str] = Counter()
    task_states: Counter[str] = Counter()
    lost: list[str] = []  # a lost task has the richest causal chain to show
    for kv in kvs:
        kind, entity_id = layout.split_entity_key(sp, kv.key)
        kinds[kind] += 1
        if kind == "task":
            state = str(orjson.loads(kv.value).get("state"))
            task_states[state] += 1
            if state == "TASK_LOST":
                lost.append(entity_id)
    say("6/6 one lost task's history, a search of the log, and verify ...")  # type: ignore[operator]
    # k8sm's own tasks (pod.<uid>) link to their pod too: the longest chain
    pick = min((t for t in lost if t.startswith("pod.")), default=min(lost) if lost else None)
    audit = await history_and_search(settings, cluster, pick)
    report = await verify(settings, [cluster])
    return {
        "cluster": cluster, "ingested": n - refused, "refused": refused,
        "ingest_rate": round((n - refused) / ingest_s, 1), "derive_seconds": round(derive_s, 2),
        "entities": dict(kinds), "tasks_by_state": dict(task_states.most_common()), **audit,
        "verify": {"clean": report.clean, "checked_keys": report.checked_keys,
                   "drift": [f.as_dict() for f in report.drift[:20]], "annotations": report.annotations},
    }


async def history_and_search(settings: Settings, cluster: str, task_id: str | None) -> dict[str, object]:
    """What `kmevents history task/ID` and `kmevents search --type pod.evicted` report, read from the log."""
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.replay import history, search
    from kmevents.replay.logsource import partition_of
    from kmevents.replay.sources import KafkaSource

    partition = await partition_of(settings, cluster)
    assert partition is not None, "the cluster was just ingested"
    topic = settings.kafka.events_topic
    # one consumer for the three passes over the log, as the reading commands do (replay/cli.py)
    reader = kafka_adapter.PartitionReader(settings.kafka, topic, partition)
    try:
        src = KafkaSource(settings.kafka, topic, partition, cluster, reader=reader)
        chain: list[dict[str, Any]] = []
        if task_id is not None:
            rel = await history.related(src, cluster, "task", [task_id], None, progress=False)
            chain = await history.collect(src, cluster, rel, progress=False)
        evictions = await search.search(src, search.Filters(types=["pod.evicted"]))
    finally:
        await reader.close()
    return {"history": {"entity": f"task/{task_id}" if task_id else None, "events": chain},
            "search": {"types": ["pod.evicted"], "count": len(evictions), "events": evictions}}


def print_audit(pipeline: dict[str, Any], cluster: str) -> None:
    hist = pipeline["history"]
    if hist["entity"]:
        events = hist["events"]
        print(f"history of {hist['entity']} (`kmevents history --cluster {cluster} {hist['entity']}`): "
              f"{len(events)} events, causal chain:")
        if len(events) > 12:
            print(f"  ... {len(events) - 12} earlier events (the full history has them)")
        for e in events[-12:]:
            results = "; ".join(f"{n} {r['condition']}" for n, r in e["results"].items()) or "(no change)"
            reason = f" [{e['reason']}]" if e["reason"] else ""
            print(f"  @{e['offset']} {e['occurred_at']} {e['type']}{reason} -> {results}")
    found = pipeline["search"]
    print(f"search (`kmevents search --cluster {cluster} --type pod.evicted`): {found['count']} evictions")
    for h in found["events"][:3]:
        payload = h["event"].get("payload", {})
        pod = payload.get("pod", {})
        print(f"  @{h['offset']} {h['occurred_at']} {pod.get('namespace', '?')}/{pod.get('name', '?')} "
              f"{payload.get('kind', '?')}: {payload.get('reason', '?')}")
