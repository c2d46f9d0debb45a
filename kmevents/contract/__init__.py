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

from kmevents.contract.codec import decode_fast, decode_strict, encode
from kmevents.contract.enums import (
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
from kmevents.contract.strict import validate_event
from kmevents.contract.times import canonical_time
from kmevents.contract.upcast import upcast

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
    "ContractViolation",
    "ContractWarning",
    "DecodeError",
    "Envelope",
    "EventSpec",
    "UnknownEventType",
    "canonical_time",
    "decode_fast",
    "decode_strict",
    "dedupe_key",
    "derive_event_id",
    "encode",
    "upcast",
    "validate_event",
]
