"""task.status_updated v1 -> v2 -> v3: old events decode to the current shape, stored bytes untouched.

(v2 added ``check_status``; v3 the task's ``framework_id``, issue 16.)"""

from __future__ import annotations

import copy
import hashlib

import orjson
import pytest

from kmevents.contract import (
    SCHEMA_VERSIONS,
    ContractViolation,
    decode_fast,
    decode_strict,
    encode,
    upcast,
    validate_event,
)
from kmevents.contract.registry import EVENT_MODELS

# A v1 event exactly as ingest wrote it before v2 existed (canonical v1 bytes).
V1_EVENT = {
    "actor": None,
    "causation_id": None,
    "clock": "agent",
    "cluster": "prod-1",
    "correlation_id": None,
    "dedupe_key": "task.status_updated|20150708-150322-16777343-5050-1234-S0|pod.e1f2a3b4-0001|AQEBAQEBAQEBAQEBAQEBAQ==",
    "event_id": "5b0fd0ad1b1bd2b5c1e0e7c6f3a3d5a1",
    "occurred_at": "2015-07-08T15:03:22.123000Z",
    "payload": {"status": {
        "agent_id": "20150708-150322-16777343-5050-1234-S0", "data": None, "executor_id": "k8sm-executor",
        "healthy": True, "labels": {}, "message": None, "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        "source": "SOURCE_EXECUTOR", "state": "TASK_RUNNING", "task_id": "pod.e1f2a3b4-0001",
        "timestamp": 1436367802.123, "uuid": "AQEBAQEBAQEBAQEBAQEBAQ==",
    }},
    "raw_type": "UPDATE",
    "redacted": [],
    "schema_version": 1,
    "source": {"kind": "mesos.scheduler", "seq": 7, "stream_id": "sched-1"},
    "type": "task.status_updated",
}
V1_BYTES = orjson.dumps(V1_EVENT, option=orjson.OPT_SORT_KEYS)


def test_current_version_of_status_updates_is_3() -> None:
    assert SCHEMA_VERSIONS["task.status_updated"] == 3
    assert ("task.status_updated", 1) in EVENT_MODELS and ("task.status_updated", 2) in EVENT_MODELS


def test_the_fixture_is_a_valid_v1_event() -> None:
    EVENT_MODELS[("task.status_updated", 1)].model_validate(V1_EVENT)


def test_v1_bytes_decode_to_the_current_version_with_no_check_status_nor_framework() -> None:
    event = decode_fast(V1_BYTES)
    assert event["schema_version"] == 3
    assert event["payload"]["status"]["check_status"] is None
    assert event["payload"]["framework_id"] is None
    assert {k: v for k, v in event["payload"]["status"].items() if k != "check_status"} == \
        V1_EVENT["payload"]["status"]
    assert event["event_id"] == V1_EVENT["event_id"]
    assert event["dedupe_key"] == V1_EVENT["dedupe_key"]


def test_upcasting_leaves_the_stored_bytes_and_their_hash_untouched() -> None:
    stored = bytes(V1_BYTES)
    digest = hashlib.sha256(stored).hexdigest()
    decode_fast(stored)
    decode_strict(stored)
    assert stored == V1_BYTES
    assert hashlib.sha256(stored).hexdigest() == digest
    assert b'"schema_version":1' in stored and b"check_status" not in stored


def test_upcast_event_validates_strictly_as_the_current_version() -> None:
    event = decode_strict(V1_BYTES)
    assert event["schema_version"] == 3
    assert EVENT_MODELS[("task.status_updated", 3)].model_validate(event).payload.status.check_status is None


def test_upcaster_does_not_mutate_its_input() -> None:
    before = copy.deepcopy(V1_EVENT)
    upcast(V1_EVENT)
    assert before == V1_EVENT


def test_strict_ingest_of_a_v1_producer_writes_the_current_version_with_the_same_key() -> None:
    raw = {k: v for k, v in V1_EVENT.items() if k not in ("event_id", "dedupe_key")}
    canonical, _ = validate_event(raw)
    assert canonical["schema_version"] == 3
    assert canonical["dedupe_key"] == V1_EVENT["dedupe_key"]
    assert b"check_status" in encode(canonical)


def test_v1_event_with_a_v2_field_is_refused() -> None:
    raw = copy.deepcopy(V1_EVENT)
    raw["payload"]["status"]["check_status"] = {"type": "TCP", "tcp": {"succeeded": True}}
    with pytest.raises(ContractViolation) as info:
        validate_event(raw)
    assert "payload.status.check_status" in dict(info.value.errors)


def test_v2_carries_check_status() -> None:
    raw = copy.deepcopy(V1_EVENT)
    raw["schema_version"] = 2
    raw["payload"]["status"]["check_status"] = {"type": "HTTP", "http": {"status_code": 503}}
    canonical, warnings = validate_event(raw)
    assert canonical["payload"]["status"]["check_status"] == {
        "type": "HTTP", "command": None, "http": {"status_code": 503}, "tcp": None,
    }
    assert warnings == []


def test_the_upcasters_know_every_current_version_the_registry_has() -> None:
    # decode_fast reads current versions off the upcasters (no models at replay start-up)
    from kmevents.contract.upcast import MOVED_VERSIONS, UPCASTERS

    assert {t: v for t, v in SCHEMA_VERSIONS.items() if v > 1} == MOVED_VERSIONS
    for type_, current in MOVED_VERSIONS.items():
        assert all((type_, v) in UPCASTERS for v in range(1, current)), type_


def test_a_status_update_with_its_framework_keys_on_it() -> None:
    # issue 16: a Mesos task id is unique only within its framework
    raw = {k: v for k, v in V1_EVENT.items() if k not in ("event_id", "dedupe_key")}
    raw = {**raw, "schema_version": 3,
           "payload": {"framework_id": "fw-1", "status": {**V1_EVENT["payload"]["status"], "check_status": None}}}
    canonical, _ = validate_event(raw)
    assert canonical["dedupe_key"] == ("task.status_updated|20150708-150322-16777343-5050-1234-S0|fw-1|"
                                       "pod.e1f2a3b4-0001|AQEBAQEBAQEBAQEBAQEBAQ==")


@pytest.mark.parametrize("type_, payload", [
    ("task.launched", {"offer_id": None, "task": {"task_id": "t1", "name": "t1", "framework_id": "fw-1",
                                                  "agent_id": "a1", "resources": []}}),
    ("task.added", {"task": {"task_id": "t1", "name": "t1", "framework_id": "fw-1", "agent_id": "a1",
                             "resources": [], "state": "TASK_RUNNING"}}),
    ("task.kill_requested", {"task_id": "t1"}),
])
def test_older_task_events_upcast_and_two_frameworks_launching_one_id_get_two_keys(type_: str, payload: dict) -> None:
    v1 = {"type": type_, "schema_version": 1, "cluster": "prod-1", "occurred_at": "2015-07-08T15:03:22.123000Z",
          "clock": "master", "raw_type": "X", "source": {"kind": "mesos.scheduler", "stream_id": "s", "seq": 1},
          "payload": payload}
    canonical, _ = validate_event(v1)
    assert canonical["schema_version"] == SCHEMA_VERSIONS[type_] == 2
    if type_ == "task.kill_requested":
        assert canonical["payload"]["framework_id"] is None
        return
    other = copy.deepcopy(v1)
    other["payload"]["task"]["framework_id"] = "fw-2"
    assert validate_event(other)[0]["dedupe_key"] != canonical["dedupe_key"]
