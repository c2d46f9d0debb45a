"""Reducer semantics, one test per rule of issue 4 (named after the rule)."""

from __future__ import annotations

import itertools

import pytest

from kmevents.reducer import ClusterState, Retention, apply, fold
from tests.unit.reducer.streams import Log, entities

TERMINAL = ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_DROPPED",
            "TASK_GONE", "TASK_GONE_BY_OPERATOR"]
PARKED = ["TASK_LOST", "TASK_UNREACHABLE", "TASK_UNKNOWN"]


def kinds(anns: list[dict]) -> list[str]:
    return [a["kind"] for a in anns]


def running_task(log: Log, state: str = "TASK_RUNNING") -> tuple[ClusterState, list[dict]]:
    return fold([log.agent_added("a1"), log.launched("t1", "a1"),
                 log.status("t1", state, uuid="u-run")], cluster="c1")


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_task_states_are_final(terminal: str) -> None:
    log = Log()
    st, _ = running_task(log)
    apply(st, log.status("t1", terminal, uuid="u-end"))
    before = entities(st)
    anns = apply(st, log.status("t1", "TASK_RUNNING", uuid="u-again"))
    assert kinds(anns) == ["impossible"]
    assert anns[0]["entity"] == {"kind": "task", "id": "fw/t1"}  # <framework_id>/<task_id>
    assert entities(st) == before
    assert st.entity("task", "fw/t1")["state"] == terminal
    assert st.entity("agent", "a1")["allocated"] == {}


@pytest.mark.parametrize("parked", PARKED)
def test_lost_unreachable_unknown_are_not_terminal_but_stop_counting(parked: str) -> None:
    log = Log()
    st, _ = running_task(log)
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 0.5, "mem": 256.0}
    apply(st, log.status("t1", parked, uuid="u-parked"))
    assert st.entity("agent", "a1")["allocated"] == {}
    assert st.entity("role", "*")["allocated"] == {}
    assert st.entity("task", "fw/t1")["state"] == parked
    # not terminal: it may come back
    assert apply(st, log.status("t1", "TASK_RUNNING", uuid="u-back")) == []


def test_lost_task_reporting_running_counts_again() -> None:
    log = Log()
    st, _ = running_task(log)
    apply(st, log.status("t1", "TASK_LOST", uuid="u-lost", reason="REASON_AGENT_DISCONNECTED"))
    apply(st, log.status("t1", "TASK_RUNNING", uuid="u-back"))
    assert st.entity("task", "fw/t1")["state"] == "TASK_RUNNING"
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 0.5, "mem": 256.0}
    assert list(st.terminal_ids("task")) == []  # left the retention index


def test_status_update_delivered_twice_changes_no_entity() -> None:
    log = Log()
    st, _ = running_task(log)
    st.take_dirty()
    before = entities(st)
    # same uuid, but a different dedupe key (e.g. beyond the global window): per-task memory
    anns = apply(st, log.status("t1", "TASK_RUNNING", uuid="u-run", healthy=False))
    assert kinds(anns) == ["duplicate"]
    # same dedupe key: the global window
    first = log.status("t1", "TASK_FINISHED", uuid="u-fin", key="same")
    apply(st, first)
    after_first = entities(st)
    st.take_dirty()
    anns = apply(st, dict(first, event_id="other-delivery"))
    assert kinds(anns) == ["duplicate"]
    assert entities(st) == after_first != before
    assert st.take_dirty() == set()


