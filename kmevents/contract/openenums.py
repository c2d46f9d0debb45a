"""Warnings for enum values newer than this contract (kept, never rejected).

The paths of every open-enum field are found once per event model by walking
its fields for the ``OpenEnum`` marker (through ``X | None``, lists and
nested models). Checking an event is then a few dictionary look-ups.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kmevents.contract.base import OpenEnum
from kmevents.contract.errors import ContractWarning
from kmevents.contract.registry import EVENT_MODELS

#: A path step: a field name, or ``None`` for "every item of a list".
Step = str | None
EnumPath = tuple[tuple[Step, ...], OpenEnum]


def _markers(metadata: list[Any]) -> list[OpenEnum]:
    return [m for m in metadata if isinstance(m, OpenEnum)]


def _walk_type(annotation: Any, prefix: tuple[Step, ...]) -> Iterator[EnumPath]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        for marker in _markers(meta):
            yield prefix, marker
        yield from _walk_type(base, prefix)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _walk_type(arg, prefix)
    elif origin is list:
        (item,) = typing.get_args(annotation)
        yield from _walk_type(item, (*prefix, None))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            yield from _walk_field(info, (*prefix, name))


def _walk_field(info: FieldInfo, prefix: tuple[Step, ...]) -> Iterator[EnumPath]:
    for marker in _markers(info.metadata):
        yield prefix, marker
    yield from _walk_type(info.annotation, prefix)


def enum_paths(model: type[BaseModel]) -> tuple[EnumPath, ...]:
    """Every open-enum field of ``model`` with its marker (deduplicated)."""
    seen: dict[tuple[Step, ...], OpenEnum] = {}
    for path, marker in _walk_type(model, ()):
        seen.setdefault(path, marker)
    return tuple(seen.items())


#: ``(type, version) -> open-enum paths``, computed once.
ENUM_PATHS: Final[dict[tuple[str, int], tuple[EnumPath, ...]]] = {
    key: enum_paths(model) for key, model in EVENT_MODELS.items()
}


def _check(node: Any, path: tuple[Step, ...], i: int, trail: list[Any], marker: OpenEnum,
           found: list[ContractWarning]) -> None:
    """Append a warning for every value at ``path`` (from step ``i``) outside ``marker.known``.

    The shown path is only built for an unknown value: checking stays a few
    dictionary look-ups per field on the ingest hot path.
    """
    if i == len(path):
        if node not in marker.known:
            _unknown(node, trail, marker, found)
        return
    step = path[i]
    if step is None:
        if type(node) is list:
            for n, item in enumerate(node):
                trail.append(n)
                _check(item, path, i + 1, trail, marker, found)
                trail.pop()
    elif type(node) is dict:
        value = node.get(step)
        if value is not None:
            trail.append(step)
            _check(value, path, i + 1, trail, marker, found)
            trail.pop()


def _unknown(value: Any, path: Sequence[Any], marker: OpenEnum, found: list[ContractWarning]) -> None:
    """Report an unknown value; the callers check ``marker.known`` first (the common, cheap case)."""
    shown = ".".join(str(t) for t in path)
    found.append(ContractWarning(shown, f"unknown {marker.label} value {value!r} kept as written", value))


#: ``ENUM_PATHS`` split for the hot path: ``(path, marker, has_list_step)``.
_PLANS: Final[dict[tuple[str, int], tuple[tuple[tuple[Step, ...], OpenEnum, bool], ...]]] = {
    key: tuple((path, marker, None in path) for path, marker in paths) for key, paths in ENUM_PATHS.items()
}


def unknown_enum_values(event: dict[str, Any]) -> list[ContractWarning]:
    """Warnings for open-enum values of a canonical event that this contract does not know.

    A path without list steps (most of them) is a plain loop of look-ups.
    """
    found: list[ContractWarning] = []
    for path, marker, has_list in _PLANS.get((event["type"], event["schema_version"]), ()):
        if has_list:
            _check(event, path, 0, [], marker, found)
            continue
        node: Any = event
        for step in path:
            node = node.get(step) if type(node) is dict else None
            if node is None:
                break
        else:
            if node not in marker.known:
                _unknown(node, path, marker, found)
    return found
