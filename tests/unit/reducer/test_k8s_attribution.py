"""The fold's side of the audit: a pod delete or eviction named by namespace/name only is
resolved against the pod held under that name (annotated when there is none, or when it names
an earlier pod of that name), and ``k8s_write.recorded`` joins who wrote to the entity written."""

from __future__ import annotations

from typing import Any

from kmevents.reducer import ClusterState, apply
from kmevents.reducer.handlers_k8s import MAX_WRITERS
from tests.unit.reducer.streams import Log

Event = dict[str, Any]
ALICE = {"kind": "user", "name": "alice"}


def by_name(ns: str, name: str) -> dict[str, Any]:
    return {"namespace": ns, "name": name, "uid": None}


def audited(log: Log, ev: Event, actor: dict[str, str] | None = ALICE) -> Event:
    ev["actor"] = actor
    ev["clock"] = "apiserver"
    return ev


def write(log: Log, resource: str, name: str | None, *, verb: str = "delete", ns: str | None = "web",
          sub: str | None = None, audit_id: str | None = None, uid: str | None = None,
          actor: dict[str, str] | None = ALICE, **extra: Any) -> Event:
    pl = {"audit_id": audit_id or f"a-{log.n + 1}", "verb": verb, "resource": resource, "subresource": sub,
          "namespace": ns, "name": name, "uid": uid, "user": "ops", "impersonated_user": "alice",
          "code": 200, "level": "Metadata", "replicas": None, "target": None, **extra}
    return audited(log, log.ev("k8s_write.recorded", pl), actor)


def fold_all(events: list[Event]) -> tuple[ClusterState, list[dict[str, Any]]]:
    st = ClusterState.empty("c1")
    anns: list[dict[str, Any]] = []
    for e in events:
        anns += apply(st, e)
    return st, anns


def test_a_delete_named_by_namespace_and_name_resolves_the_pod_held_under_it() -> None:
    log = Log()
    st, anns = fold_all([
        log.pod("web", "web-0", "u1", {"app": "web"}),
        audited(log, log.ev("pod.deleted", {"pod": by_name("web", "web-0"), "reason": "deleted through the API"})),
    ])
    assert anns == []
    assert st.pods["web/web-0"]["deleted"]["actor"] == ALICE
    assert st.pods["web/web-0"]["uid"] == "u1"


def test_an_eviction_named_by_namespace_and_name_resolves_the_pod_held_under_it() -> None:
    log = Log()
    st, anns = fold_all([
        log.pod("web", "web-0", "u1", {"app": "web"}),
        audited(log, log.ev("pod.evicted", {"pod": by_name("web", "web-0"), "kind": "api", "reason": "Evicted",
                                            "message": None})),
    ])
    assert anns == [] and st.pods["web/web-0"]["evicted"]["kind"] == "api"


def test_a_delete_named_by_name_for_a_pod_never_seen_is_annotated_not_dropped() -> None:
    log = Log()
    st, anns = fold_all([audited(log, log.ev("pod.deleted", {"pod": by_name("web", "ghost"), "reason": None}))])
    assert [(a["kind"], a["entity"], a["message"]) for a in anns] == [
        ("unknown_entity", {"kind": "pod", "id": "web/ghost"},
         "pod.deleted for a pod not in state (named by namespace/name only)")]
    assert "web/ghost" not in st.pods


def test_a_late_delete_named_by_name_does_not_touch_a_newer_pod_of_that_name() -> None:
    log = Log()
    old_delete = audited(log, log.ev("pod.deleted", {"pod": by_name("web", "web-0"), "reason": None}))
    old_delete["occurred_at"] = "2024-04-30T23:59:58.000000Z"  # two seconds before the new pod
    st, anns = fold_all([log.pod("web", "web-0", "u2", {"app": "web"}), old_delete])
    assert [a["kind"] for a in anns] == ["stale"] and "created later" in anns[0]["message"]
    assert st.pods["web/web-0"]["deleted"] is None


def test_a_delete_stamped_in_whole_seconds_resolves_a_pod_created_within_that_second() -> None:
    log = Log()
    created = log.pod("web", "web-0", "u1", {"app": "web"})
    created["occurred_at"] = "2017-09-05T10:00:00.700000Z"  # the watch saw it at .7
    delete = audited(log, log.ev("pod.deleted", {"pod": by_name("web", "web-0"), "reason": None}))
    delete["occurred_at"] = "2017-09-05T10:00:00.000000Z"  # a 1.8 record: `timestamp`, whole seconds
    st, anns = fold_all([created, delete])
    assert anns == [] and st.pods["web/web-0"]["deleted"]["actor"] == ALICE


def test_a_write_joins_the_actor_the_watchs_delete_did_not_know() -> None:
    log = Log()
    st, anns = fold_all([
        log.pod("web", "web-0", "u1", {"app": "web"}),
        log.pod_deleted("web", "web-0", "u1"),  # the watch's DELETED: no actor
        write(log, "pods", "web-0"),
    ])
    pod = st.pods["web/web-0"]
    assert anns == [] and pod["deleted"]["actor"] == ALICE
    assert [(w["verb"], w["user"], w["impersonated_user"], w["actor"]) for w in pod["writers"]] == [
        ("delete", "ops", "alice", ALICE)]


