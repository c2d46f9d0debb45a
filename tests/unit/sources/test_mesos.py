"""Mesos parsers against recorded samples: operator stream, /master/state, scheduler stream."""

from __future__ import annotations

import json

from kmevents.contract.enums import TERMINAL_TASK_STATES
from kmevents.reducer import ClusterState
from kmevents.sources.mesos_operator import OperatorParser, snapshot_v1
from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.mesos_snapshot import Snapshot
from kmevents.sources.mesos_state import StateParser, snapshot_v0
from tests.unit.sources._helpers import (
    CLUSTER,
    canonical,
    fixed_now,
    fold_task,
    folded,
    load,
    records,
)

M = "20150708-150322-16777343-5050-1234"
F0 = f"{M}-0000"
T1, T2, T4 = (f"pod.e1f2a3b4-000{i}-11e5-9f2c-42010af00002" for i in (1, 2, 4))
MT3 = "webapp.7f3c2b1a-25e4-11e5-a6b4-0242ac110003"


def operator_events(parser: OperatorParser, name: str) -> list[dict]:
    out = []
    for r in records(name):
        out += parser.feed_record(r)
    return out


def assert_fold_matches(st: ClusterState, snap: Snapshot, awaiting: frozenset[str] = frozenset()) -> None:
    """The folded state says what the master's own listing says; ``awaiting``: agents absent
    from it that await re-registration after a failover (deactivated, not removed)."""
    live = {key: v.task["state"] for key, v in snap.tasks.items()}
    assert {k: fold_task(st, k)["state"] for k in live} == live
    for key, v in snap.tasks.items():
        assert fold_task(st, key)["agent_id"] == v.task["agent_id"]
        assert fold_task(st, key)["framework_id"] == v.task["framework_id"]
    for key, v in snap.completed_tasks.items():
        assert fold_task(st, key)["state"] == v.task["state"]
    awaiting = awaiting | set(snap.recovered_agents)
    known_agents = {a for a, e in st.agents.items() if e["status"] != "removed"}
    assert known_agents == set(snap.agents) | awaiting
    for aid, active in snap.agent_active.items():
        assert (st.agents[aid]["status"] == "active") == active
    for aid in awaiting:
        assert st.agents[aid]["status"] == "deactivated"
    registered = {f for f, e in st.frameworks.items() if e["status"] == "registered"}
    # a framework awaiting re-registration after a failover (v0 "unregistered") is not removed
    assert set(snap.frameworks) <= registered <= set(snap.frameworks) | set(snap.recovered_frameworks)
    for fid, fw in snap.frameworks.items():
        assert st.frameworks[fid]["failover_timeout"] == fw["failover_timeout"]
    listed = {k[1] for k in snap.tasks} | {k[1] for k in snap.completed_tasks}
    for e in st.tasks.values():
        if e["id"].rpartition("/")[2] not in listed and e["agent_id"] not in awaiting:
            assert e["state"] in TERMINAL_TASK_STATES or e["state"] == "TASK_UNKNOWN", e["id"]


def test_operator_stream_maps_every_event_type() -> None:
    p = OperatorParser(CLUSTER, "stream-1", now=fixed_now)
    evs = canonical(operator_events(p, "mesos/operator_subscribe.recordio"))
    types = [e["type"] for e in evs]
    assert types[0] == "cluster.snapshot_observed"
    assert evs[0]["payload"]["tasks"] == 3 and evs[0]["payload"]["agents"] == 3
    for t in ("framework.registered", "agent.added", "task.added", "task.status_updated",
              "agent.removed", "framework.reregistered", "framework.removed"):
        assert t in types
    assert p.heartbeats == 3 and p.heartbeat_interval == 15.0
    assert p.skipped.counts == {"HEARTBEAT (liveness only)": 3}
    upd = next(e for e in evs if e["raw_type"] == "TASK_UPDATED")
    assert upd["clock"] == "agent" and upd["occurred_at"] == "2015-07-08T15:03:30.250000Z"
    assert upd["payload"]["status"]["data"] is None  # status data never carried
    added = next(e for e in evs if e["raw_type"] == "TASK_ADDED")
    assert added["payload"]["task"]["task_id"] == T4
    assert added["payload"]["task"]["resources"][0] == {"name": "cpus", "role": "*", "scalar": 0.25,
                                                        "ranges": None}
    agent = next(e for e in evs if e["type"] == "agent.added")["payload"]["agent"]
    assert agent["attributes"] == {"rack": "r0", "gen": "2"}
    assert {"name": "ports", "role": "*", "scalar": None, "ranges": [[31000, 32000]]} in agent["resources"]
    # every envelope: source filled, ids left for ingest, raw_type kept
    for e in operator_events(OperatorParser(CLUSTER, "s", now=fixed_now), "mesos/operator_subscribe.recordio"):
        assert e["source"]["kind"] == "mesos.operator" and e["source"]["stream_id"] == "s"
        assert "event_id" not in e and "dedupe_key" not in e
    # diff events name the snapshot as their cause
    assert all(e["causation_id"] == evs[0]["event_id"] for e in evs[1:9])


