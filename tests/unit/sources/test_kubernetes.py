"""Kubernetes watch and k8sm leader-key parsers against recorded samples (the audit parser:
test_k8s_audit.py)."""

from __future__ import annotations

from kmevents.sources.k8sm import LeaderParser
from kmevents.sources.kubernetes import DISCONNECTED, KubernetesParser
from tests.unit.sources._helpers import CLUSTER, canonical, fixed_now, folded, load, ndjson

U1, U2, U3, U4 = (f"a4b5c6d7-000{i}-11e5-9f2c-42010af00002" for i in (1, 2, 3, 4))


def watch(p: KubernetesParser, resource: str, name: str) -> list[dict]:
    out = []
    for ev in ndjson(name):
        out += p.feed(resource, ev)
    return out


def assert_pods_match(st, pod_list: dict) -> None:  # noqa: ANN001
    live = {f"{i['metadata']['namespace']}/{i['metadata']['name']}": i for i in pod_list["items"]}
    folded_live = {pid for pid, p in st.pods.items() if p["deleted"] is None}
    assert folded_live == set(live)
    for pid, item in live.items():
        p = st.pods[pid]
        assert p["uid"] == item["metadata"]["uid"]
        assert p["phase"] == item["status"]["phase"]
        assert p["node_name"] == item["spec"].get("nodeName")
        ann = item["metadata"]["annotations"]
        assert p["task_id"] == ann["k8s.mesosphere.io/taskId"]
        assert p["binding_host"] == ann["k8s.mesosphere.io/bindingHost"]


def test_pod_watch_maps_upserts_bindings_evictions_and_deletions() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    evs = canonical(watch(p, "pods", "k8s/pods_watch.ndjson"))
    types = [e["type"] for e in evs]
    assert types == ["pod.upserted", "pod.upserted", "pod.scheduled", "pod.upserted", "pod.upserted",
                     "pod.scheduled", "pod.upserted", "pod.evicted", "pod.upserted", "pod.scheduled",
                     "pod.deleted"]
    sched = evs[2]["payload"]
    assert sched["task_id"] == "pod.e1f2a3b4-0001-11e5-9f2c-42010af00002"
    assert sched["agent_id"] == "20150708-150322-16777343-5050-1234-S1" and sched["host"] == "10.132.0.11"
    ev = evs[7]["payload"]
    assert (ev["kind"], ev["reason"], ev["message"]) == ("node_pressure", "Evicted",
                                                         "The node was low on resource: memory.")
    pod = evs[0]["payload"]["pod"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in pod["annotations"]
    assert pod["volumes"][0] == {"name": "data", "kind": "nfs",
                                 "source": {"server": "10.132.0.50", "path": "/exports/data"}}
    assert evs[0]["dedupe_key"] == f"pod.upserted|{U1}|100" and evs[0]["correlation_id"] == U1
    assert [e["source"]["seq"] for e in evs[:4]] == [0, 1, 1, 2]
    st = folded(evs)
    assert_pods_match(st, load("k8s/pods_list.json"))
    assert st.pods["default/redis-5qk1v"]["evicted"]["kind"] == "node_pressure"


def test_relist_after_gone_upserts_changes_and_reports_deletions_while_disconnected() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now)
    first = watch(p, "pods", "k8s/pods_watch.ndjson")
    p.new_stream("pods", "watch-pods-2")
    assert p.feed("pods", load("k8s/watch_gone.json")) == []
    again = p.relist("pods", load("k8s/pods_relist.json")["items"])
    kinds = [(e["type"], e["payload"]["pod"]["name"]) for e in again]
    assert ("pod.deleted", "web-1a2b3") in kinds
    assert ("pod.upserted", "db-77xk") in kinds and ("pod.scheduled", "db-77xk") in kinds
    assert ("pod.upserted", "nginx-9x2kq") in kinds
    assert ("pod.scheduled", "nginx-9x2kq") not in kinds  # same task: no new binding
    gone = next(e for e in again if e["type"] == "pod.deleted")
    assert gone["payload"]["reason"] == DISCONNECTED and gone["raw_type"] == "LIST"
    assert {e["source"]["stream_id"] for e in again} == {"watch-pods-2"}
    st = folded(first + again)
    assert_pods_match(st, load("k8s/pods_relist.json"))
    # an unchanged relist emits nothing
    assert p.relist("pods", load("k8s/pods_relist.json")["items"]) == []


