"""Issue 16's Kubernetes defects, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
from typing import Any

from kmevents.sources.kubernetes import KubernetesParser
from tests.unit.sources._helpers import CLUSTER, canonical, fixed_now

UID = "7d1c2a4e-0b9f-11e6-8f3d-42010af00007"


def pod(**meta: Any) -> dict[str, Any]:
    m = {"name": "nginx-x1", "uid": UID, "resourceVersion": "412"} | meta
    return {"kind": "Pod", "apiVersion": "v1", "metadata": m,
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.9"}]}, "status": {"phase": "Pending"}}


def rc() -> dict[str, Any]:
    return {"kind": "ReplicationController", "apiVersion": "v1",
            "metadata": {"name": "nginx", "uid": "rc-uid-1", "resourceVersion": "413"},
            "spec": {"replicas": 2, "selector": {"app": "nginx"},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.9"}]}}}}


def test_a_pod_without_a_namespace_is_in_the_default_namespace() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    evs = canonical(p.feed("pods", {"type": "ADDED", "object": pod()}))
    assert [e["type"] for e in evs] == ["pod.upserted"]
    assert evs[0]["payload"]["pod"]["namespace"] == "default"
    # and it is the same pod as the one later seen with its namespace spelled out
    gone = canonical(p.feed("pods", {"type": "DELETED", "object": pod(namespace="default")}))
    assert gone[0]["payload"]["pod"] == {"namespace": "default", "name": "nginx-x1", "uid": UID}
    assert p.known["pods"] == {}


def test_an_rc_without_a_namespace_is_in_the_default_namespace() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    up = canonical(p.feed("replicationcontrollers", {"type": "ADDED", "object": rc()}))
    assert up[0]["payload"]["rc"]["namespace"] == "default"
    down = canonical(p.feed("replicationcontrollers", {"type": "DELETED", "object": rc()}))
    assert down[0]["payload"] == {"namespace": "default", "name": "nginx"}


def test_list_items_without_a_namespace_relist_into_default() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    evs = canonical(p.relist("pods", [pod()]))
    assert evs[0]["payload"]["pod"]["namespace"] == "default"
    assert p.relist("pods", [pod(namespace="default")]) == []  # the same object, unchanged


def k8s_event(component: str, host: str | None = None) -> dict[str, Any]:
    src = {"component": component} | ({"host": host} if host else {})
    return {"type": "ADDED", "object": {
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": "nginx-x1.14a3b", "namespace": "default", "resourceVersion": "500",
                     "creationTimestamp": "2016-03-01T10:00:05Z"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "nginx-x1", "uid": UID},
        "reason": "Scheduled", "message": "m", "source": src,
        "firstTimestamp": "2016-03-01T10:00:04Z", "lastTimestamp": "2016-03-01T10:00:04Z", "count": 1}}


def test_event_clocks_and_actors_name_the_component_that_stamped_them() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now, skew_threshold=1e9)
    got = []
    for component, host in (("scheduler", None), ("default-scheduler", None), ("kubelet", "10.132.0.11"),
                            ("replication-controller", None), ("controllermanager", None),
                            ("node-controller", None), ("kube-apiserver", None)):
        (ev,) = canonical(p.feed("events", k8s_event(component, host)))
        got.append((component, ev["clock"], ev["actor"]))
    assert got == [
        ("scheduler", "scheduler", {"kind": "scheduler", "name": "scheduler"}),
        ("default-scheduler", "scheduler", {"kind": "scheduler", "name": "default-scheduler"}),
        ("kubelet", "agent", {"kind": "node", "name": "10.132.0.11"}),
        # the contract has no controller-manager clock yet: the closest, the control plane's
        ("replication-controller", "apiserver", {"kind": "controller", "name": "replication-controller"}),
        ("controllermanager", "apiserver", {"kind": "controller", "name": "controllermanager"}),
        ("node-controller", "apiserver", {"kind": "controller", "name": "node-controller"}),
        ("kube-apiserver", "apiserver", None),
    ]


def test_a_watch_event_that_cannot_be_mapped_is_quarantined_and_the_stream_goes_on() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    p.new_stream("pods", "pods@400")
    no_uid = pod()
    del no_uid["metadata"]["uid"]
    records = [b'{"type": "ADDED", "object": ' + json.dumps(no_uid).encode() + b"}",
               b'{"type": "ADDED", "obj',                       # cut mid-line
               b'["not", "an", "event"]',
               b'{"type": "ADDED", "object": ' + json.dumps(pod()).encode() + b"}"]
    out = []
    for line in records:
        out += p.feed("pods", line)
    assert [e["type"] for e in canonical(out)] == ["pod.upserted"]
    assert out[0]["source"] == {"kind": "k8s.watch", "stream_id": "pods@400", "seq": 3}
    q = p.outcomes.take_quarantined()
    assert [(x.stream_id, x.seq) for x in q] == [("pods@400", 0), ("pods@400", 1), ("pods@400", 2)]
    assert q[0].reason == "pods watch event: KeyError: 'uid'"
    assert q[1].raw == records[1] and q[1].reason.startswith("pods watch: undecodable JSON")
    assert q[2].reason.startswith("pods watch event: TypeError")
    assert (p.records_in, p.records_mapped, p.outcomes.quarantined_total) == (4, 1, 3)


def test_bookmarks_and_errors_are_counted_as_skipped() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    assert p.feed("pods", {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "9"}}}) == []
    gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 5 (9)", "reason": "Expired", "code": 410}
    assert p.feed("pods", {"type": "ERROR", "object": gone}) == []
    assert p.skipped.counts == {"BOOKMARK (only the resourceVersion moves)": 1,
                                "ERROR 410 Expired (the watch ended)": 1}
    assert (p.records_in, p.records_mapped) == (2, 0)


def test_a_relist_with_an_unreadable_item_infers_no_deletion() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    p.relist("pods", [pod(namespace="default")])
    nameless = pod()
    del nameless["metadata"]["name"]
    assert p.relist("pods", [nameless]) == []
    assert "default/nginx-x1" in p.known["pods"]
    assert [x.reason for x in p.outcomes.quarantined] == ["pods item 0 of the list: KeyError: 'name'"]
