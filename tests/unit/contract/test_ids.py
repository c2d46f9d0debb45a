"""Dedupe keys and derived event ids follow the documented recipes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings

from kmevents.contract import EVENT_TYPES, SPECS, dedupe_key, derive_event_id, validate_event
from kmevents.contract.ids import compile_template, render_value
from tests.strategies import event_of_type


def _base(type_: str, payload: dict, version: int = 1) -> dict:
    return {
        "type": type_, "schema_version": version, "cluster": "prod-1",
        "source": {"kind": "mesos.scheduler", "stream_id": "s", "seq": 0},
        "occurred_at": "2015-07-08T15:03:22.500000Z", "clock": "master", "raw_type": "X",
        "payload": payload,
    }


def test_event_id_recipe_worked_example() -> None:
    expected = hashlib.sha256(b"prod-1\noffer.rescinded|O-42").hexdigest()[:32]
    assert derive_event_id("prod-1", "offer.rescinded|O-42") == expected
    canonical, _ = validate_event(_base("offer.rescinded", {"offer_id": "O-42"}))
    assert canonical["dedupe_key"] == "offer.rescinded|O-42"
    assert canonical["event_id"] == expected


def test_producer_supplied_ids_are_kept() -> None:
    raw = _base("offer.rescinded", {"offer_id": "O-42"})
    raw.update(event_id="my-id-1", dedupe_key="custom|1")
    canonical, _ = validate_event(raw)
    assert (canonical["event_id"], canonical["dedupe_key"]) == ("my-id-1", "custom|1")


def test_status_update_with_uuid() -> None:
    status = {"task_id": "T", "state": "TASK_RUNNING", "uuid": "U", "agent_id": "S0", "timestamp": 1.5}
    assert validate_event(_base("task.status_updated", {"status": status}, 2))[0]["dedupe_key"] == \
        "task.status_updated|S0|T|U"


def test_status_update_without_uuid_uses_state_and_timestamp_with_six_decimals() -> None:
    status = {"task_id": "T", "state": "TASK_LOST", "agent_id": "S0", "timestamp": 1436367802.5}
    assert validate_event(_base("task.status_updated", {"status": status}, 2))[0]["dedupe_key"] == \
        "task.status_updated|S0|T|TASK_LOST|1436367802.500000"


def test_status_update_without_agent_or_timestamp_renders_nulls_empty() -> None:
    status = {"task_id": "T", "state": "TASK_LOST"}
    assert validate_event(_base("task.status_updated", {"status": status}, 2))[0]["dedupe_key"] == \
        "task.status_updated||T|TASK_LOST|"


def test_pod_upserted_prefers_resource_version_over_occurred_at() -> None:
    pod = {"namespace": "default", "name": "p", "uid": "U1", "phase": "Running"}
    without = validate_event(_base("pod.upserted", {"pod": pod}))[0]["dedupe_key"]
    assert without == "pod.upserted|U1|2015-07-08T15:03:22.500000Z"
    with_rv = validate_event(_base("pod.upserted", {"pod": {**pod, "resource_version": "1234"}}))[0]
    assert with_rv["dedupe_key"] == "pod.upserted|U1|1234"


def test_k8s_event_falls_back_to_the_involved_name() -> None:
    payload = {"namespace": "default", "involved": {"kind": "Pod", "name": "p"}, "reason": "FailedMount",
               "message": "m", "count": 3}
    assert validate_event(_base("k8s_event.recorded", payload))[0]["dedupe_key"] == \
        "k8s_event.recorded|default|p|FailedMount|3"


def test_namespaced_keys_join_namespace_and_name() -> None:
    payload = {"namespace": "default", "name": "nginx"}
    assert validate_event(_base("service.deleted", payload))[0]["dedupe_key"] == \
        "service.deleted|default/nginx|2015-07-08T15:03:22.500000Z"


def test_every_type_has_a_recipe_starting_with_its_type() -> None:
    for spec in SPECS:
        assert spec.dedupe and all(t.startswith(spec.type + "|") for t in spec.dedupe)
    assert {s.type for s in SPECS} == set(EVENT_TYPES)


@pytest.mark.parametrize(("value", "text"), [(1.5, "1.500000"), (3, "3"), (True, "true"), (None, ""), ("a", "a")])
def test_value_rendering(value: object, text: str) -> None:
    assert render_value(value) == text


def test_template_compilation() -> None:
    assert compile_template("a|{payload.x}/{y}|b") == ("a|", ("payload", "x"), "/", ("y",), "|b")


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_same_occurrence_same_key_different_delivery(type_: str) -> None:
    @settings(max_examples=10, deadline=None)
    @given(event_of_type(type_))
    def check(event: dict) -> None:
        redelivered = {**event, "source": {**event["source"], "seq": event["source"]["seq"] + 1},
                       "event_id": None, "dedupe_key": None}
        canonical, _ = validate_event(redelivered)
        assert canonical["dedupe_key"] == dedupe_key(event)
        assert canonical["event_id"] == event["event_id"]

    check()
