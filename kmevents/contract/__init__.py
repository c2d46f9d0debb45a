"""The event contract: models, canonical encoding, validation and upcasting.

Where things live:

    enums.py         Mesos v1 / Kubernetes names (TaskState, Source, Reason, ...)
    base.py          ContractModel, open-enum field types
    times.py         canonical occurred_at and accepted input forms
    normalise.py     v0 -> v1 spellings (SLAVE -> AGENT)
    shapes.py        shared values: Resource, MasterInfo, PodRef, TaskStatus
    envelope.py      the envelope every event carries
    mesos.py         payloads: master, framework, agent, offer, task, executor, role
    kubernetes.py    payloads: pod, namespace, node, rc, service, endpoints, k8s events
    observations.py  payloads: snapshot summaries, source gaps and clock skew
    registry.py      the type table: versions, payload models, dedupe recipes
    ids.py           dedupe keys and derived event ids
    upcast.py        older schema versions -> current
    strict.py        validate_event (ingest)
    codec.py         encode / decode_fast (replay) / decode_strict (audit)
    openenums.py     warnings for enum values newer than the contract
    schemagen.py     writes schemas/ (python -m kmevents.contract.schemagen)
    errors.py        ContractViolation, UnknownEventType, DecodeError, ContractWarning
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module defining it. Loaded on first use (PEP 562): replay
#: needs only the codec, and importing the models costs ~0.2-0.3 s of every
#: reading command's start.
_HOME: dict[str, str] = {
    "decode_fast": "codec", "decode_strict": "codec", "encode": "codec",
    "PARTITION_AWARE_TASK_STATES": "enums", "TASK_REASONS": "enums", "TASK_SOURCES": "enums",
    "TASK_STATES": "enums", "TERMINAL_TASK_STATES": "enums", "ACTIVE_TASK_STATES": "enums",
    "PARKED_TASK_STATES": "enums",
    "Envelope": "envelope",
    "ContractViolation": "errors", "ContractWarning": "errors", "DecodeError": "errors",
    "UnknownEventType": "errors",
    "dedupe_key": "ids", "derive_event_id": "ids",
    "CURRENT_MODELS": "registry", "EVENT_MODELS": "registry", "EVENT_TYPES": "registry",
    "SCHEMA_VERSIONS": "registry", "SPECS": "registry", "EventSpec": "registry",
    "validate_event": "strict", "closest_type": "strict",
    "canonical_time": "times",
    "upcast": "upcast",
}


# Loaded now: the module has the function's name, and importing the module (the
# codec does) would otherwise leave ``kmevents.contract.upcast`` bound to it.
from kmevents.contract.upcast import upcast  # noqa: E402


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'kmevents.contract' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kmevents.contract.{home}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from kmevents.contract.codec import decode_fast, decode_strict, encode
    from kmevents.contract.enums import (
        ACTIVE_TASK_STATES,
        PARKED_TASK_STATES,
        PARTITION_AWARE_TASK_STATES,
        TASK_REASONS,
        TASK_SOURCES,
        TASK_STATES,
        TERMINAL_TASK_STATES,
    )
    from kmevents.contract.envelope import Envelope
    from kmevents.contract.errors import (
        ContractViolation,
        ContractWarning,
        DecodeError,
        UnknownEventType,
    )
    from kmevents.contract.ids import dedupe_key, derive_event_id
    from kmevents.contract.registry import (
        CURRENT_MODELS,
        EVENT_MODELS,
        EVENT_TYPES,
        SCHEMA_VERSIONS,
        SPECS,
        EventSpec,
    )
    from kmevents.contract.strict import closest_type, validate_event
    from kmevents.contract.times import canonical_time

__all__ = [
    "CURRENT_MODELS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "PARTITION_AWARE_TASK_STATES",
    "SCHEMA_VERSIONS",
    "SPECS",
    "TASK_REASONS",
    "TASK_SOURCES",
    "TASK_STATES",
    "TERMINAL_TASK_STATES",
    "ACTIVE_TASK_STATES",
    "PARKED_TASK_STATES",
    "ContractViolation",
    "ContractWarning",
    "DecodeError",
    "Envelope",
    "EventSpec",
    "UnknownEventType",
    "canonical_time",
    "closest_type",
    "decode_fast",
    "decode_strict",
    "dedupe_key",
    "derive_event_id",
    "encode",
    "upcast",
    "validate_event",
]
