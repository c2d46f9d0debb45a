"""Every adapter's output through the real ingest path (Kafka + etcd): accepted,
and not one planted secret in any stored record. Plus the k8sm leader key
followed live on the real etcd and piped by run_source."""

from __future__ import annotations

import asyncio
import json

from kmevents.adapters import etcd as etcd_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from kmevents.sources import (
    AuditParser,
    KubernetesParser,
    OperatorParser,
    SchedulerParser,
    StateParser,
    run_source,
)
from tests.integration.test_ingest import read_all
from tests.samples import make_k8s, make_mesos
from tests.unit.sources._helpers import SAMPLES, load, ndjson, records

SECRETS = [make_mesos.SECRET_ENV, make_mesos.SECRET_DATA, make_mesos.SECRET_LABEL, make_mesos.SECRET_MSG,
           make_mesos.SECRET_FLAG, make_k8s.SECRET_ENV, make_k8s.SECRET_APPLIED, make_k8s.SECRET_ANNOTATION,
           make_k8s.SECRET_AUDIT, make_k8s.SECRET_EVENT]


def every_adapter_output(cluster: str) -> list[dict]:
    out: list[dict] = []
    op = OperatorParser(cluster, "op-1")
    for r in records("mesos/operator_subscribe.recordio"):
        out += op.feed_record(r)
    op.new_stream("op-2")
    for r in records("mesos/operator_resubscribe.recordio"):
        out += op.feed_record(r)
    sp = StateParser(cluster)
    for i in (1, 2, 3):
        out += sp.feed(load(f"mesos/master_state_{i}.json"))
    sc = SchedulerParser(cluster, "sched-1", framework_info=load("mesos/scheduler_framework_info.json"))
    for r in records("mesos/scheduler_events.recordio"):
        out += sc.feed_record(r)
    k = KubernetesParser(cluster)
    for resource, name in (("pods", "pods_watch"), ("nodes", "nodes_watch"),
                           ("replicationcontrollers", "rcs_watch"), ("services", "services_watch"),
                           ("endpoints", "endpoints_watch"), ("events", "events_watch")):
        for ev in ndjson(f"k8s/{name}.ndjson"):
            out += k.feed(resource, ev)
    out += k.relist("pods", load("k8s/pods_relist.json")["items"])
    out += AuditParser(cluster, pod_uid=k.pod_uid).feed_list(load("k8s/audit_events.json"))
    return out


def test_samples_hold_the_secrets_the_test_looks_for() -> None:
    raw = b"".join(p.read_bytes() for p in SAMPLES.rglob("*") if p.suffix in (".json", ".ndjson", ".recordio"))
    import base64
    for s in SECRETS:
        assert s.encode() in raw or base64.b64encode(s.encode()) in raw or s == make_k8s.SECRET_AUDIT, s


async def test_no_secret_from_any_adapter_input_reaches_kafka(isolated: Settings) -> None:
    events = every_adapter_output(isolated.cluster)
    async with Ingestor(isolated) as ing:
        results = await ing.submit(events)
    refused = [(events[r.index]["type"], r.errors) for r in results if not r.ok]
    assert refused == []
    stored = await read_all(isolated)
    assert len(stored) == len(events)
    blob = b"\n".join(r.value for r in stored)
    for s in SECRETS:
        assert s.encode() not in blob, s
    # what redaction removed (secret-named labels/annotations, masked messages) is marked
    marked = [json.loads(r.value) for r in stored if json.loads(r.value)["redacted"]]
    assert marked


async def test_run_source_follows_the_k8sm_leader_key_on_real_etcd(isolated: Settings) -> None:
    key = f"{isolated.etcd.prefix}/k8sm/scheduler/leader"
    async with etcd_adapter.client(isolated.etcd) as c:
        await c.put(key.encode(), b"k8sm-scheduler-1")

    async def elections() -> None:
        await asyncio.sleep(1.0)
        async with etcd_adapter.client(isolated.etcd) as c:
            await c.put(key.encode(), b"k8sm-scheduler-1")  # renewal: no event
            await c.put(key.encode(), json.dumps({"holderIdentity": "k8sm-scheduler-2",
                                                  "acquireTime": "2015-07-08T15:30:00Z"}).encode())

    writer = asyncio.create_task(elections())
    async with asyncio.timeout(60):
        stats = await run_source("k8sm", isolated, isolated.etcd.endpoint, key=key, etcd_api="v3", max_events=2,
                                 flush_seconds=0.2, seed=1)
    await writer
    assert stats.refused == 0 and stats.accepted == 2, stats
    stored = [json.loads(r.value) for r in await read_all(isolated)]
    assert [(e["type"], e["payload"]["identity"], e["source"]["seq"]) for e in stored] == [
        ("scheduler.leader_elected", "k8sm-scheduler-1", 0),
        ("scheduler.leader_elected", "k8sm-scheduler-2", 2)]
