"""Every event type survives strict validation, encoding and both decoders unchanged."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmevents.contract import EVENT_TYPES, decode_fast, decode_strict, encode, validate_event
from tests.strategies import event_of_type, events, producer_inputs

SETTINGS = settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_canonical_event_is_a_fixpoint_of_validation_and_round_trips(type_: str) -> None:
    @SETTINGS
    @given(event_of_type(type_))
    def check(event: dict) -> None:
        canonical, warnings = validate_event(event)
        assert canonical == event
        assert warnings == []
        data = encode(canonical)
        assert decode_fast(data) == canonical
        assert decode_strict(data) == canonical
        assert encode(decode_fast(data)) == data

    check()


@settings(max_examples=200, deadline=None)
@given(producer_inputs())
def test_producer_forms_become_the_canonical_event(pair: tuple[dict, dict]) -> None:
    raw, canonical = pair
    assert validate_event(raw)[0] == canonical


@settings(max_examples=50, deadline=None)
@given(events())
def test_encoding_sorts_keys_has_no_whitespace_and_keeps_nulls(event: dict) -> None:
    data = encode(validate_event(event)[0])
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)
    assert b'": ' not in data and b", " not in data.replace(b'\\", ', b"")
    assert b'"causation_id":null' in data
    assert not data.startswith(b"{\n")
    top_keys = list(orjson.loads(data))
    assert top_keys == sorted(top_keys)


@settings(max_examples=50, deadline=None)
@given(events(), st.data())
def test_validation_does_not_modify_its_input(event: dict, data: st.DataObject) -> None:
    before = orjson.dumps(event)
    validate_event(event)
    assert orjson.dumps(event) == before


def test_recorded_at_is_never_part_of_the_value() -> None:
    from kmevents.contract import Envelope

    assert "recorded_at" not in Envelope.model_fields
