"""Strict validation straight to the canonical dict: the fast path of ``validate_event``.

The reference path (``strict._validate_as``) builds a frozen model with
``model_validate`` and turns it back into a dict with ``model_dump``: two
passes and one Python object per nested model, the largest cost of ingest.
This module derives from the *same* core schemas one validator per
``(type, schema version)`` in which every model is a typed dict: pydantic-core
checks each field with the model's own field schema and returns the dict that
``model_dump`` would have made, in one pass.

Only an acceptance is trusted. On any refusal ``canonical_dict`` returns
``None`` and the caller runs the reference path, which raises the usual,
precise errors (a typed dict words some of them differently). So the fast path
must accept nothing the models refuse and return exactly what they would; the
unit tests compare both paths over generated events.

Changes to the model schemas, each one equivalent on acceptance:

- a model becomes a typed dict with the same fields, defaults and config
  (``extra="forbid"``, ``strict``); its before-validator stays as it is;
- a model's after-validator (``Resource``) runs its check on the dict;
- a default factory that builds a model (``Node.conditions``) yields its dump;
- an ``Any`` value is copied the way ``model_dump`` copies it (fresh dicts
  and lists, so redaction never touches the caller's input); a value that is
  not plain JSON is refused and left to the reference path;
- the Python wrapper pydantic puts around a pattern that follows a
  ``BeforeValidator`` (it only rewords the error) is dropped;
- a Mesos name the contract knows, and a time already canonical, are accepted
  in Rust before the Python normalisers run: ``agent_spelling`` and
  ``canonical_time`` return such values unchanged, so only other values pay
  for the Python call.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from kmevents.contract import enums
from kmevents.contract.normalise import agent_spelling
from kmevents.contract.registry import EVENT_MODELS, SCHEMA_VERSIONS
from kmevents.contract.shapes import Resource, check_resource_kind
from kmevents.contract.times import CANONICAL_TIME_PATTERN, canonical_time
from kmevents.contract.upcast import upcast

#: Mesos names the contract knows; each is its own ``agent_spelling``.
_MESOS_NAMES: Final = (*enums.TASK_STATES, *enums.TASK_SOURCES, *enums.TASK_REASONS, *enums.CHECK_TYPES)


class _NotJson(ValueError):
    """An ``Any`` value the fast path leaves to the reference path."""


#: Deepest nesting of an ``Any`` value the fast path copies; deeper ones go to the
#: reference path (recursion here would otherwise meet Python's limit).
_MAX_COPY_DEPTH: Final = 64


def _json_copy(value: Any, depth: int = 0) -> Any:
    """What ``model_dump`` makes of a JSON value in an ``Any`` field: fresh containers."""
    kind = type(value)
    if kind is dict:
        if depth >= _MAX_COPY_DEPTH:
            raise _NotJson("nested too deep")
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJson(key)
            out[key] = _json_copy(item, depth + 1)
        return out
    if kind is list:
        if depth >= _MAX_COPY_DEPTH:
            raise _NotJson("nested too deep")
        return [_json_copy(item, depth + 1) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    raise _NotJson(kind.__name__)


def _resource_on_dict(resource: dict[str, Any]) -> dict[str, Any]:
    check_resource_kind(resource["scalar"], resource["ranges"])
    return resource


#: A model's after-validator, as a check of the validated dict.
_AFTER_ON_DICT: Final[dict[type[BaseModel], Any]] = {Resource: _resource_on_dict}

_FIELD_KEYS: Final = frozenset({"type", "schema", "metadata", "frozen"})
_MODEL_KEYS: Final = frozenset({"type", "cls", "schema", "config", "custom_init", "root_model", "metadata", "ref"})


def _typed_dict(model: dict[str, Any]) -> cs.CoreSchema:
    """A ``model`` schema as a typed dict with the same fields, config and before-validator."""
    if set(model) - _MODEL_KEYS or model.get("custom_init") or model.get("root_model"):
        raise TypeError(f"{model['cls'].__name__}: model schema feature the fast path does not know")
    config = {k: v for k, v in model.get("config", {}).items() if k != "title"}
    inner = model["schema"]
    before = None
    if inner["type"] == "function-before":
        before, inner = inner["function"], inner["schema"]
    if inner["type"] != "model-fields" or inner.get("computed_fields"):
        raise TypeError(f"{model['cls'].__name__}: unexpected model schema {inner['type']}")
    fields: dict[str, cs.TypedDictField] = {}
    for name, field in inner["fields"].items():
        if set(field) - _FIELD_KEYS:
            raise TypeError(f"{model['cls'].__name__}.{name}: aliases or exclusions are not supported")
        schema = _convert(field["schema"])
        fields[name] = cs.typed_dict_field(schema, required=schema["type"] != "default")
    out: cs.CoreSchema = cs.typed_dict_schema(
        fields, extra_behavior=config.get("extra_fields_behavior"), strict=config.get("strict"),
        config=cs.CoreConfig(**config),
    )
    if before is not None:
        out = {"type": "function-before", "function": before, "schema": out}
    return out


def _model_default(cls: type[BaseModel]) -> Any:
    return lambda: cls().model_dump()


def _is_constraint_wrapper(schema: dict[str, Any]) -> bool:
    func = schema["function"]["function"]
    return schema["type"] == "function-wrap" and func.__name__ == "_apply_constraint_with_incompatibility_info"


def _open_enum(steps: list[dict[str, Any]]) -> cs.CoreSchema:
    """``[BeforeValidator(agent_spelling), pattern wrapper]``: known names first, in Rust."""
    before, wrapper = steps
    if before["function"]["function"] is not agent_spelling or not _is_constraint_wrapper(wrapper):
        raise TypeError(f"unexpected validator chain {steps!r}")
    checked = wrapper["schema"]
    pattern = re.compile(checked["pattern"])
    known = [n for n in _MESOS_NAMES if "SLAVE" not in n and "\n" not in n and pattern.match(n)]
    slow = cs.no_info_before_validator_function(agent_spelling, checked)
    return cs.union_schema([cs.literal_schema(known), slow], mode="left_to_right") if known else slow


def _timestamp(schema: dict[str, Any]) -> cs.CoreSchema:
    """``BeforeValidator(canonical_time)``: canonical strings pass in Rust without the call."""
    canonical = cs.str_schema(pattern=CANONICAL_TIME_PATTERN, strict=True)
    return cs.union_schema([canonical, schema], mode="left_to_right")


def _convert(schema: dict[str, Any]) -> cs.CoreSchema:
    kind = schema["type"]
    if kind == "model":
        return _typed_dict(schema)
    if kind == "function-after" and schema["schema"]["type"] == "model":
        check = _AFTER_ON_DICT[schema["schema"]["cls"]]  # KeyError: a new after-validator needs its dict twin
        return cs.no_info_after_validator_function(check, _typed_dict(schema["schema"]))
    if kind == "any":
        return cs.no_info_after_validator_function(_json_copy, cs.any_schema())
    if kind == "chain":
        return _open_enum(schema["steps"])
    if kind == "function-before" and schema["function"]["function"] is canonical_time:
        return _timestamp(schema)
    if kind == "default":
        out = {**schema, "schema": _convert(schema["schema"])}
        factory = schema.get("default_factory")
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            out["default_factory"] = _model_default(factory)
        elif factory not in (None, list, dict):
            raise TypeError(f"unexpected default factory {factory!r}")
        if type(schema.get("default")) not in (type(None), str, int, float, bool):
            raise TypeError(f"unexpected default {schema['default']!r}")
        return out
    if kind in ("nullable", "list", "dict", "union"):
        out = dict(schema)
        for key in ("schema", "items_schema", "keys_schema", "values_schema"):
            if key in out:
                out[key] = _convert(out[key])
        if "choices" in out:
            out["choices"] = [_convert(c) for c in out["choices"]]
        return out
    if kind in ("str", "int", "float", "bool", "literal"):
        return schema
    raise TypeError(f"core schema type {kind!r} is not known to the fast path")


#: ``(type, version) -> validator`` returning the canonical dict (before ids are derived).
VALIDATORS: Final[dict[tuple[str, int], SchemaValidator]] = {
    key: SchemaValidator(_convert(dict(model.__pydantic_core_schema__))) for key, model in EVENT_MODELS.items()
}


def canonical_dict(obj: dict[str, Any], type_: str, version: Any) -> dict[str, Any] | None:
    """The canonical dict of a valid event at the current version, or ``None`` when refused.

    ``None`` means "ask the reference path": it may still accept (an input
    shape this path leaves to it) or it raises the precise errors.
    """
    validator = VALIDATORS.get((type_, version)) if type(version) is int else None
    if validator is None:
        return None
    try:
        canonical = validator.validate_python(obj)
        if version != SCHEMA_VERSIONS[type_]:
            return canonical_dict(upcast(canonical), type_, SCHEMA_VERSIONS[type_])
    except (ValidationError, _NotJson):
        return None
    return canonical
