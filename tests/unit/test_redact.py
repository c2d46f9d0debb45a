"""Redaction rules: what the defaults remove, and that allow rules and markers work."""

from __future__ import annotations

from kmevents.ingest.redact import MASK, Redactor, Rule


def test_task_data_is_dropped_and_marked() -> None:
    ev = {"type": "task.launched", "payload": {"task": {"data": "eyJlbnYiOi4uLn0=", "name": "web"}}}
    assert Redactor()(ev) == ["task.data"]
    assert ev["payload"]["task"] == {"data": None, "name": "web"}
    assert ev["redacted"] == ["payload.task.data"]


def test_secret_named_labels_are_masked_at_any_depth_and_others_kept() -> None:
    ev = {"type": "pod.upserted", "payload": {"pod": {"labels": {"app": "db", "root-password": "x"},
                                                      "annotations": {"vault-token": "t", "k8s.mesosphere.io/taskId": "pod.1"}}}}
    removed = Redactor()(ev)
    pod = ev["payload"]["pod"]
    assert pod["labels"] == {"app": "db", "root-password": MASK}
    assert pod["annotations"] == {"vault-token": MASK, "k8s.mesosphere.io/taskId": "pod.1"}
    assert sorted(removed) == ["pod.annotations.vault-token", "pod.labels.root-password"]


def test_last_applied_configuration_annotation_is_removed_whole() -> None:
    key = "kubectl.kubernetes.io/last-applied-configuration"
    ev = {"type": "pod.upserted", "payload": {"pod": {"annotations": {key: '{"env":"s3cret"}'}}}}
    Redactor()(ev)
    assert key not in ev["payload"]["pod"]["annotations"]
    assert ev["redacted"] == [f"payload.pod.annotations.{key}"]


def test_secret_assignments_in_messages_are_masked() -> None:
    ev = {"type": "k8s_event.recorded", "payload": {"message": "bad env MYSQL_ROOT_PASSWORD=s3cret HOME=/root"}}
    Redactor()(ev)
    assert ev["payload"]["message"] == f"bad env MYSQL_ROOT_PASSWORD={MASK} HOME=/root"


def test_allow_rule_exempts_a_path_and_nothing_is_marked_when_nothing_is_removed() -> None:
    ev = {"type": "task.launched", "payload": {"task": {"data": "keep-me"}}}
    assert Redactor(allow=[Rule("task.launched", "task.data")])(ev) == []
    assert ev["payload"]["task"]["data"] == "keep-me" and "redacted" not in ev
    clean = {"type": "task.launched", "payload": {"task": {"data": None}}}
    assert Redactor()(clean) == [] and "redacted" not in clean


def test_credentials_inline_in_volume_sources_are_masked() -> None:
    ev = {"type": "pod.upserted", "payload": {"pod": {"volumes": [
        {"name": "data", "kind": "flexVolume", "source": {"driver": "x/cifs", "options": {"password": "p4ss", "user": "u"}}},
        {"name": "ceph", "kind": "rbd", "source": {"monitors": ["10.0.0.1:6789"], "secretRef": {"name": "ceph-key"},
                                                    "keyring": "/etc/ceph/keyring"}}]}}}
    Redactor()(ev)
    vols = ev["payload"]["pod"]["volumes"]
    assert vols[0]["source"]["options"] == {"password": MASK, "user": "u"}
    assert vols[1]["source"]["secretRef"] is None
    assert vols[1]["source"]["monitors"] == ["10.0.0.1:6789"]


def test_direct_lookup_finds_what_the_general_walk_finds() -> None:
    """Paths without ``*`` skip the general walk (``_find``); both must select the same places."""
    from hypothesis import given, settings

    from kmevents.ingest.redact import DEFAULT_RULES, _find, _split, _walk
    from tests.strategies import events

    direct = [_split(r.path) for r in DEFAULT_RULES if "*" not in _split(r.path)]
    odd = [{}, {"task": None}, {"task": []}, {"status": {"labels": None}}, {"pod": {"annotations": []}}]

    @settings(max_examples=200, deadline=None)
    @given(events())
    def check(event: dict) -> None:
        for payload in (event["payload"], *odd):
            for segs in direct:
                assert list(_find(payload, segs, ".".join(segs))) == _walk(payload, segs, "")

    check()