def test_reconciliation_updates_never_clobber_data_or_labels() -> None:
    log = Log()
    st, _ = fold([log.agent_added("a1"), log.launched("t1", "a1"),
                  log.status("t1", "TASK_RUNNING", uuid="u1", labels={"k": "v"}, data="ZGF0YQ==",
                             healthy=True)], cluster="c1")
    apply(st, log.status("t1", "TASK_RUNNING", reason="REASON_RECONCILIATION",
                         source="SOURCE_MASTER"))
    task = st.entity("task", "fw/t1")
    assert task["status"]["labels"] == {"k": "v"}
    assert task["status"]["data"] == "ZGF0YQ=="
    assert task["status"]["healthy"] is True
    assert task["status"]["source"] == "SOURCE_MASTER"
    assert task["status"]["reason"] == "REASON_RECONCILIATION"
    # a reconciliation that changes the state still keeps them
    apply(st, log.status("t1", "TASK_LOST", reason="REASON_RECONCILIATION", source="SOURCE_MASTER"))
    assert st.entity("task", "fw/t1")["status"]["labels"] == {"k": "v"}
    assert st.entity("task", "fw/t1")["state"] == "TASK_LOST"


def test_removed_agent_failure_update_rescind_converge_in_any_order() -> None:
    log = Log()
    setup = [log.agent_added("a1"), log.offer("o1", "a1"), log.launched("t1", "a1"),
             log.status("t1", "TASK_RUNNING", uuid="u1")]
    tail = [log.agent_removed("a1"),
            log.status("t1", "TASK_LOST", uuid="u2", reason="REASON_AGENT_REMOVED",
                       source="SOURCE_MASTER"),
            log.offer_closed("rescinded", "o1")]
    results = []
    for order in itertools.permutations(tail):
        st, _ = fold(setup + list(order), cluster="c1")
        results.append(entities(st))
    assert all(r == results[0] for r in results)
    agent = results[0]["agent"]["a1"]
    assert agent["status"] == "removed"
    assert agent["allocated"] == {} and agent["offered"] == {}
    assert results[0]["offer"]["o1"]["status"] == "rescinded"
    assert results[0]["task"]["fw/t1"]["state"] == "TASK_LOST"


def test_master_failover_task_readded_is_not_duplicated() -> None:
    log = Log()
    st, _ = running_task(log)
    apply(st, log.ev("master.elected", {"master": {"id": "m2", "hostname": "m2", "ip": "1.1.1.2",
                                                   "port": 5050, "version": "1.11"},
                                        "previous_master_id": "m1"}))
    before = entities(st)["task"]
    anns = apply(st, log.added("t1", "a1", "TASK_RUNNING"))
    assert kinds(anns) == ["duplicate"]
    assert st.count("task") == 1
    assert entities(st)["task"] == before
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 0.5, "mem": 256.0}
    # re-announced in another state: one entity, one transition
    apply(st, log.added("t1", "a1", "TASK_KILLING"))
    assert st.count("task") == 1
    assert st.entity("task", "fw/t1")["state"] == "TASK_KILLING"
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 0.5, "mem": 256.0}
    cluster = st.entity("cluster", "c1")
    assert cluster["failover_count"] == 1
    assert [(f["from"], f["to"]) for f in cluster["failovers"]] == [("m1", "m2")]


def test_resource_accounting_allocated_and_offered_are_sums() -> None:
    log = Log()
    st, _ = fold([log.agent_added("a1", cpus=4, mem=4096), log.offer("o1", "a1", 0.1, 100),
                  log.offer("o2", "a1", 0.2, 200, role="k8s"), log.launched("t1", "a1", 0.1, 10),
                  log.launched("t2", "a1", 0.2, 20), log.launched("t3", "a1", 0.3, 30, role="k8s"),
                  log.status("t2", "TASK_FINISHED", uuid="x"), log.offer_closed("declined", "o1",
                                                                               reason="compat")],
                 cluster="c1")
    a = st.entity("agent", "a1")
    assert a["allocated"] == {"cpus": 0.4, "mem": 40.0}
    assert a["allocated_by_role"] == {"*": {"cpus": 0.1, "mem": 10.0}, "k8s": {"cpus": 0.3, "mem": 30.0}}
    assert a["offered"] == {"cpus": 0.2, "mem": 200.0}
    assert a["offered_by_role"] == {"k8s": {"cpus": 0.2, "mem": 200.0}}
    assert st.entity("role", "k8s")["allocated"] == {"cpus": 0.3, "mem": 30.0}
    assert st.entity("role", "k8s")["offered"] == {"cpus": 0.2, "mem": 200.0}
    assert st.entity("role", "*")["offered"] == {}
    assert st.entity("offer", "o1")["decline_reason"] == "compat"


