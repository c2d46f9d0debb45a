"""Strict validation for ingest: ``validate_event(obj) -> (canonical_dict, warnings)``.

Steps, in order:

1. ``obj`` must be an object whose ``type`` is in the contract (else
   ``UnknownEventType``, with the envelope's other errors too);
2. it is validated against the model of the schema version it claims
   (normalising v0 spellings and canonicalising times on the way); an older
   version is then upcast and validated again as the current one. Valid
   events take ``kmevents.contract.fastpath`` (the same schemas, straight to
   a dict); whatever it refuses is validated again here by the models
   themselves (``_validate_as``, the reference), which word the errors;
3. missing ``dedupe_key`` and ``event_id`` are computed (``kmevents.contract.ids``);
4. open-enum values newer than the contract become warnings.

Every error is reported, each as ``(field_path, reason)`` with dotted paths
(``payload.status.state``, list items by index: ``payload.offer.resources.0.name``).
"""

from __future__ import annotations

import difflib
from typing import Any, Final

from pydantic import ValidationError

from kmevents.contract.envelope import Envelope
from kmevents.contract.errors import NO_FIELD, ContractViolation, ContractWarning, UnknownEventType
from kmevents.contract.fastpath import canonical_dict
from kmevents.contract.ids import dedupe_key, derive_event_id
from kmevents.contract.openenums import unknown_enum_values
from kmevents.contract.registry import EVENT_MODELS, EVENT_TYPES, SCHEMA_VERSIONS
from kmevents.contract.upcast import upcast

_EXPLAINED: Final[dict[str, str]] = {
    "recorded_at": "recorded_at is never part of an event: readers take Kafka's LogAppendTime",
}


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a reason quotes the input, never a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reason(error: Any) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and loc and loc[-1] in _EXPLAINED:
        return _EXPLAINED[loc[-1]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unexpected field (not in the contract; check its spelling)"
    if error["type"] in ("literal_error", "string_pattern_mismatch", "enum"):
        return f"{message}; got {_shown(error.get('input'))}"
    return message


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or NO_FIELD


def violations(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field_path, reason)`` for every error of a pydantic ValidationError."""
    return [(_path(e["loc"]), _reason(e)) for e in exc.errors(include_url=False)]


def _event_id_of(obj: Any) -> str | None:
    value = obj.get("event_id") if type(obj) is dict else None
    return value if type(value) is str else None


def closest_type(type_: Any) -> str | None:
    """The event type nearest to an unknown one (``master.elcted`` -> ``master.elected``), or
    None: the "did you mean" of ``validate`` and ``search --type``."""
    close = difflib.get_close_matches(type_, EVENT_TYPES, n=1) if type(type_) is str and len(type_) < 100 else []
    return close[0] if close else None


def _unknown_type(obj: dict[str, Any]) -> UnknownEventType:
    type_ = obj.get("type")
    if type_ is None:
        errors = [("type", "missing: every event needs a type such as 'task.status_updated'")]
    else:
        close = closest_type(type_)
        hint = f"; did you mean {close!r}?" if close else "; see schemas/README.md for the list"
        errors = [("type", f"unknown event type {_shown(type_)}{hint}")]
    try:
        Envelope.model_validate({**obj, "type": "x.x"})
    except ValidationError as exc:
        errors += violations(exc)
    return UnknownEventType(errors, event_id=_event_id_of(obj))


def _validate_as(obj: dict[str, Any], type_: str, version: Any) -> dict[str, Any]:
    current = SCHEMA_VERSIONS[type_]
    # exactly int: a bool is not a version, and a dict or list is not even hashable
    model = EVENT_MODELS.get((type_, version)) if type(version) is int else None
    if model is None:
        raise ContractViolation(
            [("schema_version", f"{type_} has schema versions 1..{current} (an integer); got {_shown(version)}")],
            event_id=_event_id_of(obj),
        )
    try:
        canonical = model.model_validate(obj).model_dump()
    except ValidationError as exc:
        raise ContractViolation(violations(exc), event_id=_event_id_of(obj)) from None
    if version != current:
        return _validate_as(upcast(canonical), type_, current)
    return canonical


def validate_event(obj: Any) -> tuple[dict[str, Any], list[ContractWarning]]:
    """Validate one event for ingest; return its canonical dict and any warnings.

    The input is not modified. Raises ``ContractViolation`` (or its subclass
    ``UnknownEventType``) listing every problem found.
    """
    if type(obj) is not dict:
        raise ContractViolation([(NO_FIELD, f"an event is a JSON object, not {type(obj).__name__}")])
    type_ = obj.get("type")
    if type(type_) is not str or type_ not in SCHEMA_VERSIONS:
        raise _unknown_type(obj)
    version = obj.get("schema_version")
    canonical = canonical_dict(obj, type_, version)
    if canonical is None:  # refused by the fast path: the reference path accepts or explains
        canonical = _validate_as(obj, type_, version)
    if canonical["dedupe_key"] is None:
        canonical["dedupe_key"] = dedupe_key(canonical)
    if canonical["event_id"] is None:
        canonical["event_id"] = derive_event_id(canonical["cluster"], canonical["dedupe_key"])
    return canonical, unknown_enum_values(canonical)
