"""The fast path (``kmevents.contract.fastpath``) against the reference path (the models).

The canonical bytes are hash-chained and kept forever, so whatever the fast
path accepts must be accepted by ``model_validate(...).model_dump()`` with the
very same result, value types included; and it must refuse, not guess, when
in doubt. Inputs: canonical events, producer forms, v1 events that are
upcast, and valid events with one field broken or oddly typed.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmevents.contract import encode, validate_event
from kmevents.contract.errors import ContractViolation
from kmevents.contract.fastpath import canonical_dict
from kmevents.contract.strict import _validate_as
from tests.strategies import events, producer_inputs

SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (``1`` is not ``1.0`` in the bytes)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _reference(obj: Any) -> dict[str, Any] | None:
    try:
        return _validate_as(obj, obj["type"], obj.get("schema_version"))
    except ContractViolation:
        return None


def assert_agrees(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The fast path accepts only what the reference accepts, with the same dict and bytes."""
    before = copy.deepcopy(obj)
    fast = canonical_dict(obj, obj["type"], obj.get("schema_version"))
    if fast is not None:
        ref = _reference(obj)
        assert ref is not None, obj
        assert _same(fast, ref), (fast, ref)
        assert encode(fast) == encode(ref)
    assert obj == before, "validation must not modify its input"
    if fast is not None:
        assert not _containers(fast) & _containers(obj), "redaction of the result must not reach the input"
    return fast


def _containers(node: Any) -> set[int]:
    if type(node) is dict:
        return {id(node)}.union(*map(_containers, node.values()))
    if type(node) is list:
        return {id(node)}.union(*map(_containers, node))
    return set()


@SETTINGS
@given(events())
def test_canonical_events_take_the_fast_path_unchanged(event: dict[str, Any]) -> None:
    assert assert_agrees(event) == event


@SETTINGS
@given(producer_inputs())
def test_producer_forms_take_the_fast_path(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    raw, canonical = pair
    fast = assert_agrees(raw)
    assert fast is not None
    fast.update(event_id=canonical["event_id"], dedupe_key=canonical["dedupe_key"])
    assert fast == canonical


@SETTINGS
@given(events(types=("task.status_updated",)))
def test_v1_status_updates_are_upcast_like_the_reference(event: dict[str, Any]) -> None:
    v1 = {**event, "schema_version": 1, "payload": {"status": dict(event["payload"]["status"])}}
    del v1["payload"]["status"]["check_status"]
    assert assert_agrees(v1) is not None


_ODD_VALUES = (
    None, "", "x", "SLAVE", "TASK_SLAVE_LOST", "REASON_SLAVE_REMOVED", "SOURCE_SLAVE", "TASK_RUNNING",
    "2015-07-08T15:03:22.000000Z", "2015-07-08T15:03:22Z", "2015-07-08T15:03:22.000000Z\n",
    1436367802123, 1436367802.5, 0, -1, 1.0, 70000, True, False, [], [1, 2], [[1, 2]], {}, {"a": "b"},
    {"a": (1, 2)}, ("x",), {1: "x"}, float("nan"),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if type(node) is dict:
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif type(node) is list:
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events(), st.data())
def test_a_broken_field_is_never_accepted_by_the_fast_path_alone(event: dict[str, Any], data: Any) -> None:
    broken = copy.deepcopy(event)
    path = data.draw(st.sampled_from(_paths(broken)))
    *parents, last = path
    node: Any = broken
    for step in parents:
        node = node[step]
    action = data.draw(st.sampled_from(("replace", "delete", "extra")))
    if action == "replace":
        node[last] = data.draw(st.sampled_from(_ODD_VALUES))
    elif action == "delete" and type(node) is dict:
        del node[last]
    elif type(node) is dict:
        node[f"{last}_extra"] = 1
    if broken.get("type") == event["type"]:
        assert_agrees(broken)


def test_values_that_are_not_plain_json_are_left_to_the_reference_path() -> None:
    event = {
        "type": "pod.upserted", "schema_version": 1, "cluster": "prod-1", "occurred_at": "2015-07-08T15:03:22Z",
        "clock": "apiserver", "raw_type": "ADDED", "source": {"kind": "k8s.watch", "stream_id": "w", "seq": 0},
        "payload": {"pod": {
            "namespace": "default", "name": "p", "uid": "u", "phase": "Running",
            "volumes": [{"name": "v", "kind": "flexVolume", "source": {"options": {"password": "hunter2"}, "items": ("a", "b")}}],
        }},
    }
    assert canonical_dict(event, "pod.upserted", 1) is None
    canonical, _ = validate_event(event)
    reference = _reference(event)
    assert reference is not None
    reference.update(event_id=canonical["event_id"], dedupe_key=canonical["dedupe_key"])
    assert encode(canonical) == encode(reference)
    del event["payload"]["pod"]["volumes"][0]["source"]["items"]
    fast = assert_agrees(event)
    assert fast is not None
    fast["payload"]["pod"]["volumes"][0]["source"]["options"]["password"] = "[redacted]"
    assert event["payload"]["pod"]["volumes"][0]["source"]["options"]["password"] == "hunter2"


def test_a_number_that_is_not_finite_is_refused_by_both_paths_with_its_field() -> None:
    # NaN and infinities are no JSON numbers: accepted, the canonical bytes said null where the
    # field promises a number (hypothesis found it through the fast-path property above)
    import pytest

    for bad in (float("nan"), float("inf"), float("-inf")):
        event = {"type": "source.clock_skew", "schema_version": 1, "cluster": "prod-1",
                 "occurred_at": "2015-07-08T15:03:22.512Z", "clock": "adapter", "raw_type": "CLOCK_SKEW",
                 "source": {"kind": "ingest", "stream_id": "adapter-1", "seq": 1},
                 "payload": {"stream_id": "sched-1", "skew_seconds": bad}}
        assert canonical_dict(event, "source.clock_skew", 1) is None
        with pytest.raises(ContractViolation, match="payload.skew_seconds: Input should be a finite number"):
            validate_event(event)
        event["payload"]["skew_seconds"] = -2.5
        assert validate_event(event)[0]["payload"]["skew_seconds"] == -2.5