def test_fixed_point_sums_do_not_drift() -> None:
    log = Log()
    evs = [log.agent_added("a1", cpus=100)]
    for i in range(30):
        evs.append(log.launched(f"t{i}", "a1", 0.1, 1))
    for i in range(29):
        evs.append(log.status(f"t{i}", "TASK_FINISHED", uuid=f"u{i}"))
    st, _ = fold(evs, cluster="c1")
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 0.1, "mem": 1.0}


def test_rc_observed_replicas_are_matching_running_pods() -> None:
    log = Log()
    st, _ = fold([log.rc("web", "fe", {"app": "fe"}),
                  log.pod("web", "p1", "u1", {"app": "fe"}, phase="Pending", ready=False),
                  log.pod("web", "p2", "u2", {"app": "fe"}),
                  log.pod("web", "p3", "u3", {"app": "be"}),
                  log.pod("other", "p4", "u4", {"app": "fe"})], cluster="c1")
    rc = st.entity("rc", "web/fe")
    assert (rc["observed_replicas"], rc["matching_not_running"]) == (1, 1)
    apply(st, log.pod("web", "p1", "u1", {"app": "fe"}))
    assert st.entity("rc", "web/fe")["observed_replicas"] == 2
    apply(st, log.pod("web", "p2", "u2", {"app": "xx"}))
    apply(st, log.pod_deleted("web", "p1", "u1"))
    assert st.entity("rc", "web/fe")["observed_replicas"] == 0
    apply(st, log.rc("web", "fe", {"app": "xx"}))  # selector change rescans
    assert st.entity("rc", "web/fe")["observed_replicas"] == 1


def test_derived_endpoints_are_ready_matching_pods_and_disagreement_is_annotated() -> None:
    log = Log()
    st, _ = fold([log.pod("web", "p1", "u1", {"app": "fe"}),
                  log.pod("web", "p2", "u2", {"app": "fe"}, ready=False),
                  log.pod("other", "p3", "u3", {"app": "fe"}),
                  log.service("web", "fe", {"app": "fe"})], cluster="c1")
    assert st.entity("service", "web/fe")["endpoints_derived"] == ["web/p1"]
    assert apply(st, log.endpoints("web", "fe", ["p1"])) == []
    anns = apply(st, log.endpoints("web", "fe", ["p1", "p2"]))
    assert kinds(anns) == ["invariant"] and "web/p2" in anns[0]["message"]
    assert st.entity("service", "web/fe")["endpoints_observed"]["addresses"][1]["pod"]["name"] == "p2"


def test_selector_index_finds_every_match_whatever_the_anchor() -> None:
    # Selectors are filed under their first pair (membership.sel_add); a pod
    # must still be counted by a selector whose anchor is not its only label,
    # after the selector changes (and with it the anchor), with an unhashable
    # (malformed) selector value, and after an RC is deleted and made again.
    log = Log()
    st, _ = fold([log.rc("web", "two", {"tier": "fe", "app": "x"}),
                  log.rc("web", "odd", {"app": ["x"]}),  # type: ignore[dict-item]
                  log.service("web", "fe", {"app": "x", "tier": "fe"}),
                  log.pod("web", "p1", "u1", {"app": "x", "tier": "fe"}),
                  log.pod("web", "p2", "u2", {"app": "x", "bad": ["v"]}),  # type: ignore[dict-item]
                  ], cluster="c1")
    assert st.entity("rc", "web/two")["observed_replicas"] == 1
    assert st.entity("rc", "web/odd")["observed_replicas"] == 0
    assert st.entity("service", "web/fe")["endpoints_derived"] == ["web/p1"]
    apply(st, log.rc("web", "two", {"app": "x"}))  # the anchor moves from tier to app
    apply(st, log.pod("web", "p3", "u3", {"app": "x"}))
    assert st.entity("rc", "web/two")["observed_replicas"] == 3
    apply(st, log.pod("web", "p1", "u1", {"tier": "fe"}))  # p1 leaves app=x
    assert st.entity("rc", "web/two")["observed_replicas"] == 2
    assert st.entity("service", "web/fe")["endpoints_derived"] == []
    apply(st, log.ev("replication_controller.deleted", {"namespace": "web", "name": "two"}))
    apply(st, log.pod_deleted("web", "p3", "u3"))
    apply(st, log.rc("web", "two", {"app": "x"}))
    assert st.entity("rc", "web/two")["observed_replicas"] == 1
    again = ClusterState.from_snapshot(st.to_snapshot())  # the index is rebuilt on load
    p4 = log.pod("web", "p4", "u4", {"app": "x"})
    apply(st, p4)
    apply(again, p4)
    assert again.to_snapshot() == st.to_snapshot()
    assert st.entity("rc", "web/two")["observed_replicas"] == 2


