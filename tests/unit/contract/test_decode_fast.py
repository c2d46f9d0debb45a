"""The replay path decodes without validating and never crashes on what is in the log."""

from __future__ import annotations

import orjson
import pytest

from kmevents.contract import DecodeError, decode_fast

NEWER = {
    "event_id": "e1", "type": "volume.attached", "schema_version": 1, "cluster": "prod-1",
    "payload": {"anything": [1, 2, {"x": None}]},
}


def test_event_of_a_type_newer_than_this_code_is_kept_as_is() -> None:
    assert decode_fast(orjson.dumps(NEWER)) == NEWER


def test_newer_schema_version_of_a_known_type_is_kept_as_is() -> None:
    event = {"type": "task.status_updated", "schema_version": 9, "payload": {"status": {}}}
    assert decode_fast(orjson.dumps(event)) == event


def test_fast_path_does_not_validate() -> None:
    event = {"type": "offer.rescinded", "schema_version": 1, "payload": {"offer_id": 42}}
    assert decode_fast(orjson.dumps(event))["payload"]["offer_id"] == 42


@pytest.mark.parametrize("data", [b"", b"{", b'{"type": "x"', b"\xff\xfe", b"nul"])
def test_bytes_that_are_not_json_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_fast(data)
    assert "not JSON" in info.value.reason


@pytest.mark.parametrize("data", [b"[]", b"3", b'"x"', b"null"])
def test_json_that_is_not_an_object_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_fast(data)
    assert "not a JSON object" in info.value.reason


@pytest.mark.parametrize("type_value", [["a"], {"a": 1}, None, 3])
def test_odd_type_values_do_not_crash(type_value: object) -> None:
    event = {"type": type_value, "schema_version": 1}
    assert decode_fast(orjson.dumps(event)) == event
