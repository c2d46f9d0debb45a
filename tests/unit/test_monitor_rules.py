"""The alert rules, over hand-built event streams and states (no broker, no clock)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.monitor.rules import RuleEngine, is_catching_up
from kmevents.settings import MonitorSettings
from kmevents.timespec import iso_of_micros, micros_of

T0 = micros_of("2026-01-01T00:00:00.000000Z")


def at(seconds: float) -> str:
    return iso_of_micros(T0 + int(seconds * 1_000_000))


def ms(seconds: float) -> int:
    return (T0 + int(seconds * 1_000_000)) // 1000


def ev(typ: str, t: float, payload: dict[str, Any], stream: str = "c/mesos") -> dict[str, Any]:
    return {"type": typ, "occurred_at": at(t), "payload": payload, "source": {"stream_id": stream}}


def lost(t: float, agent: str = "S1", state: str = "TASK_LOST") -> dict[str, Any]:
    return ev("task.status_updated", t, {"status": {"state": state, "agent_id": agent, "task_id": f"t{t}"}})


def evicted(t: float) -> dict[str, Any]:
    return ev("pod.evicted", t, {"pod": {"namespace": "prod", "name": f"p{t}"}, "reason": "Evicted"}, "c/k8s")


class FakeState:
    def __init__(self, **tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables

    def entities(self, kind: str) -> Any:
        return self.tables.get(kind, {}).items()

    def entity(self, kind: str, id: str) -> Any:
        return self.tables.get(kind, {}).get(id)

    def condition_counts(self, kind: str) -> Any:
        from collections import Counter

        from kmevents.reducer.conditions import condition

        return Counter(condition(v) for _, v in self.entities(kind))


def engine(**kw: Any) -> RuleEngine:
    return RuleEngine("c", MonitorSettings(**kw))


def rules_of(alerts: list[Any], status: str = "firing") -> set[tuple[str, str]]:
    return {(a.rule, a.key) for a in alerts if a.status == status}


def test_lost_tasks_on_one_agent_within_a_window_fire_a_spike_for_that_agent() -> None:
    e = engine(task_lost_per_agent=3, window_seconds=60)
    for t in (0, 10, 20):
        e.observe(lost(t, "S1"))
    e.observe(lost(25, "S2", "TASK_UNREACHABLE"))
    out = e.evaluate(None, now_ms=ms(30))
    assert rules_of(out) == {("task_lost_spike", "S1")}
    assert out[0].evidence_from == at(0) and out[0].evidence_to == at(20) and out[0].value == 3


def test_the_same_losses_spread_over_more_than_a_window_do_not_fire() -> None:
    e = engine(task_lost_per_agent=3, window_seconds=60)
    for t in (0, 40, 80, 120):
        e.observe(lost(t))
    assert e.evaluate(None, now_ms=ms(121)) == []


def test_windows_use_source_time_not_arrival_order_or_log_time() -> None:
    # Ten evictions logged in one burst but spread over ten minutes of source time: no storm.
    e = engine(evictions_per_window=5, window_seconds=60)
    for t in range(0, 600, 60):
        e.observe(evicted(t), recorded_ms=ms(700))
    assert e.evaluate(None, now_ms=ms(700)) == []


@settings(max_examples=60, deadline=None)
@given(times=st.lists(st.integers(0, 300), min_size=1, max_size=30), seed=st.integers(0, 2**16))
def test_a_storm_fires_exactly_when_the_last_window_of_source_time_holds_enough_evictions(
        times: list[int], seed: int) -> None:
    order = list(times)
    random.Random(seed).shuffle(order)
    e = engine(evictions_per_window=4, window_seconds=60)
    for t in order:
        e.observe(evicted(t))
    wm = max(times)
    in_window = sum(1 for t in times if t >= wm - 60)
    fired = ("eviction_storm", "cluster") in rules_of(e.evaluate(None, now_ms=ms(wm)))
    assert fired == (in_window >= 4)


def test_nothing_fires_while_catching_up_and_an_old_storm_stays_silent_after() -> None:
    e = engine(evictions_per_window=3, window_seconds=60, rc_below_seconds=30)
    state = FakeState(rc={"prod/web": {"replicas": 3, "observed_replicas": 1}})
    # Backlog: a storm at t=100..110 read an hour later.
    for t in (100, 105, 110):
        e.observe(evicted(t), recorded_ms=ms(110))
    assert e.evaluate(state, now_ms=ms(3700), catching_up=True) == []
    assert e.held_back >= 1
    e.observe(ev("pod.upserted", 3600, {}, "c/k8s"), recorded_ms=ms(3600))
    out = e.evaluate(state, now_ms=ms(3600))
    # Caught up: the storm left the window; the RC still below its replicas fires, with its duration.
    assert rules_of(out) == {("rc_below_desired", "prod/web")}
    assert out[0].value >= 30


def test_an_alert_resolves_when_its_condition_ends_and_keeps_its_start() -> None:
    e = engine(task_lost_per_agent=2, window_seconds=60)
    e.observe(lost(0))
    e.observe(lost(5))
    first = e.evaluate(None, now_ms=ms(6))
    assert rules_of(first) == {("task_lost_spike", "S1")}
    e.observe(lost(10))
    assert e.evaluate(None, now_ms=ms(11)) == []  # still firing: no new transition
    e.observe(ev("pod.upserted", 200, {}))
    out = e.evaluate(None, now_ms=ms(201))
    assert rules_of(out, "resolved") == {("task_lost_spike", "S1")}
    assert out[0].started_at == at(0) and out[0].ended_at == at(200)


def test_an_alert_carries_the_age_of_the_events_behind_it() -> None:
    e = engine(task_lost_per_agent=1)
    e.observe(lost(10))
    (a,) = e.evaluate(None, now_ms=ms(25))
    d = a.as_dict(ms(25), "https://runbooks/")
    assert d["events_age_seconds"] == 15.0 and d["oldest_event_age_seconds"] == 15.0
    assert d["runbook"] == "https://runbooks/task_lost_spike" and d["severity"] == "critical"
    assert d["grouping_key"] == "c/task_lost_spike"


def test_master_failover_and_scheduler_leadership_change_fire_for_one_window() -> None:
    e = engine(window_seconds=60)
    e.observe(ev("master.elected", 0, {"master": {"id": "m1"}, "previous_master_id": None}))
    assert e.evaluate(None, now_ms=ms(1)) == []  # the first election is not a failover
    e.observe(ev("master.elected", 10, {"master": {"id": "m2", "hostname": "master-2"}, "previous_master_id": "m1"}))
    e.observe(ev("scheduler.leader_elected", 12, {"identity": "k8sm-2", "previous": "k8sm-1"}, "c/k8sm"))
    assert rules_of(e.evaluate(None, now_ms=ms(13))) == {("master_failover", "master"),
                                                         ("scheduler_leader_change", "k8sm")}
    e.observe(ev("pod.upserted", 100, {}))
    assert rules_of(e.evaluate(None, now_ms=ms(101)), "resolved") == {("master_failover", "master"),
                                                                      ("scheduler_leader_change", "k8sm")}


def test_flapping_agents_fire_per_agent() -> None:
    e = engine(agent_flaps_per_window=3)
    for i, typ in enumerate(("agent.removed", "agent.reregistered", "agent.removed")):
        payload = {"agent_id": "S7"} if typ == "agent.removed" else {"agent": {"id": "S7"}}
        e.observe(ev(typ, i * 5, payload))
    assert rules_of(e.evaluate(None, now_ms=ms(20))) == {("agent_flapping", "S7")}


def _svc(derived: list[str], observed: list[str]) -> dict[str, Any]:
    return {"selector": {"app": "web"}, "endpoints_derived": derived,
            "endpoints_observed": {"addresses": [{"pod": {"namespace": "prod", "name": n.split("/")[1]}}
                                                 for n in observed]}}


def test_services_without_endpoints_or_with_endpoints_other_than_the_ready_pods() -> None:
    e = engine(service_mismatch_seconds=10)
    state = FakeState(service={"prod/a": _svc(["prod/p1"], []), "prod/b": _svc(["prod/p1", "prod/p2"], ["prod/p1"]),
                               "prod/ok": _svc(["prod/p1"], ["prod/p1"])})
    e.observe(ev("pod.upserted", 0, {}))
    assert e.evaluate(state, now_ms=ms(0)) == []  # not long enough yet
    e.observe(ev("pod.upserted", 15, {}))
    assert rules_of(e.evaluate(state, now_ms=ms(15))) == {("service_without_endpoints", "prod/a"),
                                                          ("service_endpoints_mismatch", "prod/b")}


def _pod(node: str, vol: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {"phase": phase, "volumes": [dict(vol, node=node)], "node_name": node}


def test_a_read_write_volume_on_two_nodes_fires_but_read_only_or_one_node_does_not() -> None:
    rbd = {"kind": "rbd", "source": {"pool": "kube", "image": "mysql", "readOnly": False}}
    gce_ro = {"kind": "gcePersistentDisk", "source": {"pdName": "reports", "readOnly": True}}
    state = FakeState(pod={"db/a": _pod("n1", rbd), "db/b": _pod("n2", rbd), "db/c": _pod("n3", rbd, "Failed"),
                           "bi/x": _pod("n1", gce_ro), "bi/y": _pod("n2", gce_ro)})
    e = engine()
    e.observe(ev("pod.upserted", 0, {}))
    out = e.evaluate(state, now_ms=ms(0))
    assert rules_of(out) == {("volume_multi_attach", "rbd:kube/mysql")}
    assert "n1 (db/a)" in out[0].summary and "n2 (db/b)" in out[0].summary


def test_kube_system_components_without_a_running_pod() -> None:
    state = FakeState(pod={"kube-system/kube-dns-v9-a": {"phase": "Failed"},
                           "kube-system/kube-ui-v4-b": {"phase": "Running"}},
                      rc={"kube-system/kube-dns-v9": {"replicas": 1, "observed_replicas": 0}})
    e = engine(rc_below_seconds=1000)
    e.observe(ev("pod.upserted", 0, {}))
    assert rules_of(e.evaluate(state, now_ms=ms(0))) == {("kube_system_down", "kube-dns")}


def test_a_deleted_or_evicted_pod_whose_last_phase_was_running_does_not_keep_a_component_up() -> None:
    state = FakeState(pod={"kube-system/kube-dns-v9-a": {"phase": "Running", "deleted": {"reason": "task-lost"}},
                           "kube-system/kube-ui-v4-b": {"phase": "Running", "evicted": {"reason": "node_pressure"}},
                           "kube-system/kube-ui-v4-c": {"phase": "Running", "evicted": None, "deleted": None}})
    e = engine(rc_below_seconds=1000)
    e.observe(ev("pod.upserted", 0, {}))
    assert rules_of(e.evaluate(state, now_ms=ms(0))) == {("kube_system_down", "kube-dns")}


def test_offer_starvation_needs_long_pending_pods_and_no_offers_or_many_declines() -> None:
    pending = {"prod/p": {"phase": "Pending", "binding_host": None, "created_at": at(0)}}
    with_offer = FakeState(pod=pending, offer={"o1": {"status": "outstanding"}})
    without = FakeState(pod=pending, offer={"o1": {"status": "declined"}})
    e = engine(pending_pod_seconds=60, offer_declines_per_window=3)
    e.observe(ev("pod.upserted", 90, {}))
    assert e.evaluate(with_offer, now_ms=ms(90)) == []
    assert rules_of(e.evaluate(without, now_ms=ms(90))) == {("offer_starvation", "cluster")}
    e2 = engine(pending_pod_seconds=60, offer_declines_per_window=3)
    for t in (70, 75, 80):
        e2.observe(ev("offer.declined", t, {"offer_id": f"o{t}", "reason": "compat"}))
    e2.observe(ev("pod.upserted", 90, {}))
    assert rules_of(e2.evaluate(with_offer, now_ms=ms(90))) == {("offer_starvation", "cluster")}


def test_pipeline_rules_lag_dead_letters_and_a_silent_source_use_wall_time() -> None:
    e = engine(processor_lag=100, silent_seconds=60, window_seconds=60)
    e.observe(ev("pod.upserted", 0, {}, "c/k8s"), recorded_ms=ms(0))
    e.observe(ev("pod.upserted", 50, {}, "c/mesos"), recorded_ms=ms(50))
    out = e.evaluate(None, now_ms=ms(70), lag={0: 5, 1: 500}, dead_letters=2)
    assert rules_of(out) == {("processor_lag", "partition 1"), ("source_silent", "c/k8s")}
    out = e.evaluate(None, now_ms=ms(80), lag={}, dead_letters=5)
    assert ("dead_letters", "deadletter") in rules_of(out)
    assert ("processor_lag", "partition 1") in rules_of(out, "resolved")


def test_catching_up_is_decided_by_records_behind_or_old_log_times() -> None:
    t = MonitorSettings(backlog_records=100, backlog_seconds=60)
    assert is_catching_up(behind_records=101, last_recorded_ms=ms(0), now_ms=ms(1), t=t)
    assert is_catching_up(behind_records=0, last_recorded_ms=ms(0), now_ms=ms(61), t=t)
    assert not is_catching_up(behind_records=10, last_recorded_ms=ms(0), now_ms=ms(30), t=t)


class _PackedPods(FakeState):
    """A state whose pods rest in a packed table, as the fold's do (``RuleEngine._pods`` then
    remembers what it found in each stored value)."""

    def __init__(self, pods: dict[str, dict[str, Any]], **tables: dict[str, Any]) -> None:
        from kmevents.reducer.packed import PackedTable

        super().__init__(**tables)
        self.pods = PackedTable(pods)

    def entities(self, kind: str) -> Any:
        return self.pods.items() if kind == "pod" else super().entities(kind)


_RBD = {"kind": "rbd", "source": {"pool": "kube", "image": "mysql"}}
_POD_SHAPES = [
    {"phase": "Running"},
    {"phase": "Running", "volumes": [dict(_RBD, node="n1")], "node_name": "n1"},
    {"phase": "Running", "volumes": [dict(_RBD, node="n2")], "node_name": "n2"},
    {"phase": "Failed", "volumes": [dict(_RBD, node="n3")], "node_name": "n3"},
    {"phase": "Running", "volumes": [dict(_RBD, node="n3")], "node_name": "n3", "deleted": {"reason": "x"}},
    {"phase": "Pending", "binding_host": None, "created_at": at(0)},
    {"phase": "Pending", "binding_host": "n1", "created_at": at(0)},
    {"phase": "Succeeded"},
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["prod/a", "prod/b", "prod/c", "kube-system/kube-dns-v9-x",
                                           "kube-system/kube-ui-v4-y"]),
                          st.one_of(st.none(), st.integers(0, len(_POD_SHAPES) - 1)), st.booleans(), st.booleans(),
                          st.booleans()),
                min_size=1, max_size=40))
def test_rules_on_a_packed_table_fire_as_on_plain_values_while_pods_change(
        steps: list[tuple[str, int | None, bool, bool, bool]]) -> None:
    """Pods change (a hot one in place, too), go, come back, rest packed or stay hot between
    evaluations: an engine that remembers what it found in unchanged stored values, and one told
    of every change (``track_pods``, a report's), fire and resolve exactly what an engine reading
    every pod's plain value does."""
    from kmevents.reducer.packed import pack

    plain: dict[str, dict[str, Any]] = {}
    packed = _PackedPods({}, offer={"o1": {"status": "declined"}})
    tracked = _PackedPods({}, offer={"o1": {"status": "declined"}})
    mine, ref, told = engine(pending_pod_seconds=60), engine(pending_pod_seconds=60), engine(pending_pod_seconds=60)
    told.track_pods()
    for i, (pid, shape, rest, evaluate, in_place) in enumerate(steps):
        for table in (packed.pods, tracked.pods):
            if shape is None:
                table.pop(pid, None)
                continue
            hot = dict.get(table, pid)
            if in_place and type(hot) is dict:  # the fold changes a hot value in place
                hot.clear()
                hot.update(_POD_SHAPES[shape])
            else:
                table[pid] = dict(_POD_SHAPES[shape])
        if shape is None:
            plain.pop(pid, None)
        else:
            plain[pid] = dict(_POD_SHAPES[shape])
        told.pod_changed(pid)
        if rest:
            pack(packed.pods)
            pack(tracked.pods)
        for e in (mine, ref, told):
            e.observe(ev("pod.upserted", 30 * i, {}))
        if evaluate:
            got = mine.evaluate(packed, now_ms=ms(30 * i))
            got_told = told.evaluate(tracked, now_ms=ms(30 * i))
            want = ref.evaluate(FakeState(pod={k: dict(v) for k, v in plain.items()},
                                          offer={"o1": {"status": "declined"}}), now_ms=ms(30 * i))
            assert [(a.rule, a.key, a.status, a.summary) for a in got] == \
                [(a.rule, a.key, a.status, a.summary) for a in want]
            assert [(a.rule, a.key, a.status, a.summary) for a in got_told] == \
                [(a.rule, a.key, a.status, a.summary) for a in want]


class _PackedServices(FakeState):
    def __init__(self, services: dict[str, dict[str, Any]]) -> None:
        from kmevents.reducer.packed import PackedTable

        super().__init__()
        self.services = PackedTable(services)

    def entities(self, kind: str) -> Any:
        return self.services.items() if kind == "service" else super().entities(kind)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["prod/a", "prod/b", "kube-system/dns"]),
                          st.one_of(st.none(), st.tuples(st.sets(st.sampled_from(["prod/p1", "prod/p2", "prod/p3"])),
                                                         st.sets(st.sampled_from(["prod/p1", "prod/p2"])))),
                          st.booleans(), st.booleans()),
                min_size=1, max_size=30))