def test_shared_summaries_are_summarize_and_still_refuse_bad_resources() -> None:
    from kmevents.reducer.resources import Malformed, summarize, summarize_shared

    good = [{"name": "cpus", "role": "*", "scalar": 0.1, "ranges": None},
            {"name": "ports", "role": None, "scalar": None, "ranges": [[31000, 31004]]}]
    assert summarize_shared(good) == summarize(good) == {"*": {"cpus": 0.1, "ports": 5.0}}
    assert summarize_shared([dict(r) for r in good]) is summarize_shared(good)
    with pytest.raises(Malformed):
        summarize_shared(tuple(good))  # same JSON text as the cached list, still refused
    bad = [dict(good[0], scalar=-1.0)]
    for _ in range(2):
        with pytest.raises(Malformed):
            summarize_shared(bad)


def test_unknown_type_is_skipped_with_annotation() -> None:
    log = Log()
    st, _ = running_task(log)
    before = entities(st)
    anns = apply(st, log.ev("task.teleported", {"task_id": "t1"}), partition=3, offset=99)
    assert kinds(anns) == ["unknown_type"]
    assert (anns[0]["partition"], anns[0]["offset"]) == (3, 99)
    assert anns[0]["event_id"] == f"e{log.n}"
    assert entities(st) == before and st.position == (3, 99)


@pytest.mark.parametrize("payload", [
    {}, {"status": None}, {"status": {"task_id": 7, "state": "TASK_RUNNING"}},
    {"status": {"task_id": "t1", "state": "TASK_RUNNING", "uuid": ["x"]}},
])
def test_malformed_payload_changes_nothing(payload: dict) -> None:
    log = Log()
    st, _ = running_task(log)
    before = entities(st)
    anns = apply(st, log.ev("task.status_updated", payload))
    assert kinds(anns) == ["malformed"]
    assert entities(st) == before


def test_malformed_envelope_is_annotated() -> None:
    st = ClusterState.empty("c1")
    for bad in (None, [], {"type": "task.added"}, {"type": "x", "occurred_at": 5, "payload": {}}):
        assert kinds(apply(st, bad)) == ["malformed"]
    assert st.offset == 3


def test_offer_accepted_after_rescind_is_annotated() -> None:
    log = Log()
    st, _ = fold([log.agent_added("a1"), log.offer("o1", "a1"), log.offer_closed("rescinded", "o1")],
                 cluster="c1")
    anns = apply(st, log.offer_closed("accepted", "o1", task_ids=["t1"]))
    assert kinds(anns) == ["invariant"]
    assert st.entity("offer", "o1")["status"] == "rescinded"


def test_task_running_on_removed_agent_is_annotated() -> None:
    log = Log()
    st, _ = fold([log.agent_added("a1"), log.launched("t1", "a1"), log.agent_removed("a1")],
                 cluster="c1")
    anns = apply(st, log.status("t1", "TASK_RUNNING", uuid="u1"))
    assert kinds(anns) == ["invariant"] and "removed agent" in anns[0]["message"]


