"""The audit parser, record by record: versions and their times, stages, impersonation, pods named
by namespace/name only, attributions of every kept write, what is counted instead, and the
records it cannot read (quarantined, never raised). The corpus of real shapes is in
test_conformance_k8s_audit.py."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from kmevents.sources.k8s_audit import AuditParser, actor_of
from kmevents.sources.kubernetes import KubernetesParser
from tests.unit.sources._helpers import CLUSTER, canonical, fixed_now, folded, load, ndjson

V1, V1BETA1, V1ALPHA1 = "audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"
U1 = "0c7b7e2a-3d41-4f6e-9b1a-5e2d8c4f7a10"


def record(api: str = V1, *, verb: str = "delete", resource: str = "pods", ns: str | None = "web",
           name: str | None = "web-0", sub: str | None = None, code: int | None = 200,
           user: str = "alice", stage: str = "ResponseComplete", level: str = "Metadata",
           **extra: Any) -> dict[str, Any]:
    """One audit record in the shape of ``api`` (times: stage 10:00:01.5, arrival 10:00:01)."""
    ref = {"resource": resource, "apiVersion": "v1"}  # the core group: no apiGroup (omitempty)
    ref.update({k: v for k, v in (("namespace", ns), ("name", name), ("subresource", sub)) if v})
    ev: dict[str, Any] = {
        "kind": "Event", "apiVersion": api, "level": level, "auditID": "4d1f-0001", "stage": stage,
        "requestURI": f"/api/v1/namespaces/{ns}/{resource}/{name}", "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.0.0.5"],
        "objectRef": ref,
    }
    if code is not None:
        ev["responseStatus"] = {"metadata": {}, "code": code}
    if api == V1:
        ev.update(requestReceivedTimestamp="2017-09-05T10:00:01.000000Z", stageTimestamp="2017-09-05T10:00:01.500000Z")
    else:
        ev.update(metadata={"creationTimestamp": None}, timestamp="2017-09-05T10:00:01Z")
    ev.update(extra)
    return ev


def parser(**kw: Any) -> AuditParser:
    return AuditParser(CLUSTER, "audit-1", now=fixed_now, skew_threshold=math.inf, **kw)


def types(evs: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in evs]


# -- times: the record's own, never the adapter's ----------------------------------------------

def test_a_v1beta1_record_of_kubernetes_1_8_takes_its_timestamp_on_the_apiservers_clock() -> None:
    evs = canonical(parser().feed(record(V1BETA1)))
    assert {(e["occurred_at"], e["clock"]) for e in evs} == {("2017-09-05T10:00:01.000000Z", "apiserver")}


def test_a_v1alpha1_record_of_kubernetes_1_7_takes_its_timestamp() -> None:
    evs = canonical(parser().feed(record(V1ALPHA1, verb="create", sub="eviction", code=201)))
    assert types(evs) == ["pod.evicted", "k8s_write.recorded"]
    assert {e["occurred_at"] for e in evs} == {"2017-09-05T10:00:01.000000Z"}


def test_a_v1beta1_record_of_1_9_and_later_prefers_the_stage_time_to_the_arrival_second() -> None:
    ev = record(V1BETA1, stageTimestamp="2017-09-05T10:00:01.734210Z",
                requestReceivedTimestamp="2017-09-05T10:00:01.001000Z")
    assert {e["occurred_at"] for e in parser().feed(ev)} == {"2017-09-05T10:00:01.734210Z"}


def test_a_v1_record_takes_its_stage_time() -> None:
    assert {e["occurred_at"] for e in parser().feed(record(V1))} == {"2017-09-05T10:00:01.500000Z"}


def test_a_record_without_any_time_is_quarantined_not_dated_now() -> None:
    ev = record(V1)
    del ev["stageTimestamp"], ev["requestReceivedTimestamp"]
    p = parser()
    assert p.feed(ev) == []
    [q] = p.outcomes.take_quarantined()
    assert q.reason.startswith("no time") and orjson.loads(q.raw) == ev


# -- versions and stages ---------------------------------------------------------------------

@pytest.mark.parametrize("api", ["audit.k8s.io/v2", "v1", None])
def test_an_unknown_api_version_is_quarantined_with_its_position(api: str | None) -> None:
    p = parser()
    p.feed(record())
    assert p.feed(record(api=api)) == []  # type: ignore[arg-type]
    [q] = p.outcomes.take_quarantined()
    assert (q.stream_id, q.seq) == ("audit-1", 1) and repr(api) in q.reason
    assert p.outcomes.quarantined_total == 1


@pytest.mark.parametrize("stage", ["RequestReceived", "ResponseStarted"])
def test_stages_before_the_last_are_counted_one_event_per_request(stage: str) -> None:
    p = parser()
    assert p.feed(record(stage=stage)) == []
    assert p.outcomes.skipped.counts == {f"stage {stage}": 1}


def test_a_panic_is_the_last_stage_of_a_failed_request() -> None:
    p = parser()
    assert p.feed(record(stage="Panic", code=500)) == []
    assert p.outcomes.skipped.counts == {"failed delete pods (panic)": 1}


# -- who: the impersonated user, the authenticated one beside it --------------------------------

def test_the_actor_is_the_impersonated_user_and_the_authenticated_one_is_kept() -> None:
    ev = record(verb="create", sub="eviction", code=201, user="ci-bot",
                impersonatedUser={"username": "alice", "groups": ["dev"]})
    evicted, write = canonical(parser().feed(ev))
    assert evicted["actor"] == write["actor"] == {"kind": "user", "name": "alice"}
    assert (write["payload"]["user"], write["payload"]["impersonated_user"]) == ("ci-bot", "alice")
    assert evicted["payload"]["message"] == "evicted through the eviction API by alice, authenticated as ci-bot"


def test_a_controller_delete_under_the_shared_controller_manager_identity_is_not_an_eviction() -> None:
    evs = parser().feed(record(user="system:kube-controller-manager"))
    assert types(evs) == ["pod.deleted", "k8s_write.recorded"]
    assert evs[0]["actor"] == {"kind": "controller", "name": "kube-controller-manager"}
    node_controller = parser().feed(record(user="system:serviceaccount:kube-system:node-controller"))
    assert types(node_controller) == ["pod.evicted", "pod.deleted", "k8s_write.recorded"]


# -- pods known by namespace/name only ----------------------------------------------------------

def test_a_metadata_level_delete_without_a_uid_is_a_pod_deleted_named_by_namespace_and_name() -> None:
    p = parser()
    deleted, write = canonical(p.feed(record(level="Metadata")))
    assert deleted["type"] == "pod.deleted"
    assert deleted["payload"]["pod"] == {"namespace": "web", "name": "web-0", "uid": None}
    assert deleted["dedupe_key"] == "pod.deleted|web/web-0|2017-09-05T10:00:01.500000Z"
    assert write["payload"]["uid"] is None and p.outcomes.skipped.counts == {}


def test_a_pod_uid_comes_from_the_record_or_the_watch_when_it_has_one() -> None:
    logged_pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web-0", "namespace": "web", "uid": U1}}
    status = {"kind": "Status", "apiVersion": "v1", "status": "Success",
              "details": {"name": "web-0", "kind": "pods", "uid": U1}}
    for ev in (record(level="RequestResponse", responseObject=logged_pod),
               record(level="RequestResponse", responseObject=status)):
        assert parser().feed(ev)[0]["payload"]["pod"]["uid"] == U1
    assert parser(pod_uid=lambda ns, name: U1).feed(record())[0]["payload"]["pod"]["uid"] == U1


# -- every kept write is attributed; the rest is counted by resource ---------------------------

def test_a_scale_is_attributed_with_its_replicas_when_the_body_was_logged() -> None:
    ev = record(verb="update", resource="replicationcontrollers", name="frontend", sub="scale",
                level="Request", requestObject={"kind": "Scale", "apiVersion": "autoscaling/v1",
                                                "metadata": {"name": "frontend"}, "spec": {"replicas": 5}})
    [write] = canonical(parser().feed(ev))
    assert write["type"] == "k8s_write.recorded" and write["raw_type"] == "update replicationcontrollers/scale"
    assert {k: write["payload"][k] for k in ("resource", "subresource", "name", "replicas")} == {
        "resource": "replicationcontrollers", "subresource": "scale", "name": "frontend", "replicas": 5}


def test_a_binding_is_attributed_with_its_node() -> None:
    ev = record(verb="create", sub="binding", code=201, user="system:kube-scheduler", level="Request",
                requestObject={"kind": "Binding", "apiVersion": "v1", "metadata": {"name": "web-0"},
                               "target": {"kind": "Node", "name": "10.132.0.11"}})
    [write] = canonical(parser().feed(ev))
    assert write["actor"] == {"kind": "scheduler", "name": "system:kube-scheduler"}
    assert write["payload"]["target"] == "10.132.0.11"


def test_a_json_patch_body_is_no_reason_to_refuse_a_record() -> None:
    ev = record(verb="patch", resource="replicationcontrollers", name="frontend", level="Request",
                requestObject=[{"op": "replace", "path": "/spec/replicas", "value": 2}])
    [write] = parser().feed(ev)
    assert write["payload"]["replicas"] is None


@pytest.mark.parametrize(("verb", "resource", "ns", "name"), [
    ("create", "namespaces", None, "team-a"), ("delete", "namespaces", "team-a", "team-a"),
    ("patch", "nodes", None, "10.132.0.11"), ("update", "endpoints", "web", "frontend"),
    ("delete", "services", "web", "frontend"), ("create", "pods", "web", "web-0"),
])
def test_every_write_to_a_kept_kind_is_attributed(verb: str, resource: str, ns: str | None, name: str) -> None:
    [write] = canonical(parser().feed(record(verb=verb, resource=resource, ns=ns, name=name)))
    assert write["type"] == "k8s_write.recorded"
    assert (write["payload"]["namespace"], write["payload"]["name"]) == (
        None if resource in ("namespaces", "nodes") else ns, name)


def test_reads_status_reports_rbac_and_other_kinds_are_counted_by_resource() -> None:
    p = parser()
    rbac = record(verb="create", resource="clusterrolebindings", ns=None, name="admin")
    rbac["objectRef"]["apiGroup"] = "rbac.authorization.k8s.io"
    v1alpha1_rs = record(V1ALPHA1, verb="update", resource="replicasets", name="web-5d8f")
    v1alpha1_rs["objectRef"]["apiVersion"] = "extensions/v1beta1"
    for ev in (record(verb="get"), record(verb="list", resource="configmaps", name=None), rbac, v1alpha1_rs,
               record(verb="patch", resource="nodes", ns=None, name="n1", sub="status"),
               record(verb="create", sub="exec"), {k: v for k, v in record(verb="get").items() if k != "objectRef"}):
        assert p.feed(ev) == []
    assert p.outcomes.skipped.counts == {
        "get pods": 1, "list configmaps": 1, "create clusterrolebindings.rbac.authorization.k8s.io": 1,
        "update replicasets.extensions": 1, "patch nodes/status": 1, "create pods/exec": 1,
        "non-resource get": 1}


def test_leader_election_locks_and_dry_runs_are_counted_not_attributed() -> None:
    p = parser()
    lock = record(verb="update", resource="endpoints", ns="kube-system", name="kube-scheduler")
    dry = record(verb="create", code=201, requestURI="/api/v1/namespaces/web/pods?dryRun=All")
    assert p.feed(lock) == [] and p.feed(dry) == []
    assert p.outcomes.skipped.counts == {
        "update endpoints (leader-election lock kube-system/kube-scheduler)": 1, "dry run create pods": 1}


@pytest.mark.parametrize("code", [403, 404, 409, 422, 429, 500])
def test_a_failed_write_never_gives_a_change(code: int) -> None:
    p = parser()
    assert p.feed(record(verb="create", sub="eviction", code=code)) == []
    assert p.outcomes.skipped.counts == {f"failed create pods/eviction ({code})": 1}


# -- what cannot be read is quarantined, never raised ---------------------------------------------

@pytest.mark.parametrize(("bad", "reason"), [
    ({"objectRef": ["pods"]}, "expected an object"),
    ({"responseStatus": {"code": "200"}}, "responseStatus.code is '200'"),
    ({"responseStatus": None}, "responseStatus.code is None"),
    ({"user": {"groups": []}}, "no user.username"),
    ({"stageTimestamp": "yesterday"}, "ValueError"),
    ({"stage": "Done"}, "stage 'Done'"),
    ({"verb": 7}, "expected a string"),
])
def test_a_record_the_parser_cannot_read_is_quarantined_and_the_next_one_is_read(bad: dict[str, Any],
                                                                                 reason: str) -> None:
    p = parser()
    assert p.feed({**record(), **bad}) == []
    assert types(p.feed(record())) == ["pod.deleted", "k8s_write.recorded"]
    [q] = p.outcomes.take_quarantined()
    assert reason in q.reason and q.seq == 0


def test_lines_of_a_log_file_legacy_text_and_garbage_are_quarantined_as_bytes() -> None:
    p = parser()
    legacy = (b'2017-09-05T06:08:19.885328047-04:00 AUDIT: id="c28a95ad" stage="ResponseComplete" '
              b'ip="172.16.116.128" method="delete" user="kubecfg" namespace="web" uri="/api/v1/pods" response="200"')
    for line in (orjson.dumps(record()), b"", legacy, b'{"kind": "Event", "apiV', b"[1, 2]"):
        p.feed_line(line)
    q = p.outcomes.take_quarantined()
    assert [(x.seq, x.reason.split(" ")[0]) for x in q] == [(1, "legacy"), (2, "undecodable"), (3, "an")]
    assert q[0].raw == legacy


def test_an_event_list_gives_its_api_version_to_items_that_have_none() -> None:
    items = []
    for i, ev in enumerate((record(V1BETA1), record(V1BETA1, verb="get"))):
        item = {k: v for k, v in ev.items() if k not in ("kind", "apiVersion")}
        items.append({**item, "auditID": f"4d1f-000{i}"})
    p = parser()
    evs = p.feed_line(orjson.dumps({"kind": "EventList", "apiVersion": V1BETA1, "items": items}))
    assert types(evs) == ["pod.deleted", "k8s_write.recorded"] and p.outcomes.skipped.counts == {"get pods": 1}
    assert p.stream.seq == 1


def test_an_event_list_without_a_list_of_items_is_quarantined_whole() -> None:
    p = parser()
    assert p.feed_line(b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {"0": {}}}') == []
    assert p.feed_list({"kind": "EventList", "items": None}) == []  # empty: no record
    assert [(q.seq, q.reason) for q in p.outcomes.take_quarantined()] == [
        (0, "an EventList whose items are not a list")]


def test_the_sample_webhook_list_maps_with_attributions() -> None:
    p = parser()
    evs = canonical(p.feed_list(load("k8s/audit_events.json")))
    assert [(e["type"], e["raw_type"]) for e in evs if e["type"] != "k8s_write.recorded"] == [
        ("pod.evicted", "create pods/eviction"), ("pod.evicted", "delete pods"), ("pod.deleted", "delete pods"),
        ("pod.deleted", "delete pods")]
    assert sum(e["type"] == "k8s_write.recorded" for e in evs) == 3
    assert p.outcomes.skipped.counts == {"create secrets": 1, "failed delete pods (404)": 1,
                                         "stage RequestReceived": 1}


def test_the_watch_lends_its_pod_uids_and_the_fold_joins_who_evicted_and_deleted() -> None:
    k = KubernetesParser(CLUSTER, now=fixed_now)
    watched = [e for ev in ndjson("k8s/pods_watch.ndjson") for e in k.feed("pods", ev)]
    watched += k.relist("pods", load("k8s/pods_relist.json")["items"])
    a = AuditParser(CLUSTER, "audit-1", pod_uid=k.pod_uid, now=fixed_now, skew_threshold=1e9)
    evs = canonical(a.feed_list(load("k8s/audit_events.json")))
    got = [(e["type"], e["payload"]["pod"]["name"], e["payload"]["pod"]["uid"], e["payload"].get("kind"),
            e["actor"]) for e in evs if e["type"] != "k8s_write.recorded"]
    u1, u3, u4 = (f"a4b5c6d7-000{i}-11e5-9f2c-42010af00002" for i in (1, 3, 4))
    assert got == [
        ("pod.evicted", "nginx-9x2kq", u1, "api", {"kind": "user", "name": "alice"}),  # Eviction bodies carry no uid
        ("pod.evicted", "web-1a2b3", u3, "node_controller", {"kind": "controller", "name": "node-controller"}),
        ("pod.deleted", "web-1a2b3", u3, None, {"kind": "controller", "name": "node-controller"}),  # the logged Pod
        ("pod.deleted", "db-77xk", u4, None, {"kind": "user", "name": "bob"}),
    ]
    assert evs[0]["occurred_at"] == "2015-07-08T15:20:00.123456Z" and evs[0]["clock"] == "apiserver"
    st = folded(watched + evs)
    assert st.pods["default/nginx-9x2kq"]["evicted"]["actor"] == {"kind": "user", "name": "alice"}
    assert [w["actor"]["name"] for w in st.pods["default/web-1a2b3"]["writers"]] == ["node-controller"]


def test_actor_kinds() -> None:
    assert actor_of("system:node:10.132.0.11") == {"kind": "node", "name": "10.132.0.11"}
    assert actor_of("system:kube-scheduler")["kind"] == "scheduler"
    assert actor_of("system:serviceaccount:kube-system:replication-controller")["kind"] == "controller"
    assert actor_of("system:kube-controller-manager")["kind"] == "controller"
    assert actor_of("alice") == {"kind": "user", "name": "alice"}


def test_a_metadata_level_eviction_folds_onto_the_pod_the_watch_showed() -> None:
    pod = {"type": "pod.upserted", "schema_version": 1, "cluster": CLUSTER,
           "source": {"kind": "k8s.watch", "stream_id": "w", "seq": 0}, "occurred_at": "2017-09-05T09:00:00Z",
           "clock": "adapter", "raw_type": "ADDED",
           "payload": {"pod": {"namespace": "web", "name": "web-0", "uid": U1, "phase": "Running"}}}
    evs = parser().feed(record(verb="create", sub="eviction", code=201, user="ops",
                               impersonatedUser={"username": "alice"}))
    st = folded([pod, *evs])
    p = st.pods["web/web-0"]
    assert p["evicted"]["actor"] == {"kind": "user", "name": "alice"}
    assert [(w["verb"], w["subresource"], w["user"], w["impersonated_user"]) for w in p["writers"]] == [
        ("create", "eviction", "ops", "alice")]
