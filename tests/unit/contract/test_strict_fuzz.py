"""The strict validator on hostile input: it returns or raises ContractViolation, nothing else.

Two kinds of input: arbitrary JSON-like values (as a producer could send any
JSON), and valid events with one field, anywhere in them, replaced by such a
value. Leaves include what broke it before: integers far beyond 64 bits,
epoch micro- and nanoseconds, infinities, NaN, bools, unhashable versions.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmevents.contract import ContractViolation, validate_event
from tests.strategies import event_of_type, events, paths_of

_ODD_SCALARS = st.sampled_from([
    1767225600000000, 1767225600000000000, 1767225600000.0, 253402300800000, 10**30, -1, 0,
    1e300, float("inf"), float("-inf"), float("nan"), "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00.000000Z", "2015-02-30T00:00:00.000000Z", "2015-07-08T15:03:22.000000Z\n",
    {}, [], [1], True,
])
#: numbers of every magnitude (times as micro-, nanoseconds, beyond 64 bits, ...)
_NUMBERS = st.integers(-(2**80), 2**80) | st.integers(10**11, 10**20) | st.floats() | st.floats(1e9, 1e21)
leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | _NUMBERS | _ODD_SCALARS
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
#: what replaces a field: often an odd scalar, sometimes any JSON value
replacements = _ODD_SCALARS | _NUMBERS | json_values


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one field (any depth) replaced by an arbitrary value."""
    event = copy.deepcopy(draw(events()))
    path = draw(st.sampled_from(paths_of(event)))
    node = event
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = draw(replacements)
    return event


def _only_returns_or_refuses(obj: Any) -> None:
    try:
        canonical, _ = validate_event(obj)
    except ContractViolation as exc:
        assert exc.errors and all(isinstance(p, str) and isinstance(r, str) for p, r in exc.errors)
        return
    assert isinstance(canonical["event_id"], str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_is_validated_or_refused_never_crashes(obj: Any) -> None:
    _only_returns_or_refuses(obj)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_events())
def test_a_valid_event_with_any_field_replaced_is_validated_or_refused_never_crashes(event: dict[str, Any]) -> None:
    _only_returns_or_refuses(event)


@settings(max_examples=300, deadline=None)
@given(events(), st.sampled_from(["occurred_at", "schema_version", "type", "cluster", "source", "payload"]),
       replacements)
def test_each_envelope_field_replaced_by_any_value_is_validated_or_refused(
        event: dict[str, Any], name: str, value: Any) -> None:
    _only_returns_or_refuses({**event, name: value})


@settings(max_examples=5, deadline=None)
@given(event_of_type("pod.upserted"))
def test_deeply_nested_free_form_values_are_refused_or_accepted_without_recursion_errors(event: dict[str, Any]) -> None:
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    event["payload"]["pod"]["volumes"] = [{"name": "a", "kind": "nfs", "source": {"x": deep}}]
    _only_returns_or_refuses(event)