def test_allocated_over_total_is_annotated() -> None:
    log = Log()
    st, _ = fold([log.agent_added("a1", cpus=1.0)], cluster="c1")
    assert apply(st, log.launched("t1", "a1", cpus=0.6)) == []
    anns = apply(st, log.launched("t2", "a1", cpus=0.6))
    assert kinds(anns) == ["invariant"] and "over total" in anns[0]["message"]


def test_stale_status_after_killing_is_ignored() -> None:
    log = Log()
    st, _ = running_task(log, "TASK_KILLING")
    anns = apply(st, log.status("t1", "TASK_STARTING", uuid="late"))
    assert kinds(anns) == ["stale"]
    assert st.entity("task", "fw/t1")["state"] == "TASK_KILLING"


def test_unknown_task_state_is_kept_and_annotated() -> None:
    log = Log()
    st, _ = running_task(log)
    anns = apply(st, log.status("t1", "TASK_TELEPORTED", uuid="u9"))
    assert kinds(anns) == ["unknown_value"]
    assert st.entity("task", "fw/t1")["state"] == "TASK_TELEPORTED"
    assert st.entity("agent", "a1")["allocated"] == {}


def test_since_is_the_time_of_entering_the_current_condition() -> None:
    log = Log()
    st, _ = running_task(log)
    running_since = st.entity("task", "fw/t1")["since"]
    apply(st, log.status("t1", "TASK_RUNNING", uuid="health", healthy=False))
    assert st.entity("task", "fw/t1")["since"] == running_since
    fin = log.status("t1", "TASK_FINISHED", uuid="fin")
    apply(st, fin)
    assert st.entity("task", "fw/t1")["since"] == fin["occurred_at"]


def test_retention_prunes_oldest_terminal_and_reports_removal() -> None:
    log = Log()
    st = ClusterState.empty("c1", Retention(max_terminal_tasks=2))
    for e in [log.agent_added("a1")] + [log.launched(f"t{i}", "a1") for i in range(3)]:
        apply(st, e)
    st.take_dirty()
    for i in range(3):
        apply(st, log.status(f"t{i}", "TASK_FINISHED", uuid=f"u{i}"))
    dirty = st.take_dirty()
    assert ("task", "fw/t0") in dirty and st.entity("task", "fw/t0") is None
    assert st.entity("task", "fw/t1") is not None and list(st.terminal_ids("task")) == ["fw/t1", "fw/t2"]


@pytest.mark.parametrize("odd", [False, True])
def test_retention_prunes_in_a_fork_without_touching_the_parent(odd: bool) -> None:
    """Pruning removes the entity without reading it (retention._drop): a fork's parent keeps its
    value and the fork ends as the fold without a fork does. An odd task (its framework id holds a
    ``/``: its key's tail is not its task id, taskids.py) also leaves the task-id index."""
    log = Log()
    st = ClusterState.empty("c1", Retention(max_terminal_tasks=2))
    first = log.launched("t0", "a1")
    if odd:
        first["payload"]["task"]["framework_id"] = "fw/x"  # key "fw/x/t0", tail "x/t0"
    for e in [log.agent_added("a1"), first] + [log.launched(f"t{i}", "a1") for i in range(1, 4)]:
        apply(st, e)
    t0 = "fw/x/t0" if odd else "fw/t0"
    assert ("t0" in st._task_keys) is odd
    for i in range(2):
        apply(st, log.status(f"t{i}", "TASK_FINISHED", uuid=f"u{i}"))
    st.take_dirty()
    parent = st.to_snapshot()
    plain = ClusterState.from_snapshot(parent)
    fork = st.fork()
    for e in [log.status(f"t{i}", "TASK_FAILED", uuid=f"v{i}") for i in (2, 3)]:
        assert apply(fork, e) == apply(plain, e)
    dirty = plain.take_dirty()
    assert fork.take_dirty() == dirty and {("task", t0), ("task", "fw/t1")} <= dirty
    assert fork.entity("task", t0) is None and fork.entity("task", "fw/t1") is None and fork.task_ids("t0") == []
    assert st.entity("task", t0) is not None and st.to_snapshot() == parent  # the parent as it was
    assert ("t0" in st._task_keys) is odd and "t0" not in fork._task_keys
    assert fork.freeze().to_snapshot() == plain.to_snapshot()