def test_nodes_rcs_services_endpoints_and_events() -> None:
    p = KubernetesParser(CLUSTER, now=fixed_now, skew_threshold=1e9)
    evs = (watch(p, "nodes", "k8s/nodes_watch.ndjson") + watch(p, "replicationcontrollers", "k8s/rcs_watch.ndjson")
           + watch(p, "services", "k8s/services_watch.ndjson")
           + watch(p, "endpoints", "k8s/endpoints_watch.ndjson")
           + watch(p, "events", "k8s/events_watch.ndjson"))
    evs = canonical(evs)
    nodes = [e for e in evs if e["type"].startswith("node.")]
    assert [n["payload"].get("node", {}).get("ready") for n in nodes] == [True, True, True, False, None]
    assert nodes[2]["payload"]["node"]["conditions"]["MemoryPressure"] is True
    assert nodes[-1]["type"] == "node.deleted"
    rcs = [e["payload"]["rc"] for e in evs if e["type"] == "replication_controller.upserted"]
    assert [(r["replicas"], r["selector"], r["template_image"]) for r in rcs] == [
        (2, {"app": "nginx"}, "nginx:1.9"), (3, {"app": "nginx"}, "nginx:1.9")]
    svc = next(e for e in evs if e["type"] == "service.upserted")["payload"]["service"]
    assert svc["portal_ip"] == "10.10.10.22" and svc["ports"][0]["target_port"] == 80
    ep = next(e for e in evs if e["type"] == "endpoints.observed")["payload"]
    assert ep["addresses"] == [{"ip": "172.17.0.3", "pod": {"namespace": "default", "name": "nginx-9x2kq",
                                                            "uid": U1}}]
    k8s = [e for e in evs if e["type"] == "k8s_event.recorded"]
    assert [(e["payload"]["reason"], e["payload"]["count"], e["clock"]) for e in k8s] == [
        ("Evicted", 1, "agent"), ("FailedMount", 3, "agent"), ("FailedScheduling", 1, "scheduler")]
    assert k8s[1]["occurred_at"] == "2015-07-08T15:12:00.000000Z"
    assert [e["payload"]["kind"] for e in evs if e["type"] == "pod.evicted"] == ["node_pressure"]
    assert p.skipped.counts == {"events DELETED (the Event expired)": 1}
    st = folded(evs)
    assert st.rcs["default/nginx"]["replicas"] == 3
    assert "10.132.0.11" not in st.nodes


def test_k8sm_leader_key_writes_become_elections_and_version_jumps_gaps() -> None:
    p = LeaderParser(CLUSTER, "/k8sm/scheduler/leader", now=fixed_now)
    e1 = p.feed(b"k8sm-scheduler-1", version=1, create_revision=10)
    assert [e["payload"] for e in e1] == [{"identity": "k8sm-scheduler-1", "previous": None}]
    assert e1[0]["source"] == {"kind": "k8sm", "stream_id": "/k8sm/scheduler/leader@10", "seq": 0}
    assert p.feed(b"k8sm-scheduler-1", version=2, create_revision=10) == []  # lease renewed
    e3 = p.feed(b'{"holderIdentity": "k8sm-scheduler-2", "acquireTime": "2015-07-08T15:30:00Z"}',
                version=5, create_revision=10)
    assert [e["type"] for e in e3] == ["source.gap", "scheduler.leader_elected"]
    assert e3[0]["payload"] == {"stream_id": "/k8sm/scheduler/leader@10", "expected_seq": 2, "got_seq": 4}
    assert e3[1]["payload"] == {"identity": "k8sm-scheduler-2", "previous": "k8sm-scheduler-1"}
    assert e3[1]["clock"] == "scheduler"
    assert p.feed(None, version=0, create_revision=10, deleted=True) == []
    e4 = p.feed(b"k8sm-scheduler-3", version=1, create_revision=40)
    assert e4[0]["payload"]["previous"] == "k8sm-scheduler-2" and e4[0]["source"]["seq"] == 0
    st = folded(e1 + e3 + e4)
    assert st.clusters[CLUSTER]["scheduler_leader"]["identity"] == "k8sm-scheduler-3"
