"""task.status_updated v1 -> v2: old events decode to the current shape, stored bytes untouched."""

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


def test_current_version_of_status_updates_is_2() -> None:
    assert SCHEMA_VERSIONS["task.status_updated"] == 2
    assert ("task.status_updated", 1) in EVENT_MODELS


def test_the_fixture_is_a_valid_v1_event() -> None:
    EVENT_MODELS[("task.status_updated", 1)].model_validate(V1_EVENT)


def test_v1_bytes_decode_to_v2_with_no_check_status() -> None:
    event = decode_fast(V1_BYTES)
    assert event["schema_version"] == 2
    assert event["payload"]["status"]["check_status"] is None
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


def test_upcast_event_validates_strictly_as_v2() -> None:
    event = decode_strict(V1_BYTES)
    assert event["schema_version"] == 2
    assert EVENT_MODELS[("task.status_updated", 2)].model_validate(event).payload.status.check_status is None


def test_upcaster_does_not_mutate_its_input() -> None:
    before = copy.deepcopy(V1_EVENT)
    upcast(V1_EVENT)
    assert before == V1_EVENT


def test_strict_ingest_of_a_v1_producer_writes_v2() -> None:
    raw = {k: v for k, v in V1_EVENT.items() if k not in ("event_id", "dedupe_key")}
    canonical, _ = validate_event(raw)
    assert canonical["schema_version"] == 2
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