def test_retention_by_age_uses_source_time() -> None:
    log = Log()
    st = ClusterState.empty("c1", Retention(max_age_seconds=1.0))
    evs = [log.agent_added("a1"), log.launched("t1", "a1"), log.status("t1", "TASK_FAILED", uuid="f")]
    for e in evs:
        apply(st, e)
    # events 1 ms apart (Log): 2000 more events is 2 s of source time, past the age check
    for i in range(2000):
        apply(st, log.ev("master.error", {"message": f"m{i}"}))
    assert st.entity("task", "fw/t1") is None


def test_take_dirty_reports_changed_created_and_deleted() -> None:
    log = Log()
    st, _ = fold([log.pod("web", "p1", "u1", {"app": "fe"}), log.rc("web", "fe", {"app": "fe"})],
                 cluster="c1")
    assert st.take_dirty() == {("pod", "web/p1"), ("rc", "web/fe")}
    assert st.take_dirty() == set()
    apply(st, log.ev("replication_controller.deleted", {"namespace": "web", "name": "fe"}))
    assert st.take_dirty() == {("rc", "web/fe")} and st.entity("rc", "web/fe") is None


def test_foreign_cluster_events_are_skipped() -> None:
    st = ClusterState.empty("c1")
    anns = apply(st, Log("c2").agent_added("a1"))
    assert kinds(anns) == ["foreign_cluster"] and st.entity("agent", "a1") is None


def test_k8sm_decline_after_offer_expiry_or_rescind_is_recorded_not_stale() -> None:
    from kmevents.reducer import ClusterState, apply

    def ev(n: int, type_: str, payload: dict) -> dict:
        return {"event_id": f"e{n}", "type": type_, "schema_version": 1, "cluster": "c1",
                "source": {"kind": "simulator", "stream_id": "s", "seq": n},
                "occurred_at": f"2026-01-01T00:00:{n:02d}.000000Z", "clock": "scheduler", "raw_type": "X",
                "actor": None, "correlation_id": None, "causation_id": None, "dedupe_key": f"k{n}",
                "redacted": [], "payload": payload}

    st = ClusterState.empty("c1")
    res = [{"name": "cpus", "role": "*", "scalar": 1.0, "ranges": None}]
    for i, oid in enumerate(("o1", "o2")):
        apply(st, ev(10 * i + 1, "offer.offered", {"offer": {"id": oid, "framework_id": "f", "agent_id": "a",
                                                             "hostname": "h", "resources": res}}))
    apply(st, ev(2, "offer.expired", {"offer_id": "o1"}))
    anns = apply(st, ev(3, "offer.declined", {"offer_id": "o1", "reason": "expired", "refuse_seconds": 5.0}))
    assert anns == []
    assert st.entity("offer", "o1")["status"] == "expired"
    assert st.entity("offer", "o1")["decline_reason"] == "expired"
    apply(st, ev(12, "offer.rescinded", {"offer_id": "o2"}))
    assert apply(st, ev(13, "offer.declined", {"offer_id": "o2", "reason": "rescinded", "refuse_seconds": None})) == []
    # A decline with another reason after expiry is still a stale event.
    anns = apply(st, ev(14, "offer.declined", {"offer_id": "o1", "reason": "compat", "refuse_seconds": None}))
    assert [a["kind"] for a in anns] == ["stale"]


