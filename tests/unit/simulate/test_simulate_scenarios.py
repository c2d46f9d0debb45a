"""Each scenario family shows up in a default 30k-event run, with the shapes it should have."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kmevents.simulate import iter_lines
from tests.unit.simulate.conftest import of_type, statuses

K8SM_ANNOTATIONS = ("k8s.mesosphere.io/taskId", "k8s.mesosphere.io/slaveId",
                    "k8s.mesosphere.io/offerId", "k8s.mesosphere.io/bindingHost",
                    "k8s.mesosphere.io/executorId")


def _pods(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"]["pod"] for e in of_type(events, "pod.upserted")]


def test_task_lifecycle_states_all_occur(run_events: list[dict[str, Any]]) -> None:
    states = Counter(s["state"] for s in statuses(run_events) if s["reason"] != "REASON_RECONCILIATION")
    for state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED",
                  "TASK_FAILED", "TASK_KILLED", "TASK_LOST"):
        assert states[state] > 0, state


def test_pod_deletion_kills_the_task_with_pod_deleted(run_events: list[dict[str, Any]]) -> None:
    killed = [s for s in statuses(run_events) if s["state"] == "TASK_KILLED"
              and s["message"] == "pod-deleted"]
    assert len(killed) >= 20
    assert all(s["task_id"].startswith("pod.") for s in killed)
    kills = {e["payload"]["task_id"] for e in of_type(run_events, "task.kill_requested")}
    assert {s["task_id"] for s in killed} <= kills


def test_scheduled_pods_carry_the_k8sm_annotations(run_events: list[dict[str, Any]]) -> None:
    bindings = {e["payload"]["pod"]["uid"]: e["payload"] for e in of_type(run_events, "pod.scheduled")}
    executors = {e["payload"]["task"]["executor_id"] for e in of_type(run_events, "task.launched")
                 if e["payload"]["task"]["pod"] is not None}
    checked = 0
    for pod in _pods(run_events):
        ann = pod["annotations"]
        if "k8s.mesosphere.io/taskId" not in ann:
            continue
        assert all(k in ann for k in K8SM_ANNOTATIONS)
        b = bindings[pod["uid"]]
        assert ann["k8s.mesosphere.io/taskId"] == b["task_id"]
        assert ann["k8s.mesosphere.io/slaveId"] == b["agent_id"]
        assert ann["k8s.mesosphere.io/offerId"] == b["offer_id"]
        assert ann["k8s.mesosphere.io/bindingHost"] == b["host"] == pod["node_name"]
        assert ann["k8s.mesosphere.io/executorId"] in executors
        checked += 1
    assert checked > 500


def test_offers_cycle_with_k8sm_timings(run_events: list[dict[str, Any]]) -> None:
    declined = [e["payload"] for e in of_type(run_events, "offer.declined")]
    reasons = Counter(d["reason"] for d in declined)
    assert reasons["expired"] > 100 and reasons["compat"] > 0
    assert {d["refuse_seconds"] for d in declined if d["reason"] in ("expired", "compat")} == {5.0}
    offered_at = {e["payload"]["offer"]["id"]: e["occurred_at"] for e in of_type(run_events, "offer.offered")}
    import datetime as dt

    def t(s: str) -> float:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    ttl = [t(e["occurred_at"]) - t(offered_at[e["payload"]["offer_id"]])
           for e in of_type(run_events, "offer.expired")]
    assert ttl and min(ttl) >= 5.0  # never before k8sm's 5 s offer TTL
    assert len(of_type(run_events, "offer.accepted")) > 500
    assert len(of_type(run_events, "offer.rescinded")) > 0


def test_other_frameworks_share_the_agents(run_events: list[dict[str, Any]]) -> None:
    names = {e["payload"]["framework"]["id"]: e["payload"]["framework"]["name"]
             for e in of_type(run_events, "framework.registered")}
    assert {"Kubernetes", "marathon", "Spark Cluster"} <= set(names.values())
    launched_by = Counter(names[e["payload"]["task"]["framework_id"]]
                          for e in of_type(run_events, "task.launched"))
    assert launched_by["Kubernetes"] > 0 and launched_by["marathon"] > 0
    assert any(n not in ("Kubernetes", "marathon") for n in launched_by)
    assert of_type(run_events, "framework.removed")  # a Spark application tore down


def test_agent_loss_in_varying_order(run_events: list[dict[str, Any]]) -> None:
    lost = [s for s in statuses(run_events)
            if s["state"] == "TASK_LOST" and s["reason"] == "REASON_AGENT_REMOVED"]
    assert lost and all(s["source"] == "SOURCE_MASTER" for s in lost)
    removed = [e for e in of_type(run_events, "agent.removed") if e["payload"]["reason"] == "lost"]
    assert len(removed) >= 2
    # across several runs, FAILURE does not always come first
    orders = set()
    for seed in range(1, 6):
        seen_removed: set[str] = set()
        for line in iter_lines("order", seed, 12_000):
            if b'"REASON_AGENT_REMOVED"' in line:
                import orjson

                ev = orjson.loads(line)
                orders.add(ev["payload"]["status"]["agent_id"] in seen_removed)
            elif b'"type":"agent.removed"' in line:
                import orjson

                seen_removed.add(orjson.loads(line)["payload"]["agent_id"])
    assert orders == {True, False}, "TASK_LOST both before and after agent.removed"


def test_partition_heals_lost_to_running(run_events: list[dict[str, Any]]) -> None:
    lost_then: dict[str, bool] = {}
    healed = 0
    for s in statuses(run_events):
        if s["state"] == "TASK_LOST" and s["reason"] == "REASON_AGENT_REMOVED":
            lost_then[s["task_id"]] = True
        elif s["state"] == "TASK_RUNNING" and s["reason"] == "REASON_AGENT_REREGISTERED":
            assert lost_then.get(s["task_id"]), "RUNNING after re-registration only for LOST tasks"
            healed += 1
    assert healed > 0
    assert of_type(run_events, "agent.reregistered")


def test_agents_join_and_are_drained(run_events: list[dict[str, Any]]) -> None:
    assert len(of_type(run_events, "agent.added")) > 50  # replacements joined
    drained = [e for e in of_type(run_events, "agent.removed") if e["payload"]["reason"] == "drained"]
    assert drained and of_type(run_events, "agent.draining")
    assert of_type(run_events, "inverse_offer.offered")
    reasons = {s["reason"] for s in statuses(run_events) if s["state"] == "TASK_KILLED"}
    assert "REASON_AGENT_DRAINING" in reasons


def test_three_kinds_of_eviction(run_events: list[dict[str, Any]]) -> None:
    evictions = of_type(run_events, "pod.evicted")
    kinds = Counter(e["payload"]["kind"] for e in evictions)
    assert kinds["node_pressure"] > 0 and kinds["api"] > 0 and kinds["node_controller"] > 0
    assert all(e["actor"]["kind"] == "user" for e in evictions if e["payload"]["kind"] == "api")
    assert all(e["actor"]["name"] == "node-controller" for e in evictions
               if e["payload"]["kind"] == "node_controller")
    not_ready = {e["payload"]["node"]["name"] for e in of_type(run_events, "node.upserted")
                 if not e["payload"]["node"]["ready"]}
    assert not_ready
    pressure = [e for e in of_type(run_events, "node.upserted")
                if e["payload"]["node"]["conditions"]["MemoryPressure"]]
    assert pressure


def test_master_failover_replays_and_reconciles(run_events: list[dict[str, Any]]) -> None:
    elected = of_type(run_events, "master.elected")
    assert len(elected) >= 2 and elected[1]["payload"]["previous_master_id"] == elected[0]["payload"]["master"]["id"]
    assert of_type(run_events, "framework.reregistered")
    assert of_type(run_events, "task.added")
    assert of_type(run_events, "cluster.snapshot_observed")
    recon = [s for s in statuses(run_events) if s["reason"] == "REASON_RECONCILIATION"]
    assert len(recon) > 100
    assert all(s["source"] == "SOURCE_MASTER" and s["labels"] is None and s["data"] is None
               and s["uuid"] is None for s in recon)
    leaders = of_type(run_events, "scheduler.leader_elected")
    assert len(leaders) >= 2 and leaders[1]["payload"]["previous"] == leaders[0]["payload"]["identity"]


def test_status_updates_are_redelivered_with_the_same_uuid(run_events: list[dict[str, Any]]) -> None:
    seen: Counter[str] = Counter(e["event_id"] for e in of_type(run_events, "task.status_updated"))
    dups = [k for k, n in seen.items() if n > 1]
    assert len(dups) >= 10
    others = Counter(e["event_id"] for e in run_events if e["type"] != "task.status_updated")
    assert max(others.values()) == 1  # only status updates are re-delivered


def test_containers_restart_and_get_oom_killed(run_events: list[dict[str, Any]]) -> None:
    reasons = Counter(c["last_termination"]["reason"] for p in _pods(run_events)
                      for c in p["containers"] if c["last_termination"])
    assert reasons["OOMKilled"] > 0 and reasons["Error"] > 0
    assert any(c["restart_count"] > 1 for p in _pods(run_events) for c in p["containers"])


def test_pending_pods_get_failed_scheduling(run_events: list[dict[str, Any]]) -> None:
    failed = [e for e in of_type(run_events, "k8s_event.recorded")
              if e["payload"]["reason"] == "FailedScheduling"]
    assert failed
    counts: dict[str, int] = {}
    for e in failed:  # the count goes up by one per retry of the same pod
        uid = e["payload"]["involved"]["uid"]
        assert e["payload"]["count"] == counts.get(uid, 0) + 1
        counts[uid] = e["payload"]["count"]
    assert max(counts.values()) >= 3


def test_seed_cases_kube_dns_kube_ui_and_mysql(run_events: list[dict[str, Any]]) -> None:
    pods = _pods(run_events)
    dns = [p for p in pods if p["namespace"] == "kube-system" and p["name"].startswith("kube-dns")]
    assert dns and any("skydns" in c["image"] for c in dns[0]["containers"])
    assert any(p["namespace"] == "kube-system" and p["name"].startswith("kube-ui") for p in pods)
    mysql = [p for p in pods if p["namespace"] == "mysql"]
    roles = {p["labels"].get("role") for p in mysql}
    assert roles == {"master", "replica"}
    assert all(any(v["kind"] == "rbd" for v in p["volumes"]) for p in mysql)
    svc = {e["payload"]["service"]["name"]: e["payload"]["service"] for e in of_type(run_events, "service.upserted")}
    assert svc["kube-dns"]["portal_ip"] == "10.10.10.10"


def test_volume_kinds(run_events: list[dict[str, Any]]) -> None:
    kinds = {v["kind"] for p in _pods(run_events) for v in p["volumes"]}
    assert {"nfs", "rbd", "cephfs", "gcePersistentDisk", "emptyDir"} <= kinds


def test_rcs_scale_and_roll(run_events: list[dict[str, Any]]) -> None:
    by_rc: dict[str, list[dict[str, Any]]] = {}
    for e in of_type(run_events, "replication_controller.upserted"):
        rc = e["payload"]["rc"]
        by_rc.setdefault(f"{rc['namespace']}/{rc['name']}", []).append(rc)
    assert any(len({r["replicas"] for r in v}) > 1 for v in by_rc.values())
    assert any(len({r["template_image"] for r in v}) > 1 for v in by_rc.values())


def test_namespaces_come_and_go(run_events: list[dict[str, Any]]) -> None:
    phases = {e["payload"]["namespace"]["phase"] for e in of_type(run_events, "namespace.upserted")}
    assert phases == {"Active", "Terminating"}
    assert of_type(run_events, "namespace.deleted")


def test_endpoints_list_only_live_ready_pods(run_events: list[dict[str, Any]]) -> None:
    ready: dict[str, bool] = {}
    checked = 0
    for e in run_events:
        if e["type"] == "pod.upserted":
            ready[e["payload"]["pod"]["uid"]] = e["payload"]["pod"]["ready"]
        elif e["type"] == "pod.deleted":
            ready.pop(e["payload"]["pod"]["uid"], None)
        elif e["type"] == "endpoints.observed":
            for a in e["payload"]["addresses"]:
                assert ready.get(a["pod"]["uid"]) is True
                checked += 1
    assert checked > 1000
