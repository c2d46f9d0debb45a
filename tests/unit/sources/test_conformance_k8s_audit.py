"""Conformance of the audit parser to real audit-log shapes (tests/corpus/real/k8s-audit/, each
file described in tests/corpus/real/README.md): per file, records in = records that gave events
+ skipped + quarantined, and the exact events (type, id, time, clock, actor) written out below
by hand from the records, not from the parser."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from kmevents.contract import derive_event_id
from kmevents.reducer import fold
from kmevents.sources.k8s_audit import AuditParser
from tests.unit.sources._helpers import canonical

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "real" / "k8s-audit"
CLUSTER = "prod-1"
JANE, KUBECFG = ("user", "jane"), ("user", "kubecfg")
JANE13, OPS13 = ("user", "jane@example.com"), ("user", "ops@example.com")
SCHED = ("scheduler", "system:kube-scheduler")


@dataclass
class Expected:
    records: int
    events: list[tuple[int, str, str, str, tuple[str, str]]]
    """(record seq, type, dedupe key, occurred_at, actor (kind, name)); clock is always the apiserver's."""
    skipped: dict[str, int]
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    """(record seq, the reason's start)"""


def w(seq: int, audit_id: str, at: str, actor: tuple[str, str]) -> tuple[int, str, str, str, tuple[str, str]]:
    return (seq, "k8s_write.recorded", f"k8s_write.recorded|{audit_id}", at, actor)


def pod(seq: int, type_: str, key: str, at: str, actor: tuple[str, str]) -> tuple[int, str, str, str, tuple[str, str]]:
    return (seq, type_, f"{type_}|{key}", at, actor)