def test_an_amount_beyond_fixed_point_range_is_malformed_and_totals_stay_finite() -> None:
    # 1e306 cpus once snapped to inf // 1.0 = nan: JSON wrote it as null and a restored
    # state could no longer add to it, stalling the partition (issue 14, C2).
    import math

    import orjson

    from kmevents.reducer.resources import MAX_AMOUNT

    log = Log()
    st, _ = fold([log.agent_added("a1")], cluster="c1")
    anns = apply(st, log.offer("o1", "a1", 1e306, 100))
    assert kinds(anns) == ["malformed"]
    assert st.entity("offer", "o1") is None
    apply(st, log.offer("o2", "a1", MAX_AMOUNT, 100))
    agent = st.entity("agent", "a1")
    assert agent["offered"]["cpus"] == MAX_AMOUNT
    assert all(math.isfinite(v) for v in agent["offered"].values())
    assert b"null" not in orjson.dumps(agent["offered"])
    again = ClusterState.from_snapshot(st.to_snapshot())
    apply(again, log.offer("o3", "a1", 1.0, 1))
    assert again.entity("agent", "a1")["offered"]["cpus"] == MAX_AMOUNT + 1.0


def test_the_contract_and_the_fold_bound_scalars_alike() -> None:
    from kmevents.contract.shapes import MAX_SCALAR
    from kmevents.reducer.resources import MAX_AMOUNT

    assert MAX_SCALAR == MAX_AMOUNT


def test_one_event_dated_far_ahead_does_not_age_out_terminal_entities() -> None:
    # Issue 14 H3: one accepted event dated 9999-12-31 moved the newest time seen for good,
    # and the next age check dropped every terminal entity.
    log = Log()
    st = ClusterState.empty("c1", Retention(max_age_seconds=3600.0))
    for e in [log.agent_added("a1"), log.launched("t1", "a1"), log.status("t1", "TASK_FAILED", uuid="f")]:
        apply(st, e)
    outlier = log.ev("master.error", {"message": "clock set to the end of time"})
    outlier["occurred_at"] = "9999-12-31T23:59:59.000000Z"
    apply(st, outlier)
    for i in range(3000):  # 3 s of source time: three age checks
        apply(st, log.ev("master.error", {"message": f"m{i}"}))
    assert st.entity("task", "fw/t1") is not None
    assert st.watermark < "2100", st.watermark
    assert st.max_occurred_at.startswith("9999"), "the newest time seen is still reported as it is"


def test_a_majority_of_late_times_moves_the_watermark() -> None:
    log = Log()
    st = ClusterState.empty("c1", Retention(max_age_seconds=3600.0))
    for e in [log.agent_added("a1"), log.launched("t1", "a1"), log.status("t1", "TASK_FAILED", uuid="f")]:
        apply(st, e)
    for i in range(1100):  # a source whose clock really moved on: two days later, for good
        ev = log.ev("master.error", {"message": f"m{i}"})
        ev["occurred_at"] = "2024-05-03T00:00:00.000000Z"
        apply(st, ev)
    assert st.entity("task", "fw/t1") is None


def test_a_task_id_is_unique_only_within_its_framework() -> None:
    # Issue 16: two frameworks launching "t1" are two tasks (the reducer kept one).
    log = Log()
    a = log.launched("t1", "a1")
    b = log.launched("t1", "a1")
    b["payload"]["task"]["framework_id"] = "other"
    st, anns = fold([log.agent_added("a1", cpus=8), a, b], cluster="c1")
    assert {i for i, _ in st.entities("task")} == {"fw/t1", "other/t1"}
    assert st.entity("agent", "a1")["allocated"] == {"cpus": 1.0, "mem": 512.0}
    assert st.task_ids("t1") == ["fw/t1", "other/t1"]
    # an update that names its framework lands on that task
    up = log.status("t1", "TASK_RUNNING", uuid="u1")
    up["payload"]["framework_id"] = "other"
    apply(st, up)
    assert st.entity("task", "other/t1")["state"] == "TASK_RUNNING"
    assert st.entity("task", "fw/t1")["state"] == "TASK_STAGING"
    # one that does not is ambiguous: annotated, nothing changed
    anns = apply(st, log.status("t1", "TASK_FAILED", uuid="u2"))
    assert kinds(anns) == ["ambiguous_entity"]
    assert st.entity("task", "fw/t1")["state"] == "TASK_STAGING"


