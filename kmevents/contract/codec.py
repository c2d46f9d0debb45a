"""Bytes <-> events, on orjson.

- ``encode(event) -> bytes``: the canonical bytes of a canonical event dict:
  ``orjson.dumps(event, option=orjson.OPT_SORT_KEYS)`` (keys sorted at every
  level, no whitespace, UTF-8, nulls kept). These are the bytes stored in
  Kafka and hashed into the chain.
- ``decode_fast(data) -> dict``: replay's path. ``orjson.loads`` plus upcasting
  of older schema versions; **no validation** (everything in the log passed
  strict ingest, and an event of a type newer than this code is returned as
  is). Bytes that are not a JSON object, and an older-version event that
  cannot be upcast (its payload lacks what the upcaster reads), raise
  ``DecodeError``; nothing else is raised for any input.
- ``decode_strict(data) -> dict``: audit's path: decode, upcast and validate
  as strictly as ingest does (``ContractViolation`` on any problem).

Ingest's path, ``validate_event(obj)``, lives in ``kmevents.contract.strict``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kmevents.contract.errors import DecodeError
from kmevents.contract.upcast import MOVED_VERSIONS, upcast

# No model is imported here: replay decodes with this module alone, and building
# the contract's models costs every reading command ~0.2-0.3 s of start-up.
_SORT: Final = orjson.OPT_SORT_KEYS
_loads: Final = orjson.loads
_dumps: Final = orjson.dumps
_moved_get: Final = MOVED_VERSIONS.get


def encode(event: dict[str, Any]) -> bytes:
    """Canonical bytes of a canonical event dict (as returned by ``validate_event``)."""
    return _dumps(event, option=_SORT)


def decode_fast(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Decode stored bytes without validating; upcast an older schema version.

    Raises ``DecodeError`` when the bytes are not a JSON object or cannot be upcast.
    """
    try:
        event = _loads(data)
        if _moved_get(event.get("type"), 1) == event.get("schema_version"):
            return event  # current (or a type newer than this code)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    except (AttributeError, TypeError):
        # not an object, or an unhashable "type": handled below
        pass
    return _decode_rest(event)


def _decode_rest(event: Any) -> dict[str, Any]:
    """The uncommon cases of ``decode_fast``: older versions, odd or unknown types."""
    if type(event) is not dict:
        raise DecodeError(f"not a JSON object but {type(event).__name__}")
    try:
        return upcast(event)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # Written raw past ingest (which would have refused it): an old-version event
        # without the shape its upcaster reads.
        raise DecodeError(f"cannot upcast {event.get('type')!r} v{event.get('schema_version')!r}: "
                          f"{type(exc).__name__}: {exc}") from None


def decode_strict(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Decode and validate stored bytes; return the canonical (upcast) event."""
    try:
        event = _loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    from kmevents.contract.strict import validate_event

    canonical, _warnings = validate_event(event)
    return canonical


__all__ = ["decode_fast", "decode_strict", "encode"]
