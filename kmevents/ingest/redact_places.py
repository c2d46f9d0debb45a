"""Where a secret can be in each payload, derived from the contract's payload models.

Two kinds of place:

- ``FREE``: a free-form mapping, flat (labels, annotations, agent attributes,
  selectors: ``dict[str, str]``) or nested (a volume's ``source``:
  ``dict[str, Any]``, CSI ``volumeAttributes``, flexVolume ``options`` and
  whatever else a source carries). Every key in it, at any depth, goes through
  the key rules; every string in it through the text rules.
- ``TEXT``: a free-text string field (``message``, ``reason``), through the
  text rules.

Every other string field of the contract is an identifier or a name (ids,
names, hostnames, images, enumerations: ``IDENTIFIER_FIELDS``, and the open
enumerations) and is never touched: a pod named ``token-rotator`` keeps its
name. A string field that is neither listed here nor an open enumeration is
treated as text (the safe side), and a unit test fails until it is classified.

The places of one event type form a small tree keyed by field name (``*`` for
every item of a list), so a shared prefix (``pod``) is looked up once::

    pod.upserted -> {"pod": {"labels": FREE, "annotations": FREE,
                             "volumes": {"*": {"source": FREE}},
                             "containers": {"*": {"last_termination": {"reason": TEXT}}}}}

A type or schema version the contract does not know gets ``FREE`` for its
whole payload.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final, Union

from pydantic import BaseModel

from kmevents.contract.base import OpenEnum
from kmevents.contract.registry import SPEC_BY_VERSION

TEXT: Final = 1
FREE: Final = 2

#: A place tree: field name (or ``*``) -> subtree, or the kind of place reached.
Places = dict[str, "Places | int"]

#: String fields that hold identifiers, names, addresses or enumerations: never scanned.
IDENTIFIER_FIELDS: Final = frozenset({
    "agent_id", "data", "digest", "executor_id", "framework_id", "frameworks", "host", "hostname", "id",
    "identity", "image", "inverse_offer_id", "ip", "kind", "master_id", "name", "namespace", "node_name",
    "offer_id", "phase", "portal_ip", "previous", "previous_master_id", "principal", "protocol",
    "resource_version", "role", "roles", "start", "state", "stream_id", "target_port", "task_id",
    "task_ids", "template_image", "uid", "uuid", "version",
    # k8s_write.recorded: the audit's request id, verb, object, users, audit level, binding node
    "audit_id", "verb", "resource", "subresource", "user", "impersonated_user", "level", "target",
})


def places_of(model: type[BaseModel]) -> Places:
    """The place tree of one payload model (empty when it has no free-form field)."""
    out: Places = {}
    for name, field in model.model_fields.items():
        kind = _kind(name, field.annotation, field.metadata)
        if kind:
            out[name] = kind
    return out


def _kind(name: str, ann: Any, metadata: list[Any]) -> Places | int | None:
    """What a field of annotation ``ann`` holds: a place kind, a subtree, or nothing to scan."""
    if any(isinstance(m, OpenEnum) for m in metadata):
        return None
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(ann)
        return _kind(name, base, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        kinds = [k for a in typing.get_args(ann) if a is not type(None) and (k := _kind(name, a, metadata))]
        if not kinds:
            return None
        if any(k == FREE for k in kinds):
            return FREE
        return TEXT if TEXT in kinds else kinds[0]
    if origin is dict or ann is dict:
        return FREE
    if origin is list:
        (item,) = typing.get_args(ann) or (Any,)
        sub = _kind(name, item, [])
        return {"*": sub} if sub else None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return places_of(ann) or None
    if ann is str:
        return None if name in IDENTIFIER_FIELDS else TEXT
    if ann is Any:
        return FREE
    return None


_PLACES: Final[dict[tuple[str, int], Places | int]] = {
    key: places_of(spec.payload) for key, spec in SPEC_BY_VERSION.items()
}


def places_for(type_: str, version: object) -> Places | int:
    """The place tree of ``(type_, version)``; ``FREE`` (the whole payload) when unknown."""
    found = _PLACES.get((type_, version)) if type(version) is int else None
    return FREE if found is None else found
