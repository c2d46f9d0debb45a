"""Issue 16's Mesos defects, one behaviour each: task identity, reservations by role, status
times, failover recovery, tolerant values, both documented scheduler shapes, polled offers,
and no parser raising for one record."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.sources import mesos_values as mv
from kmevents.sources.mesos_operator import OperatorParser, snapshot_v1
from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.mesos_state import StateParser
from tests.unit.sources._helpers import CLUSTER, canonical, fixed_now, fold_task, folded

M = "4b1f3b6e-7c55-4a1a-9a57-0e0c2f7d1a10"
F1, F2 = f"{M}-0001", f"{M}-0002"
S0, S1 = f"{M}-S0", f"{M}-S1"


def v0_task(tid: str, fid: str, state: str = "TASK_RUNNING", agent: str = S0, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "name": tid, "framework_id": fid, "executor_id": "", "slave_id": agent,
            "state": state, "resources": {"cpus": 0.5, "mem": 128.0, "disk": 0.0, "gpus": 0.0},
            "statuses": [{"state": state, "timestamp": 1546300800.5}], **extra}


def v0_state(frameworks: list[dict[str, Any]], slaves: list[dict[str, Any]] | None = None,
             **extra: Any) -> dict[str, Any]:
    pid = "master@10.0.0.1:5050"
    return {"version": "1.7.2", "id": M, "pid": pid, "leader": pid, "hostname": "m1",
            "elected_time": 1546300000.0, "flags": {"agent_reregister_timeout": "10mins"},
            "slaves": slaves if slaves is not None else [v0_slave(S0, "10.0.0.10")],
            "frameworks": frameworks, "completed_frameworks": [], "orphan_tasks": [],
            "unregistered_frameworks": [], **extra}


def v0_slave(sid: str, host: str, **extra: Any) -> dict[str, Any]:
    return {"id": sid, "pid": f"slave(1)@{host}:5051", "hostname": host, "port": 5051,
            "registered_time": 1546300010.0, "active": True, "attributes": {},
            "resources": {"cpus": 8.0, "mem": 16384.0, "disk": 100000.0, "gpus": 0.0,
                          "ports": "[31000-32000]"}, **extra}


def v0_framework(fid: str, tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": fid, "name": fid[-4:], "role": "*", "hostname": "sched", "failover_timeout": 604800.0,
            "active": True, "tasks": tasks, "completed_tasks": [], "offers": [], **extra}


NOW = 1546300900.0  # 2019-01-01T00:01:40Z, 900 s after the master's election above


def now() -> float:
    return NOW


# -- task identity -----------------------------------------------------------------

def test_tasks_of_two_frameworks_with_the_same_id_are_two_tasks() -> None:
    state = v0_state([v0_framework(F1, [v0_task("web-1", F1)]), v0_framework(F2, [v0_task("web-1", F2)])])
    evs = canonical(StateParser(CLUSTER, now=now).feed(state))
    added = [(e["payload"]["task"]["framework_id"], e["payload"]["task"]["task_id"])
             for e in evs if e["type"] == "task.added"]
    assert sorted(added) == [(F1, "web-1"), (F2, "web-1")]
    assert evs[0]["payload"]["tasks"] == 2
    # the operator API's GET_STATE the same way
    get_state = {"get_tasks": {"tasks": [
        {"task_id": {"value": "web-1"}, "framework_id": {"value": fid}, "agent_id": {"value": S0},
         "name": "web-1", "state": "TASK_RUNNING"} for fid in (F1, F2)]}}
    assert sorted(snapshot_v1(get_state).tasks) == [(F1, "web-1"), (F2, "web-1")]


def test_a_status_update_names_the_framework_of_its_task() -> None:
    p = OperatorParser(CLUSTER, "s", now=now)
    p.feed({"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": F2}, "state": "TASK_FINISHED",
        "status": {"task_id": {"value": "web-1"}, "state": "TASK_FINISHED", "timestamp": NOW - 1}}})
    assert p.differ.tasks[(F2, "web-1")]["state"] == "TASK_FINISHED"
    assert (F1, "web-1") not in p.differ.tasks and ("", "web-1") not in p.differ.tasks


# -- reservations by role ----------------------------------------------------------

def _by_role(resources: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {(r["role"], r["name"]): r["scalar"] if r["scalar"] is not None else r["ranges"] for r in resources}


def test_reserved_resources_keep_their_role_in_every_listing_shape() -> None:
    # 0.23 .. 1.x /master/state: reserved_resources by role, unreserved_resources beside
    s = v0_slave(S0, "10.0.0.10",
                 reserved_resources={"web": {"cpus": 2.0, "mem": 4096.0, "disk": 0.0, "gpus": 0.0,
                                             "ports": "[31000-31099]"},
                                     "batch": {"cpus": 1.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}},
                 unreserved_resources={"cpus": 5.0, "mem": 12288.0, "disk": 100000.0, "gpus": 0.0,
                                       "ports": "[31100-32000]"})
    got = _by_role(mv.agent_v0(s)["resources"])
    assert got[("web", "cpus")] == 2.0 and got[("web", "mem")] == 4096.0
    assert got[("web", "ports")] == [[31000, 31099]] and got[("batch", "cpus")] == 1.0
    assert got[("*", "cpus")] == 5.0 and got[("*", "ports")] == [[31100, 32000]]
    assert ("batch", "mem") not in got  # a role's zero amounts are not reservations
    # /slaves and later captures: reserved_resources_full, v1 Resources with their reservations
    full = dict(s, reserved_resources_full={"web": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "web",
         "reservation": {"principal": "ops"}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5},
         "reservations": [{"type": "STATIC", "role": "web"}, {"type": "DYNAMIC", "role": "web/api"}]}]},
        unreserved_resources_full=[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 5.5}, "role": "*"}])
    assert sorted((r["role"], r["scalar"]) for r in mv.agent_v0(full)["resources"]) == [
        ("*", 5.5), ("web", 2.0), ("web/api", 0.5)]


# -- status times ---------------------------------------------------------------------

def test_a_listed_status_change_happens_at_its_timestamp_on_the_agents_clock() -> None:
    sp = StateParser(CLUSTER, now=now)
    sp.feed(v0_state([v0_framework(F1, [v0_task("web-1", F1)])]))
    done = v0_task("web-1", F1, "TASK_FINISHED")
    done["statuses"] = [{"state": "TASK_RUNNING", "timestamp": 1546300800.5},
                        {"state": "TASK_FINISHED", "timestamp": 1546300850.25}]
    framework = v0_framework(F1, [])
    framework["completed_tasks"] = [done]
    [upd] = [e for e in canonical(sp.feed(v0_state([framework]))) if e["type"] == "task.status_updated"]
    assert (upd["occurred_at"], upd["clock"]) == ("2019-01-01T00:00:50.250000Z", "agent")
    assert upd["payload"]["status"]["timestamp"] == 1546300850.25


# -- failover: awaiting re-registration is not removal ------------------------------

def _agent_v1(sid: str, host: str) -> dict[str, Any]:
    return {"id": {"value": sid}, "hostname": host, "port": 5051,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 8.0}, "role": "*"}]}


def _task_v1(tid: str, fid: str, sid: str, state: str = "TASK_RUNNING") -> dict[str, Any]:
    return {"task_id": {"value": tid}, "framework_id": {"value": fid}, "agent_id": {"value": sid},
            "name": tid, "state": state,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"}]}


def _fw_v1(fid: str, **extra: Any) -> dict[str, Any]:
    return {"framework_info": {"id": {"value": fid}, "name": fid[-4:], "user": "root",
                               "failover_timeout": 604800.0, "roles": ["*"]},
            "active": True, "connected": True, "recovered": False, **extra}


def test_failover_subscribed_with_recovered_agents_then_reregistrations_removes_nothing() -> None:
    p = OperatorParser(CLUSTER, "s1", now=now)
    p.master({"id": f"{M}-A", "hostname": "m1", "port": 5050})
    before = [{"type": "SUBSCRIBED", "subscribed": {"get_state": {
        "get_agents": {"agents": [{"agent_info": _agent_v1(S0, "10.0.0.10"), "active": True},
                                  {"agent_info": _agent_v1(S1, "10.0.0.11"), "active": True}]},
        "get_frameworks": {"frameworks": [_fw_v1(F1)]},
        "get_tasks": {"tasks": [_task_v1("web-1", F1, S0), _task_v1("web-2", F1, S1)]}}}}]
    events = [e for r in before for e in p.feed(r)]
    # the master fails over; the new one has recovered both agents from its registry
    p.new_stream("s2")
    events += p.master({"id": f"{M}-B", "hostname": "m2", "port": 5050})
    after = [
        {"type": "SUBSCRIBED", "subscribed": {"heartbeat_interval_seconds": 15, "get_state": {
            "get_agents": {"recovered_agents": [_agent_v1(S0, "10.0.0.10"), _agent_v1(S1, "10.0.0.11")]},
            "get_frameworks": {}, "get_tasks": {}}}},
        {"type": "AGENT_ADDED", "agent_added": {"agent": {
            "agent_info": _agent_v1(S0, "10.0.0.10"), "active": True,
            "reregistered_time": {"nanoseconds": 1546300905000000000}}}},
        {"type": "TASK_ADDED", "task_added": {"task": _task_v1("web-1", F1, S0)}},
        {"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": _fw_v1(F1)}},
        {"type": "AGENT_ADDED", "agent_added": {"agent": {
            "agent_info": _agent_v1(S1, "10.0.0.11"), "active": True,
            "reregistered_time": {"nanoseconds": 1546300906000000000}}}},
        {"type": "TASK_ADDED", "task_added": {"task": _task_v1("web-2", F1, S1)}},
    ]
    got = [p.feed(r) for r in after]
    events += [e for g in got for e in g]
    assert [e["type"] for e in got[0]] == ["cluster.snapshot_observed", "agent.deactivated", "agent.deactivated"]
    types = [e["type"] for e in events]
    assert "agent.removed" not in types and "framework.removed" not in types
    assert not [e for e in events if e["type"] == "task.status_updated"]
    state = folded(events)
    assert {a: e["status"] for a, e in state.agents.items()} == {S0: "active", S1: "active"}
    assert state.frameworks[F1]["status"] == "registered"
    assert fold_task(state, (F1, "web-1"))["state"] == fold_task(state, (F1, "web-2"))["state"] == "TASK_RUNNING"


def test_a_state_poll_after_failover_keeps_what_awaits_reregistration() -> None:
    sp = StateParser(CLUSTER, now=now)
    sp.feed(v0_state([v0_framework(F1, [v0_task("web-1", F1), v0_task("web-2", F1, agent=S1)])],
                     [v0_slave(S0, "10.0.0.10"), v0_slave(S1, "10.0.0.11")]))
    # 1.7 after a failover: S1 recovered, not re-registered; F1 known only through S0's tasks
    pid = "master@10.0.0.2:5050"
    failed_over = v0_state([v0_framework(F1, [v0_task("web-1", F1)], recovered=True, active=False)],
                           recovered_slaves=[{"id": S1, "hostname": "10.0.0.11", "port": 5051, "attributes": {}}],
                           id=f"{M}-B", pid=pid, leader=pid, elected_time=NOW - 30)
    evs = canonical(sp.feed(failed_over))
    assert [(e["type"], e["payload"].get("agent_id")) for e in evs[1:]] == [
        ("master.elected", None), ("agent.deactivated", S1)]
    # 0.28 after a failover (no recovered lists): S0 is back with F1's task as an orphan (F1 has
    # not re-registered), S1 absent within the window is awaited the same way
    sp = StateParser(CLUSTER, now=now)
    sp.feed(v0_state([v0_framework(F1, [v0_task("web-1", F1), v0_task("web-2", F1, agent=S1)])],
                     [v0_slave(S0, "10.0.0.10"), v0_slave(S1, "10.0.0.11")], version="0.28.2"))
    old = v0_state([], id=f"{M}-B", pid=pid, leader=pid, elected_time=NOW - 30, version="0.28.2",
                   orphan_tasks=[v0_task("web-1", F1)], unregistered_frameworks=[F1])
    evs = canonical(sp.feed(old))
    assert [(e["type"], e["payload"].get("agent_id")) for e in evs[1:]] == [
        ("master.elected", None), ("agent.deactivated", S1)]
    # past the window S1 is removed, and only then its task is unknown
    sp.stream.now = lambda: NOW + 600
    evs = canonical(sp.feed(old))
    assert [(e["type"], e["payload"].get("agent_id"), e["payload"].get("reason")) for e in evs[1:]] == [
        ("task.status_updated", None, None), ("agent.removed", S1, "reregister_timeout")]
    assert evs[1]["payload"]["status"]["state"] == "TASK_UNKNOWN"


# -- tolerant values and quarantine ------------------------------------------------------

def test_ranges_in_every_written_form_are_read() -> None:
    for ranges in ("[31000-31005, 32000-32000]", {"range": "[31000-31005, 32000-32000]"},
                   {"range": [{"begin": "31000", "end": "31005"}, {"begin": 32000, "end": 32000}]},
                   ["31000-31005", "32000-32000"]):
        [r] = mv.resources_v1([{"name": "ports", "type": "RANGES", "ranges": ranges}])
        assert r["ranges"] == [[31000, 31005], [32000, 32000]], ranges
    attrs = mv.attributes_v1([{"name": "p", "type": "RANGES", "ranges": "[1-2]"}])
    assert attrs == {"p": "[1-2]"}


def test_a_record_the_parser_cannot_map_is_quarantined_and_the_stream_goes_on() -> None:
    p = OperatorParser(CLUSTER, "s", now=now)
    bad = {"type": "AGENT_ADDED", "agent_added": {"agent": {"active": True}}}
    assert p.feed(bad) == []
    [q] = p.outcomes.take_quarantined()
    assert q.seq == 0 and "agent_info" in q.reason and json.loads(q.raw) == bad
    good = {"type": "AGENT_ADDED", "agent_added": {"agent": {"agent_info": _agent_v1(S0, "h"), "active": True}}}
    assert [e["type"] for e in p.feed(good)] == ["agent.added"]
    # a listing with one unreadable part: quarantined whole, nothing diffed from it
    sp = StateParser(CLUSTER, now=now)
    state = v0_state([v0_framework(F1, [{"name": "no id"}])])
    assert sp.feed(state) == []
    [q] = sp.outcomes.take_quarantined()
    assert "task.id" in q.reason
    assert sp.feed_bytes(b"<html>not a master</html>") == []
    assert sp.outcomes.quarantined_total == 2


def test_the_documented_task_updated_example_is_read() -> None:
    # docs/operator-http-api.md writes TASK_UPDATED with the ids and state at the top
    p = OperatorParser(CLUSTER, "s", now=now)
    [e] = canonical(p.feed({"type": "TASK_UPDATED", "task_updated": {
        "task_id": {"value": "web-1"}, "framework_id": {"value": F1}, "agent_id": {"value": S0},
        "executor_id": {"value": "x"}, "state": "TASK_RUNNING"}}))
    assert e["payload"]["status"]["task_id"] == "web-1" and e["payload"]["status"]["agent_id"] == S0
    assert e["clock"] == "adapter"


# -- the scheduler stream's documented shapes ----------------------------------------

def _offer(oid: str, key: str = "id") -> dict[str, Any]:
    return {key: {"value": oid}, "framework_id": {"value": F1}, "agent_id": {"value": S0},
            "hostname": "10.0.0.10", "allocation_info": {"role": "*"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "*"}]}


def test_scheduler_offers_and_error_in_both_documented_shapes() -> None:
    p = SchedulerParser(CLUSTER, "sched", now=fixed_now)
    guide = p.feed({"type": "OFFERS", "offers": [_offer(f"{M}-O1"), _offer(f"{M}-O2", "offer_id")]})
    proto = p.feed({"type": "OFFERS", "offers": {"offers": [_offer(f"{M}-O3")]}})
    assert [e["payload"]["offer"]["id"] for e in canonical(guide + proto)] == [f"{M}-O1", f"{M}-O2", f"{M}-O3"]
    [top] = p.feed({"type": "ERROR", "message": "Framework is not authorized"})
    [nested] = p.feed({"type": "ERROR", "error": {"message": "Framework has been removed"}})
    assert top["payload"]["message"] == "Framework is not authorized"
    assert nested["payload"]["message"] == "Framework has been removed"
    assert p.outcomes.quarantined_total == 0


# -- offers polled from /master/state -------------------------------------------------

def test_outstanding_offers_in_state_polls_become_offered_and_closed_events() -> None:
    def offer(oid: str, agent: str = S0) -> dict[str, Any]:
        return {"id": oid, "framework_id": F1, "slave_id": agent, "allocation_info": {"role": "*"},
                "resources": {"cpus": 2.0, "mem": 1024.0, "disk": 0.0, "gpus": 0.0, "ports": "[31000-31009]"}}

    slaves = [v0_slave(S0, "10.0.0.10"), v0_slave(S1, "10.0.0.11")]
    sp = StateParser(CLUSTER, now=now)
    first = sp.feed(v0_state([v0_framework(F1, [], offers=[offer("O1"), offer("O2", S1), offer("O3")])], slaves))
    offered = [e["payload"]["offer"] for e in canonical(first) if e["type"] == "offer.offered"]
    assert [(o["id"], o["hostname"]) for o in offered] == [("O1", "10.0.0.10"), ("O2", "10.0.0.11"),
                                                            ("O3", "10.0.0.10")]
    assert offered[0]["resources"] == [{"name": "cpus", "role": "*", "scalar": 2.0, "ranges": None},
                                       {"name": "mem", "role": "*", "scalar": 1024.0, "ranges": None},
                                       {"name": "ports", "role": "*", "scalar": None, "ranges": [[31000, 31009]]}]
    # next poll: O1 and O3 gone with a new task of F1 on S0 (accepted), S1 deactivated (O2 rescinded)
    slaves[1]["active"] = False
    second = sp.feed(v0_state([v0_framework(F1, [v0_task("web-9", F1)], offers=[])], slaves))
    closed = [(e["type"], e["payload"]) for e in canonical(second) if e["type"].startswith("offer.")]
    assert closed == [("offer.accepted", {"offer_id": "O1", "task_ids": ["web-9"]}),
                      ("offer.rescinded", {"offer_id": "O2"}),
                      ("offer.accepted", {"offer_id": "O3", "task_ids": ["web-9"]})]
    # an offer gone without a launch on its active agent: closed, how the listing cannot say
    third = sp.feed(v0_state([v0_framework(F1, [v0_task("web-9", F1)], offers=[offer("O4")])], slaves))
    fourth = sp.feed(v0_state([v0_framework(F1, [v0_task("web-9", F1)], offers=[])], slaves))
    assert [e["type"] for e in third + fourth if e["type"].startswith("offer.")] == ["offer.offered", "offer.expired"]
    st = folded(first + second + third + fourth)
    assert {o: e["status"] for o, e in st.offers.items()} == {
        "O1": "accepted", "O2": "rescinded", "O3": "accepted", "O4": "expired"}
    # with a scheduler stream posted, the poller leaves offers to it
    quiet = StateParser(CLUSTER, now=now, offers=False)
    assert not [e for e in quiet.feed(v0_state([v0_framework(F1, [], offers=[offer("O1")])], slaves))
                if e["type"].startswith("offer.")]


def test_a_listing_from_a_master_that_does_not_lead_is_skipped() -> None:
    sp = StateParser(CLUSTER, now=now)
    sp.feed(v0_state([v0_framework(F1, [v0_task("web-1", F1)])]))
    standby = v0_state([], slaves=[], pid="master@10.0.0.3:5050")  # 0.x: a standby's own, empty state
    assert sp.feed(standby) == []
    assert sp.skipped.counts == {"listing of a master that does not lead": 1}
    assert sp.leader_elsewhere == "master@10.0.0.1:5050"


# -- no parser raises for one record ---------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _mutations(base: Any) -> st.SearchStrategy[Any]:
    """``base`` with one value somewhere replaced by arbitrary JSON."""
    paths: list[tuple[Any, ...]] = []

    def walk(v: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, (*path, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, (*path, i))

    walk(base, ())

    def put(path: tuple[Any, ...], value: Any) -> Any:
        if not path:
            return value
        out = copy.deepcopy(base)
        cur = out
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = value
        return out

    return st.builds(put, st.sampled_from(paths), JSON)


def _accounted(parser: Any, records: list[Any], feed: Any) -> None:
    gave = 0
    for r in records:
        before = sum(parser.skipped.counts.values()) + parser.outcomes.quarantined_total
        out = feed(r)
        after = sum(parser.skipped.counts.values()) + parser.outcomes.quarantined_total
        assert (1 if out else 0) + (after - before) == 1, (r, out)
        gave += bool(out)


BASE_STATE = v0_state([v0_framework(F1, [v0_task("web-1", F1)], offers=[
    {"id": "O1", "framework_id": F1, "slave_id": S0, "resources": {"cpus": 1.0}}])],
    recovered_slaves=[{"id": S1, "hostname": "h", "attributes": {}}])
BASE_OPERATOR = {"type": "SUBSCRIBED", "subscribed": {"get_state": {
    "get_agents": {"agents": [{"agent_info": _agent_v1(S0, "h"), "active": True}],
                   "recovered_agents": [_agent_v1(S1, "h")]},
    "get_frameworks": {"frameworks": [_fw_v1(F1)]},
    "get_tasks": {"tasks": [dict(_task_v1("web-1", F1, S0), statuses=[{"task_id": {"value": "web-1"},
                                                                       "state": "TASK_RUNNING", "timestamp": 1.5}])]}}}}
BASE_UPDATE = {"type": "UPDATE", "update": {"status": {"task_id": {"value": "web-1"}, "state": "TASK_RUNNING",
                                                       "agent_id": {"value": S0}, "timestamp": NOW}}}


@settings(max_examples=400, deadline=None)
@given(_mutations(BASE_STATE), _mutations(BASE_OPERATOR), _mutations(BASE_UPDATE),
       _mutations({"type": "OFFERS", "offers": [_offer("O9")]}))
def test_no_parser_raises_for_one_record_and_every_record_is_accounted(
        state: Any, operator: Any, update: Any, offers: Any) -> None:
    sp = StateParser(CLUSTER, now=now)
    _accounted(sp, [state, BASE_STATE], sp.feed)
    op = OperatorParser(CLUSTER, "s", now=now)
    _accounted(op, [operator, BASE_OPERATOR, json.dumps(operator).encode()[:-1]],
               lambda r: op.feed_record(r) if isinstance(r, bytes) else op.feed(r))
    sc = SchedulerParser(CLUSTER, "s", now=now)
    _accounted(sc, [update, offers], sc.feed)
