"""Strict ingest: precise errors, every error at once, warnings for unknown enum values."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import given, settings

from kmevents.contract import (
    ContractViolation,
    UnknownEventType,
    validate_event,
)
from kmevents.errors import ContractError
from tests.strategies import event_of_type


def _status_event() -> dict:
    return {
        "type": "task.status_updated",
        "schema_version": 2,
        "cluster": "prod-1",
        "source": {"kind": "mesos.scheduler", "stream_id": "sched-1", "seq": 7},
        "occurred_at": "2015-07-08T15:03:22.123000Z",
        "clock": "agent",
        "raw_type": "UPDATE",
        "payload": {
            "status": {
                "task_id": "pod.e1f2a3b4-0001",
                "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR",
                "uuid": "AQEBAQEBAQEBAQEBAQEBAQ==",
                "timestamp": 1436367802.123,
                "agent_id": "20150708-150322-16777343-5050-1234-S0",
            }
        },
    }


def _errors(obj: dict) -> dict[str, str]:
    with pytest.raises(ContractViolation) as info:
        validate_event(obj)
    return dict(info.value.errors)


def test_violations_are_contract_errors_with_exit_code_1() -> None:
    with pytest.raises(ContractError) as info:
        validate_event({"type": "nope"})
    assert info.value.exit_code == 1


def test_unknown_type_is_rejected_with_a_suggestion_and_the_other_envelope_errors() -> None:
    event = _status_event()
    event["type"] = "task.status_update"
    event["cluster"] = "Prod_1"
    with pytest.raises(UnknownEventType) as info:
        validate_event(event)
    errors = dict(info.value.errors)
    assert "did you mean 'task.status_updated'" in errors["type"]
    assert "cluster" in errors


def test_missing_type_is_reported() -> None:
    event = _status_event()
    del event["type"]
    assert "missing" in _errors(event)["type"]


def test_every_error_is_reported_not_only_the_first() -> None:
    event = _status_event()
    event["clock"] = "wall"
    event["source"]["seq"] = -1
    event["payload"]["status"]["state"] = "running"
    del event["payload"]["status"]["task_id"]
    errors = _errors(event)
    assert set(errors) >= {"clock", "source.seq", "payload.status.state", "payload.status.task_id"}


def test_recorded_at_is_refused_with_an_explanation() -> None:
    event = _status_event()
    event["recorded_at"] = "2015-07-08T15:03:23.000000Z"
    assert "LogAppendTime" in _errors(event)["recorded_at"]


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(event: dict) -> None:
        *parents, last = path.split(".")
        node = event
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (_set("payload.status.mesage", "hi"), "payload.status.mesage"),  # misspelt: error, not dropped
        (_set("source.seq", "7"), "source.seq"),  # strict types: no coercion
        (_set("payload.status.source", "executor"), "payload.status.source"),  # open enum, wrong shape
        (_set("payload.status.timestamp", "1436367802"), "payload.status.timestamp"),
        (_set("occurred_at", "2015-07-08T15:03:22"), "occurred_at"),  # no zone
        (_set("cluster", "Prod_1"), "cluster"),
    ],
)
def test_one_bad_field_is_reported_at_its_path(mutate: Callable[[dict], None], path: str) -> None:
    event = _status_event()
    mutate(event)
    assert path in _errors(event)


def test_error_carries_the_event_id() -> None:
    event = _status_event()
    event["event_id"] = "evt-42"
    event["clock"] = "wall"
    with pytest.raises(ContractViolation) as info:
        validate_event(event)
    assert info.value.event_id == "evt-42"
    assert "evt-42" in str(info.value)


@pytest.mark.parametrize("obj", [[], "x", 3, None])
def test_non_object_is_refused(obj: object) -> None:
    with pytest.raises(ContractViolation):
        validate_event(obj)


def test_unknown_future_enum_values_are_kept_with_warnings() -> None:
    event = _status_event()
    event["payload"]["status"]["state"] = "TASK_HIBERNATING"
    event["payload"]["status"]["reason"] = "REASON_QUANTUM_FLUX"
    canonical, warnings = validate_event(event)
    assert canonical["payload"]["status"]["state"] == "TASK_HIBERNATING"
    assert canonical["payload"]["status"]["reason"] == "REASON_QUANTUM_FLUX"
    assert {w.path for w in warnings} == {"payload.status.state", "payload.status.reason"}
    assert all("kept" in w.message for w in warnings)


def test_unknown_enum_value_in_a_list_item_is_located() -> None:
    event = _status_event()
    event.update(type="task.added", raw_type="TASK_ADDED", schema_version=1)
    event["payload"] = {"task": {
        "task_id": "t1", "name": "t1", "framework_id": "F0", "agent_id": "S0", "state": "TASK_NEW_THING",
    }}
    _canonical, warnings = validate_event(event)
    assert [w.path for w in warnings] == ["payload.task.state"]


def test_v0_spellings_become_agent() -> None:
    event = _status_event()
    status = event["payload"]["status"]
    status["slave_id"] = status.pop("agent_id")
    status["source"] = "SOURCE_SLAVE"
    status["reason"] = "REASON_SLAVE_REMOVED"
    status["state"] = "TASK_LOST"
    canonical, warnings = validate_event(event)
    out = canonical["payload"]["status"]
    assert out["agent_id"] == "20150708-150322-16777343-5050-1234-S0"
    assert "slave_id" not in out
    assert (out["source"], out["reason"]) == ("SOURCE_AGENT", "REASON_AGENT_REMOVED")
    assert warnings == []


def test_camel_case_slave_id_is_renamed_in_task_payloads() -> None:
    event = _status_event()
    event.update(type="task.kill_requested", raw_type="KILL", schema_version=1)
    event["payload"] = {"task_id": "t1", "slaveId": "S3"}
    assert validate_event(event)[0]["payload"]["agent_id"] == "S3"


def test_conflicting_v0_and_v1_agent_ids_are_an_error() -> None:
    event = _status_event()
    event["payload"]["status"]["slave_id"] = "S9"
    assert "payload.status.slave_id" in _errors(event)


@settings(max_examples=20, deadline=None)
@given(event_of_type("pod.upserted"))
def test_kubernetes_annotation_keys_keep_their_v0_spelling(event: dict) -> None:
    raw = copy.deepcopy(event)
    raw["payload"]["pod"]["annotations"]["k8s.mesosphere.io/slaveId"] = "S-SLAVE-1"
    raw["payload"]["pod"]["labels"]["slave_id"] = "x"
    canonical, _ = validate_event(raw)
    assert canonical["payload"]["pod"]["annotations"]["k8s.mesosphere.io/slaveId"] == "S-SLAVE-1"
    assert canonical["payload"]["pod"]["labels"]["slave_id"] == "x"


def test_raw_type_is_kept_as_the_source_wrote_it() -> None:
    event = _status_event()
    event["raw_type"] = "STATUS_UPDATE_SLAVE"
    assert validate_event(event)[0]["raw_type"] == "STATUS_UPDATE_SLAVE"


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        ({"name": "cpus", "scalar": 1.0, "ranges": [[1, 2]]}, "exactly one"),
        ({"name": "cpus"}, "exactly one"),
        ({"name": "ports", "ranges": [[32000, 31000]]}, "begin > end"),
        ({"name": "ports", "ranges": [[31000]]}, "at least 2"),
        ({"name": "mem", "scalar": -1.0}, "greater than or equal"),
    ],
)
def test_resource_shape_is_checked(resource: dict, fragment: str) -> None:
    event = _status_event()
    event.update(type="offer.offered", raw_type="OFFERS", schema_version=1)
    event["payload"] = {"offer": {"id": "O1", "framework_id": "F0", "agent_id": "S0", "hostname": "h",
                                  "resources": [resource]}}
    errors = _errors(event)
    assert any(path.startswith("payload.offer.resources.0") and fragment in reason
               for path, reason in errors.items()), errors


def test_schema_version_out_of_range_is_refused() -> None:
    event = _status_event()
    event["schema_version"] = 4
    assert "1..3" in _errors(event)["schema_version"]


@pytest.mark.parametrize("version", [{}, [], [2], "2", 2.0, True, None, 99, -1, 10**30])
def test_a_schema_version_of_any_wrong_type_or_value_is_a_violation_of_that_field(version: object) -> None:
    event = _status_event()
    event["schema_version"] = version
    errors = _errors(event)
    assert "schema_version" in errors, errors


@pytest.mark.parametrize("when", [1767225600000000, 1767225600000000000, 1767225600000.0, 10**30, 1e300,
                                  float("nan"), "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_an_occurred_at_out_of_range_is_a_violation_of_that_field(when: object) -> None:
    event = _status_event()
    event["occurred_at"] = when
    assert "occurred_at" in _errors(event)