T17, T18 = "2017-08-14T09:1", "2017-09-05T10:0"
EXPECTED = {
    # Kubernetes 1.7, audit.k8s.io/v1alpha1, two webhook EventLists; times: `timestamp`, seconds
    "v1alpha1-1.7-webhook.jsonl": Expected(12, [
        pod(1, "pod.deleted", "web/frontend-x8k2p|2017-08-14T09:12:40.000000Z", T17 + "2:40.000000Z", JANE),
        w(1, "9b6f0e4a-1b2c-4d3e-8f90-a1b2c3d4e501", T17 + "2:40.000000Z", JANE),
        pod(3, "pod.evicted", "web/frontend-q7d1m|2017-08-14T09:13:02.000000Z", T17 + "3:02.000000Z", JANE),
        w(3, "0c5d7e8f-2a3b-4c4d-9e5f-b2c3d4e5f602", T17 + "3:02.000000Z", JANE),  # ops-bot as jane
        w(5, "2e7f9a01-4c5d-4e6f-9071-d4e5f6a7b804", T17 + "3:20.000000Z", JANE),  # kubectl 1.7 scale: a PUT of the RC
        w(7, "4091bc23-6e7f-4081-9293-f6a7b8c9da06", T17 + "4:00.000000Z", SCHED),
    ], {"stage RequestReceived": 3, "stage ResponseStarted": 1, "list pods": 1, "get secrets": 1,
        "create rolebindings.rbac.authorization.k8s.io": 1, "failed delete pods (404)": 1}),
    # Kubernetes 1.8, audit.k8s.io/v1beta1 log file, level Metadata: `timestamp` only, no uids
    "v1beta1-1.8-metadata.jsonl": Expected(13, [
        pod(1, "pod.deleted", "default/nginx-2719-h8x2c|2017-09-05T10:04:55.000000Z", T18 + "4:55.000000Z", KUBECFG),
        w(1, "77e58433-d345-40ac-b2d8-0a0b0c0d0e01", T18 + "4:55.000000Z", KUBECFG),
        pod(2, "pod.evicted", "default/nginx-2719-7c4qp|2017-09-05T10:05:12.000000Z", T18 + "5:12.000000Z", JANE),
        w(2, "8a9b0c1d-2e3f-4a5b-9c6d-1a1b1c1d1e02", T18 + "5:12.000000Z", JANE),  # kubecfg --as jane
        w(7, "dfe05162-7384-4f90-a1b2-6a6b6c6d6e07", T18 + "6:01.000000Z", KUBECFG),
        w(8, "e0f16273-8495-40a1-b2c3-7a7b7c7d7e08", T18 + "6:03.000000Z", ("controller", "namespace-controller")),
        pod(9, "pod.evicted", "default/web-4kx1-q2w3e|2017-09-05T10:07:44.000000Z", T18 + "7:44.000000Z",
            ("controller", "node-controller")),
        pod(9, "pod.deleted", "default/web-4kx1-q2w3e|2017-09-05T10:07:44.000000Z", T18 + "7:44.000000Z",
            ("controller", "node-controller")),
        w(9, "f1027384-95a6-41b2-c3d4-8a8b8c8d8e09", T18 + "7:44.000000Z", ("controller", "node-controller")),
        w(11, "132495a6-b7c8-43d4-e5f6-aaabacadae0b", T18 + "8:02.000000Z", JANE),
    ], {"stage RequestReceived": 1, "failed create pods/eviction (429)": 1, "patch nodes/status": 1,
        "update endpoints (leader-election lock kube-system/kube-controller-manager)": 1,
        "list roles.rbac.authorization.k8s.io": 1, "non-resource get": 1, "create configmaps": 1}),
    # Kubernetes 1.11, audit.k8s.io/v1beta1, level RequestResponse: stageTimestamp beside `timestamp`
    "v1beta1-1.11-requestresponse.jsonl": Expected(11, [
        w(0, "0d4e5f6a-7b8c-4d9e-af01-12a3b4c5d601", "2018-10-02T14:21:07.412093Z",
          ("controller", "replication-controller")),
        w(1, "1e5f6a7b-8c9d-4eaf-b012-23b4c5d6e702", "2018-10-02T14:21:30.006542Z", JANE),
        w(2, "2f6a7b8c-9dae-4fb0-c123-34c5d6e7f803", "2018-10-02T14:21:31.227310Z", SCHED),
        pod(3, "pod.deleted", "61f0a9d2-c6a0-11e8-9b7e-42010a800004", "2018-10-02T14:22:02.550918Z", JANE),
        w(3, "306b7c8d-aebf-40c1-d234-45d6e7f80904", "2018-10-02T14:22:02.550918Z", JANE),  # admin as jane
        pod(4, "pod.deleted", "58e1b7c3-c6a0-11e8-9b7e-42010a800004", "2018-10-02T14:22:35.019376Z",
            ("node", "gke-prod-pool-1-8c1a2b3d-x7k2")),
        w(4, "417c8d9e-bfc0-41d2-e345-56e7f8091a05", "2018-10-02T14:22:35.019376Z", ("node", "gke-prod-pool-1-8c1a2b3d-x7k2")),
        w(8, "85b0c1d2-f304-4516-2789-9a2b3c4d5e09", "2018-10-02T14:24:05.777123Z", JANE),
        w(9, "96c1d2e3-0415-4627-389a-ab3c4d5e6f0a", "2018-10-02T14:24:06.012345Z", ("controller", "endpoint-controller")),
    ], {"get pods": 1, "create secrets": 1, "create clusterrolebindings.rbac.authorization.k8s.io": 1,
        "failed update replicationcontrollers (panic)": 1}),
    # Kubernetes 1.13, audit.k8s.io/v1, level Metadata, RequestReceived omitted
    "v1-1.13-metadata.jsonl": Expected(16, [
        pod(0, "pod.deleted", "shop/api-7f9c8-xk2lp|2019-03-18T08:30:12.418260Z", "2019-03-18T08:30:12.418260Z", JANE13),
        w(0, "e1a2b3c4-d5e6-4f70-8192-a3b4c5d6e701", "2019-03-18T08:30:12.418260Z", JANE13),
        pod(1, "pod.deleted", "shop/api-7f9c8-xk2lp|2019-03-18T08:30:44.250117Z", "2019-03-18T08:30:44.250117Z",
            ("node", "ip-10-0-1-23.ec2.internal")),  # the kubelet's final delete after the grace period
        w(1, "f2b3c4d5-e6f7-4081-92a3-b4c5d6e7f802", "2019-03-18T08:30:44.250117Z", ("node", "ip-10-0-1-23.ec2.internal")),
        pod(2, "pod.evicted", "shop/api-7f9c8-m4n7q|2019-03-18T08:31:05.901422Z", "2019-03-18T08:31:05.901422Z", OPS13),
        w(2, "03c4d5e6-f708-4192-a3b4-c5d6e7f80903", "2019-03-18T08:31:05.901422Z", OPS13),
        w(4, "25e6f708-192a-43b4-c5d6-e7f8091a2b05", "2019-03-18T08:32:00.640002Z", JANE13),  # ci-deployer as jane
        w(5, "36f70819-2a3b-44c5-d6e7-f8091a2b3c06", "2019-03-18T08:32:03.008861Z", SCHED),
        w(6, "47081920-3b4c-45d6-e7f8-091a2b3c4d07", "2019-03-18T08:33:15.332210Z", JANE13),
        w(7, "58192a31-4c5d-46e7-f809-1a2b3c4d5e08", "2019-03-18T08:33:40.771043Z", JANE13),
    ], {"failed create pods/eviction (429)": 1, "dry run create pods": 1, "get secrets": 1, "list configmaps": 1,
        "create clusterroles.rbac.authorization.k8s.io": 1, "stage ResponseStarted": 1, "patch nodes/status": 1,
        "update endpoints (leader-election lock kube-system/kube-scheduler)": 1,
        "create tokenreviews.authentication.k8s.io": 1}),
    # what cannot be read: a legacy text line, a core v1 Event, a line cut by the API server's death
    "v1beta1-1.8-damaged.log": Expected(4, [
        pod(1, "pod.deleted", "default/nginx-2719-k4j8d|2017-09-05T10:09:30.000000Z", "2017-09-05T10:09:30.000000Z", KUBECFG),
        w(1, "e3a4b5c6-d7e8-4f90-a1b2-c3d4e5f6a711", "2017-09-05T10:09:30.000000Z", KUBECFG),
    ], {}, [(0, "legacy audit text format"), (2, "apiVersion 'v1' is not an audit version"),
            (3, "undecodable JSON")]),
}
#: Values in the fixtures' request bodies (a pod's env, a Secret's data) that no event may carry.
SECRETS = (b"s3cr3t-in-a-pod-env-ed42", b"cjNkMXMtYXVkaXQtc2VjcmV0LTc3")