def test_operator_stream_folds_to_the_later_get_state() -> None:
    p = OperatorParser(CLUSTER, "stream-1", now=fixed_now)
    st = folded(operator_events(p, "mesos/operator_subscribe.recordio"))
    later = snapshot_v1(load("mesos/operator_get_state.json")["get_state"])
    assert_fold_matches(st, later)
    assert fold_task(st, (F0, T2))["state"] == "TASK_FINISHED"
    assert st.agents[f"{M}-S2"]["status"] == "removed"


def test_resubscription_diffs_against_what_was_seen_and_reports_vanished_tasks() -> None:
    p = OperatorParser(CLUSTER, "stream-1", now=fixed_now)
    first = operator_events(p, "mesos/operator_subscribe.recordio")
    p.new_stream("stream-2")
    second = operator_events(p, "mesos/operator_resubscribe.recordio")
    assert {e["source"]["stream_id"] for e in second} == {"stream-2"}
    assert second[0]["source"]["seq"] == 0
    by_type = {(e["type"], json.dumps(e["payload"], sort_keys=True)) for e in canonical(second)}
    kinds = sorted(t for t, _ in by_type)
    assert kinds.count("task.added") == 1       # T5 only: T4 and T2 are known
    vanished = [e for e in second if e["type"] == "task.status_updated"
                and e["payload"]["status"]["state"] == "TASK_UNKNOWN"]
    assert [e["payload"]["status"]["task_id"] for e in vanished] == [T1]
    s = vanished[0]["payload"]["status"]
    assert (s["source"], s["reason"]) == ("SOURCE_MASTER", "REASON_RECONCILIATION")
    killed = [e for e in second if e["type"] == "task.status_updated" and e["payload"]["status"]["task_id"] == MT3]
    assert killed[0]["payload"]["status"]["state"] == "TASK_KILLED"
    assert [e["payload"] for e in second if e["type"] == "agent.removed"] == [
        {"agent_id": f"{M}-S1", "reason": "vanished"}]
    st = folded(first + second)
    snap = snapshot_v1(json.loads(records("mesos/operator_resubscribe.recordio")[0])["subscribed"]["get_state"])
    assert_fold_matches(st, snap)
    assert fold_task(st, (F0, T1))["state"] == "TASK_UNKNOWN"  # kept, not dropped


def test_an_identical_resubscription_changes_nothing() -> None:
    p = OperatorParser(CLUSTER, "s1", now=fixed_now)
    operator_events(p, "mesos/operator_subscribe.recordio")
    p.new_stream("s2")
    later = load("mesos/operator_get_state.json")["get_state"]
    evs = p.feed({"type": "SUBSCRIBED", "subscribed": {"get_state": later}})
    assert [e["type"] for e in evs] == ["cluster.snapshot_observed"]


def test_unknown_records_are_counted_and_undecodable_ones_quarantined() -> None:
    p = OperatorParser(CLUSTER, "s1", now=fixed_now)
    assert p.feed({"type": "AGENT_DRAINED_FUTURE", "x": {}}) == []
    assert p.feed_record(b"{not json") == []
    assert p.skipped.counts == {"type 'AGENT_DRAINED_FUTURE'": 1}
    [q] = p.outcomes.take_quarantined()
    assert (q.stream_id, q.seq, q.raw) == ("s1", 1, b"{not json") and q.reason.startswith("not JSON")
    assert p.stream.seq == 1


def test_master_and_heartbeat_lost_events() -> None:
    p = OperatorParser(CLUSTER, "s1", now=fixed_now)
    info = load("mesos/master_info.json")["get_master"]["master_info"]
    [elected] = canonical(p.master(info))
    assert elected["payload"]["master"] == {"id": M, "hostname": "localhost", "ip": "127.0.0.1",
                                            "port": 5050, "version": "1.11.0"}
    assert p.master(info) == []  # same master: no election
    lost = canonical([p.heartbeat_lost(2)])[0]
    assert lost["payload"] == {"master_id": M, "missed": 2, "interval_seconds": 15.0}