def test_a_task_first_seen_without_its_framework_takes_its_full_id_when_the_framework_is_known() -> None:
    log = Log()
    st, anns = fold([log.agent_added("a1"), log.status("t1", "TASK_RUNNING", uuid="u1")], cluster="c1")
    assert kinds(anns) == ["unknown_entity"] and st.entity("task", "-/t1") is not None
    st.take_dirty()
    apply(st, log.launched("t1", "a1"))
    assert st.entity("task", "-/t1") is None
    task = st.entity("task", "fw/t1")
    assert task["framework_id"] == "fw" and task["task_id"] == "t1" and task["state"] == "TASK_RUNNING"
    assert {("task", "-/t1"), ("task", "fw/t1")} <= st.take_dirty(), "etcd drops the old key, writes the new"
    again = ClusterState.from_snapshot(st.to_snapshot())
    assert again.task_ids("t1") == ["fw/t1"]


def test_a_pods_containers_keep_the_catalogue_shape_whatever_the_event_adds() -> None:
    # pod_upserted keeps an event's container as it is when it already has the entity's
    # shape (issue 17: a copy per container per upsert); any other is rebuilt to that shape
    log = Log()
    ev = log.pod("web", "p1", "u1", {"app": "fe"})
    plain = {"name": "a", "image": "a:1", "ready": True, "restart_count": 0, "last_termination": None}
    extra = {"name": "b", "image": "b:1", "ready": True, "restart_count": 2, "last_termination": None,
             "started_at": "2024-05-01T00:00:00Z"}
    ended = {"name": "c", "image": "c:1", "ready": False, "restart_count": 1,
             "last_termination": {"reason": "OOMKilled", "exit_code": 137, "signal": 9}}
    ev["payload"]["pod"]["containers"] = [plain, extra, ended]
    st, anns = fold([ev], cluster=log.cluster)
    assert anns == []
    assert st.entity("pod", "web/p1")["containers"] == [  # type: ignore[index]
        plain,
        {"name": "b", "image": "b:1", "ready": True, "restart_count": 2, "last_termination": None},
        {"name": "c", "image": "c:1", "ready": False, "restart_count": 1,
         "last_termination": {"reason": "OOMKilled", "exit_code": 137}},
    ]
    bad = log.pod("web", "p2", "u2", {"app": "fe"})
    bad["payload"]["pod"]["containers"] = [dict(plain, last_termination="OOMKilled")]
    st, anns = fold([bad], cluster=log.cluster)
    assert kinds(anns) == ["malformed"] and "container.last_termination must be an object" in anns[0]["message"]
    assert st.entity("pod", "web/p2") is None


@pytest.mark.parametrize("limit", [2, 10**9])  # a plain dict, and an OrderedDict past PLAIN_UP_TO (retention.new_index)
def test_a_forks_retention_order_is_its_own_copy_of_the_parents(limit: int) -> None:
    """A fork copies a retention order the first time its fold reads it (fork._copy_order: the
    order's own copy, its values being times): the fork's marks and prunes leave the parent's
    order as it was, and the copy keeps the order's type and sequence."""
    log = Log()
    st = ClusterState.empty("c1", Retention(max_terminal_tasks=limit))
    for e in [log.agent_added("a1")] + [log.launched(f"t{i}", "a1") for i in range(4)]:
        apply(st, e)
    apply(st, log.status("t0", "TASK_FINISHED", uuid="u0"))
    before = dict(st._terminal["task"])
    kind = type(st._terminal["task"])
    fork = st.fork()
    for i in (1, 2, 3):
        apply(fork, log.status(f"t{i}", "TASK_FINISHED", uuid=f"u{i}"))
    mine = fork._terminal["task"]
    assert type(mine) is kind and mine is not st._terminal["task"]
    assert list(mine) == (["fw/t2", "fw/t3"] if limit == 2 else ["fw/t0", "fw/t1", "fw/t2", "fw/t3"])
    assert dict(st._terminal["task"]) == before and list(st.terminal_ids("task")) == ["fw/t0"]