def read(name: str) -> tuple[AuditParser, list[dict[str, Any]]]:
    p = AuditParser(CLUSTER, name, now=lambda: 0.0, skew_threshold=math.inf)
    events: list[dict[str, Any]] = []
    for line in (CORPUS / name).read_bytes().splitlines():
        events += p.feed_line(line)
    return p, events


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_real_shape_gives_exactly_the_expected_events_and_counts(name: str) -> None:
    exp = EXPECTED[name]
    p, raw = read(name)
    events = canonical(raw)
    quarantined = p.outcomes.take_quarantined()
    gave = {e["source"]["seq"] for e in events}
    records_in = p.stream.seq + 1
    skipped = sum(p.outcomes.skipped.counts.values())
    assert records_in == exp.records == len(gave) + skipped + len(quarantined)
    assert p.outcomes.skipped.counts == exp.skipped
    assert [(q.seq, q.reason[:len(r)]) for q, (_, r) in zip(quarantined, exp.quarantined, strict=True)] == exp.quarantined
    got = [(e["source"]["seq"], e["type"], e["dedupe_key"], e["occurred_at"],
            (e["actor"]["kind"], e["actor"]["name"])) for e in events]
    assert got == exp.events
    assert all(e["event_id"] == derive_event_id(CLUSTER, e["dedupe_key"]) for e in events)
    assert {(e["clock"], e["source"]["kind"], e["source"]["stream_id"]) for e in events} == {
        ("apiserver", "k8s.audit", name)}
    blob = orjson.dumps(events)
    assert not [s for s in SECRETS if s in blob]


def test_a_quarantined_line_is_kept_as_the_bytes_read() -> None:
    p, _ = read("v1beta1-1.8-damaged.log")
    lines = (CORPUS / "v1beta1-1.8-damaged.log").read_bytes().splitlines()
    assert [q.raw for q in p.outcomes.take_quarantined()] == [lines[0], lines[2], lines[3]]


def test_the_impersonated_writes_keep_the_authenticated_user() -> None:
    found = {}
    for name in EXPECTED:
        for e in read(name)[1]:
            pl = e["payload"]
            if e["type"] == "k8s_write.recorded" and pl["impersonated_user"]:
                found[pl["audit_id"]] = (pl["user"], pl["impersonated_user"], e["actor"]["name"])
    assert found == {
        "0c5d7e8f-2a3b-4c4d-9e5f-b2c3d4e5f602": ("ops-bot", "jane", "jane"),
        "8a9b0c1d-2e3f-4a5b-9c6d-1a1b1c1d1e02": ("kubecfg", "jane", "jane"),
        "306b7c8d-aebf-40c1-d234-45d6e7f80904": ("admin", "jane", "jane"),
        "25e6f708-192a-43b4-c5d6-e7f8091a2b05": ("ci-deployer", "jane@example.com", "jane@example.com"),
    }