def test_master_state_polls_become_diffs() -> None:
    sp = StateParser(CLUSTER, now=fixed_now)
    polls = [sp.feed(load(f"mesos/master_state_{i}.json")) for i in (1, 2, 3)]
    all_events = [e for p in polls for e in p]
    canonical(all_events)
    assert [e["source"]["seq"] for e in polls[1]] == [1] * len(polls[1])
    t2 = [e["type"] for e in polls[1]]
    assert "agent.deactivated" in t2 and "task.added" in t2
    upd = [e["payload"]["status"] for e in polls[1] if e["type"] == "task.status_updated"]
    assert [(s["task_id"], s["state"], s["timestamp"]) for s in upd] == [(T2, "TASK_FINISHED", 1436367820.0)]
    t3 = [e for e in polls[2] if e["type"] == "master.elected"]
    assert t3[0]["payload"]["master"]["id"] == f"{M}-B"
    assert t3[0]["payload"]["previous_master_id"] == M
    # F1 has no registered framework entry in poll 3 but is unregistered (orphan tasks): not removed
    assert not [e for e in polls[2] if e["type"] == "framework.removed"]
    # poll 3 is the new master's first, 60 s after its election (a 0.28 listing: it does not
    # list recovered agents): S1, absent, awaits re-registration: kept deactivated (since poll 2),
    # not removed, and its task not made unknown
    assert [e for e in polls[2] if e["type"].startswith("agent.")] == []
    assert sp.differ.awaiting_agents == {f"{M}-S1"}
    st = folded(all_events)
    assert_fold_matches(st, snapshot_v0(load("mesos/master_state_3.json")), frozenset({f"{M}-S1"}))
    # ten minutes after the election (the default agent_reregister_timeout) S1 has not come back
    later = StateParser(CLUSTER, now=lambda: fixed_now() + 600)
    later.differ, later.stream.seq = sp.differ, 2
    poll4 = later.feed(load("mesos/master_state_3.json"))
    assert [(e["type"], e["payload"]) for e in poll4 if e["type"].startswith("agent.")] == [
        ("agent.removed", {"agent_id": f"{M}-S1", "reason": "reregister_timeout"})]
    st = folded(poll4, st)
    assert_fold_matches(st, snapshot_v0(load("mesos/master_state_3.json")))
    assert st.agents[f"{M}-S1"]["status"] == "removed"


def test_master_state_v0_values() -> None:
    snap = snapshot_v0(load("mesos/master_state_1.json"))
    agent = snap.agents[f"{M}-S0"]
    assert agent["port"] == 5051 and agent["attributes"] == {"rack": "r0", "gen": "2"}
    assert {"name": "ports", "role": "*", "scalar": None, "ranges": [[31000, 32000]]} in agent["resources"]
    task = snap.tasks[(F0, T1)].task
    assert task["agent_id"] == f"{M}-S0" and task["labels"]["app"] == "nginx"


def test_scheduler_stream_maps_every_event_type() -> None:
    info = load("mesos/scheduler_framework_info.json")
    p = SchedulerParser(CLUSTER, "mesos-stream-1", framework_info=info, now=fixed_now, skew_threshold=1e9)
    evs = []
    for r in records("mesos/scheduler_events.recordio"):
        evs += p.feed_record(r)
    evs = canonical(evs)
    assert [e["type"] for e in evs] == [
        "master.elected", "framework.registered", "offer.offered", "offer.offered", "offer.rescinded",
        "task.status_updated", "task.status_updated", "inverse_offer.offered", "inverse_offer.rescinded",
        "executor.removed", "agent.removed", "task.status_updated", "master.error"]
    assert p.skipped.counts == {"MESSAGE (opaque executor data; no catalogue type)": 1,
                                "HEARTBEAT (liveness only)": 1}
    assert p.heartbeats == 1
    offer = evs[2]["payload"]["offer"]
    assert offer["id"] == f"{M}-O11" and offer["hostname"] == "10.132.0.10"
    assert evs[2]["correlation_id"] == f"{M}-O11"
    io = evs[7]["payload"]["inverse_offer"]["unavailability"]
    assert io == {"start": "2015-07-08T15:40:00.000000Z", "duration_seconds": 3600.0}
    lost = evs[11]["payload"]["status"]
    assert (lost["state"], lost["reason"], lost["uuid"]) == ("TASK_LOST", "REASON_AGENT_REMOVED", None)
    assert evs[11]["clock"] == "master"
    assert [e["source"]["seq"] for e in evs[:5]] == [0, 0, 1, 1, 2]
    st = folded(evs)
    assert st.offers[f"{M}-O12"]["status"] == "rescinded"
    assert st.offers[f"{M}-O11"]["status"] == "outstanding"


def test_forwarded_scheduler_stream_reports_gaps_and_uses_the_forwarders_clock() -> None:
    p = SchedulerParser(CLUSTER, "fwd-1", now=fixed_now)
    recs = [json.loads(r) for r in records("mesos/scheduler_events.recordio")]
    out = p.feed(recs[1], seq=0, received_at="2015-07-08T15:04:59Z")
    assert out[0]["clock"] == "scheduler" and out[0]["occurred_at"] == "2015-07-08T15:04:59.000000Z"
    gap = p.feed(recs[2], seq=3, received_at=1436367899.5)
    assert gap[0]["type"] == "source.gap" and gap[0]["payload"]["expected_seq"] == 1
    assert p.skipped.counts == {}
    canonical(out + gap)