def test_endpoint_rules_on_packed_services_fire_as_on_plain_values_while_services_change(
        steps: list[tuple[str, tuple[set[str], set[str]] | None, bool, bool]]) -> None:
    """Services change, go, come back, rest packed or stay hot: an engine that remembers the
    verdict of unchanged stored values fires and resolves what one reading every plain value does."""
    from kmevents.reducer.packed import pack

    plain: dict[str, dict[str, Any]] = {}
    packed = _PackedServices({})
    mine, ref = engine(service_mismatch_seconds=10), engine(service_mismatch_seconds=10)
    for i, (sid, eps, rest, evaluate) in enumerate(steps):
        if eps is None:
            plain.pop(sid, None)
            packed.services.pop(sid, None)
        else:
            plain[sid] = _svc(sorted(eps[0]), sorted(eps[1]))
            packed.services[sid] = _svc(sorted(eps[0]), sorted(eps[1]))
        if rest:
            pack(packed.services)
        for e in (mine, ref):
            e.observe(ev("pod.upserted", 7 * i, {}))
        if evaluate:
            got = mine.evaluate(packed, now_ms=ms(7 * i))
            want = ref.evaluate(FakeState(service={k: dict(v) for k, v in plain.items()}), now_ms=ms(7 * i))
            assert [(a.rule, a.key, a.status, a.summary) for a in got] == \
                [(a.rule, a.key, a.status, a.summary) for a in want]