def test_what_the_bodies_say_and_nothing_more() -> None:
    writes = {e["payload"]["audit_id"]: e["payload"] for name in EXPECTED for e in read(name)[1]
              if e["type"] == "k8s_write.recorded"}
    created = writes["0d4e5f6a-7b8c-4d9e-af01-12a3b4c5d601"]  # generateName: named by the logged response
    assert (created["name"], created["uid"]) == ("redis-slave-6x7qk", "7b2e4c10-c6b4-11e8-9b7e-42010a800004")
    assert writes["1e5f6a7b-8c9d-4eaf-b012-23b4c5d6e702"]["replicas"] == 3
    assert writes["2e7f9a01-4c5d-4e6f-9071-d4e5f6a7b804"]["replicas"] == 2
    assert writes["25e6f708-192a-43b4-c5d6-e7f8091a2b05"]["replicas"] is None  # Metadata: no body
    assert writes["2f6a7b8c-9dae-4fb0-c123-34c5d6e7f803"]["target"] == "gke-prod-pool-1-8c1a2b3d-x7k2"
    assert writes["36f70819-2a3b-44c5-d6e7-f8091a2b3c06"]["target"] is None
    assert writes["e0f16273-8495-40a1-b2c3-7a7b7c7d7e08"]["name"] is None  # a deletecollection
    assert writes["47081920-3b4c-45d6-e7f8-091a2b3c4d07"]["name"] == "team-b"


def watched(ns: str, name: str, uid: str, seq: int) -> dict[str, Any]:
    """The pod as a watch showed it before the audited requests (2017-01-01)."""
    return {"type": "pod.upserted", "schema_version": 1, "cluster": CLUSTER,
            "source": {"kind": "k8s.watch", "stream_id": "watch-pods", "seq": seq},
            "occurred_at": "2017-01-01T00:00:00Z", "clock": "adapter", "raw_type": "ADDED",
            "payload": {"pod": {"namespace": ns, "name": name, "uid": uid, "phase": "Running"}}}


def test_the_corpus_folds_onto_the_pods_the_watch_showed() -> None:
    audit = canonical([e for name in sorted(EXPECTED) for e in read(name)[1]])
    refs = {(e["payload"]["pod"]["namespace"], e["payload"]["pod"]["name"]): e["payload"]["pod"]["uid"]
            for e in audit if e["type"] in ("pod.deleted", "pod.evicted")}
    pods = canonical([watched(ns, name, uid or f"uid-of-{name}", i) for i, ((ns, name), uid) in enumerate(sorted(refs.items()))])
    st, anns = fold(pods + audit, cluster=CLUSTER)
    # the one annotation: the kubelet's final delete of a pod jane had deleted 32 s before
    assert [(a["kind"], a["entity"]["id"]) for a in anns] == [("duplicate", "shop/api-7f9c8-xk2lp")]
    gone = {pid: (p["deleted"] and p["deleted"]["actor"]["name"], p["evicted"] and p["evicted"]["actor"]["name"])
            for pid, p in st.pods.items()}
    assert gone == {
        "web/frontend-x8k2p": ("jane", None), "web/frontend-q7d1m": (None, "jane"),
        "default/nginx-2719-h8x2c": ("kubecfg", None), "default/nginx-2719-7c4qp": (None, "jane"),
        "default/web-4kx1-q2w3e": ("node-controller", "node-controller"), "default/nginx-2719-k4j8d": ("kubecfg", None),
        "default/redis-slave-2mm8n": ("jane", None), "default/redis-slave-9pq4t": ("gke-prod-pool-1-8c1a2b3d-x7k2", None),
        "shop/api-7f9c8-xk2lp": ("jane@example.com", None), "shop/api-7f9c8-m4n7q": (None, "ops@example.com"),
    }
    writers = st.pods["shop/api-7f9c8-xk2lp"]["writers"]
    assert [(w["verb"], w["actor"]["name"]) for w in writers] == [
        ("delete", "jane@example.com"), ("delete", "ip-10-0-1-23.ec2.internal")]