def test_a_write_keeps_an_actor_already_known() -> None:
    log = Log()
    st, _ = fold_all([
        log.pod("web", "web-0", "u1", {"app": "web"}),
        audited(log, log.ev("pod.deleted", {"pod": by_name("web", "web-0"), "reason": None})),
        write(log, "pods", "web-0", actor={"kind": "node", "name": "10.0.0.1"}),  # the kubelet's final delete
    ])
    assert st.pods["web/web-0"]["deleted"]["actor"] == ALICE


def test_writers_are_bounded_newest_last() -> None:
    log = Log()
    events = [log.rc("web", "frontend", {"app": "web"})]
    events += [write(log, "replicationcontrollers", "frontend", verb="update", sub="scale", replicas=i)
               for i in range(MAX_WRITERS + 3)]
    st, anns = fold_all(events)
    assert anns == []
    assert [w["replicas"] for w in st.rcs["web/frontend"]["writers"]] == list(range(3, MAX_WRITERS + 3))


def test_a_write_attributed_twice_is_a_duplicate() -> None:
    log = Log()
    first = write(log, "replicationcontrollers", "frontend", verb="update", audit_id="a-7")
    again = {**first, "dedupe_key": "another key: the dedupe window has forgotten the first"}
    st, anns = fold_all([log.rc("web", "frontend", {"app": "web"}), first, again])
    assert [a["kind"] for a in anns] == ["duplicate"] and len(st.rcs["web/frontend"]["writers"]) == 1


def test_writes_join_services_endpoints_namespaces_and_nodes() -> None:
    log = Log()
    st, anns = fold_all([
        log.service("web", "frontend", {"app": "web"}),
        log.ev("namespace.upserted", {"namespace": {"name": "web", "phase": "Active", "labels": {}}}),
        log.ev("node.upserted", {"node": {"name": "n1", "ready": True}}),
        write(log, "endpoints", "frontend", verb="update"),
        write(log, "namespaces", "web", ns=None, verb="patch"),
        write(log, "nodes", "n1", ns=None, verb="patch"),
        write(log, "pods", "web-0", sub="binding", verb="create", target="n1"),  # no such pod: nothing to join
    ])
    assert anns == []
    assert [w["resource"] for w in st.services["web/frontend"]["writers"]] == ["endpoints"]
    assert len(st.namespaces["web"]["writers"]) == len(st.nodes["n1"]["writers"]) == 1


def test_a_write_to_an_object_not_in_state_changes_nothing_and_is_not_annotated() -> None:
    log = Log()
    st, anns = fold_all([
        log.service("web", "frontend", {"app": "web"}),
        log.ev("service.deleted", {"namespace": "web", "name": "frontend"}),
        write(log, "services", "frontend"),  # the watch's delete came first: the log keeps who
        write(log, "pods", None, verb="deletecollection"),
    ])
    st.take_dirty()
    assert anns == [] and "web/frontend" not in st.services


def test_a_write_naming_another_pod_uid_is_stale() -> None:
    log = Log()
    st, anns = fold_all([log.pod("web", "web-0", "u2", {"app": "web"}), write(log, "pods", "web-0", uid="u1")])
    assert [a["kind"] for a in anns] == ["stale"] and "writers" not in st.pods["web/web-0"]


def test_a_snapshot_carries_the_writers() -> None:
    log = Log()
    st, _ = fold_all([log.rc("web", "frontend", {"app": "web"}),
                      write(log, "replicationcontrollers", "frontend", verb="update", sub="scale", replicas=4)])
    again = ClusterState.from_snapshot(st.to_snapshot())
    assert again.rcs["web/frontend"]["writers"] == st.rcs["web/frontend"]["writers"]
    apply(again, write(log, "replicationcontrollers", "frontend", verb="update", audit_id="a-2"))
    assert len(again.rcs["web/frontend"]["writers"]) == 1  # a-2 was applied before the snapshot


def test_a_late_write_named_by_name_does_not_join_a_newer_pod_of_that_name() -> None:
    log = Log()
    late = write(log, "pods", "web-0")
    late["occurred_at"] = "2024-04-30T23:59:58.000000Z"
    st, anns = fold_all([log.pod("web", "web-0", "u2", {"app": "web"}), late])
    assert [a["kind"] for a in anns] == ["stale"] and "writers" not in st.pods["web/web-0"]


def test_a_create_named_by_name_does_not_join_the_deleted_pod_it_replaces() -> None:
    log = Log()
    st, anns = fold_all([log.pod("web", "web-0", "u1", {"app": "web"}), log.pod_deleted("web", "web-0", "u1"),
                         write(log, "pods", "web-0", verb="create")])
    assert anns == [] and "writers" not in st.pods["web/web-0"]
