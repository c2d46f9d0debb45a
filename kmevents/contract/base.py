"""Building blocks of every contract model: the base class and the open-enum types.

``ContractModel`` is strict (no type coercion: ``"5"`` is not an int), forbids
unknown fields (a misspelt field is an error, not silently dropped), is
immutable, and takes each field's docstring as its JSON Schema description.

Open enumerations (``TaskStateName``, ``TaskSourceName``, ``TaskReasonName``,
``PodPhaseName``...) accept any value of the right *shape* and carry an
``OpenEnum`` marker; ``kmevents.contract.warnings`` finds the markers and
reports values outside the known set as warnings. The Mesos ones also turn the
v0 spelling ``SLAVE`` into ``AGENT`` while validating (``SOURCE_SLAVE`` ->
``SOURCE_AGENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from kmevents.contract import enums
from kmevents.contract.normalise import agent_field_names, agent_spelling
from kmevents.contract.times import MIN_EPOCH_MS, canonical_time


class ContractModel(BaseModel):
    """Base of every payload and value shape of the contract."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        use_attribute_docstrings=True,
        populate_by_name=False,
        # NaN and infinities are no JSON numbers: the canonical bytes would say null (orjson) where
        # the field promises a number; refused with the field's path instead
        allow_inf_nan=False,
    )


class AgentIdModel(ContractModel):
    """A contract object with an ``agent_id``: accepts the v0 keys ``slave_id``/``slaveId``."""

    @model_validator(mode="before")
    @classmethod
    def _v0_field_names(cls, data: Any) -> Any:
        return agent_field_names(data)


@dataclass(frozen=True)
class OpenEnum:
    """Marker: the field holds a name from ``known``; other names are warnings."""

    label: str
    """What the names are ("Mesos TaskState"), used in the warning text."""
    known: frozenset[str]
    """The names known to this version of the contract."""


def _known(names: tuple[str, ...], pattern: str | None) -> Any:
    """The Field of an open enumeration: its shape, and its known names for the schema."""
    extra: dict[str, Any] = {"x-known-values": list(names), "x-open-enum": True}
    if pattern:
        return Field(pattern=pattern, json_schema_extra=extra)
    return Field(min_length=1, json_schema_extra=extra)


_V0 = BeforeValidator(agent_spelling)

TaskStateName: TypeAlias = Annotated[
    str, _V0, _known(enums.TASK_STATES, enums.TASK_STATE_PATTERN),
    OpenEnum("Mesos TaskState", frozenset(enums.TASK_STATES)),
]
"""A Mesos v1 ``TASK_*`` name; unknown future names are kept with a warning."""

TaskSourceName: TypeAlias = Annotated[
    str, _V0, _known(enums.TASK_SOURCES, enums.TASK_SOURCE_PATTERN),
    OpenEnum("Mesos TaskStatus.Source", frozenset(enums.TASK_SOURCES)),
]
"""``SOURCE_MASTER|SOURCE_AGENT|SOURCE_EXECUTOR`` (``SOURCE_SLAVE`` becomes ``SOURCE_AGENT``)."""

TaskReasonName: TypeAlias = Annotated[
    str, _V0, _known(enums.TASK_REASONS, enums.TASK_REASON_PATTERN),
    OpenEnum("Mesos TaskStatus.Reason", frozenset(enums.TASK_REASONS)),
]
"""A Mesos v1 ``REASON_*`` name (``REASON_SLAVE_*`` becomes ``REASON_AGENT_*``)."""

CheckTypeName: TypeAlias = Annotated[
    str, _known(enums.CHECK_TYPES, r"^[A-Z][A-Z0-9_]*$"),
    OpenEnum("Mesos CheckInfo.Type", frozenset(enums.CHECK_TYPES)),
]
"""``COMMAND|HTTP|TCP|UNKNOWN``."""

PodPhaseName: TypeAlias = Annotated[
    str, _known(enums.POD_PHASES, None), OpenEnum("Kubernetes pod phase", frozenset(enums.POD_PHASES)),
]
"""``Pending|Running|Succeeded|Failed|Unknown``."""

NamespacePhaseName: TypeAlias = Annotated[
    str, _known(enums.NAMESPACE_PHASES, None),
    OpenEnum("Kubernetes namespace phase", frozenset(enums.NAMESPACE_PHASES)),
]
"""``Active|Terminating``."""

NonEmptyStr = Annotated[str, Field(min_length=1)]
"""A string with at least one character (ids, names)."""

Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP/UDP port number."""

Seconds = Annotated[float, Field(ge=0)]
"""A non-negative duration in seconds."""

StrMap = dict[str, str]
"""Free-form string map (labels, annotations, selectors, attributes); keys are kept as written."""


Timestamp = Annotated[
    str,
    BeforeValidator(canonical_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": MIN_EPOCH_MS, "description": "epoch milliseconds"},
                {"type": "number", "minimum": 0, "description": "epoch seconds"},
            ],
            "description": "Canonical form YYYY-MM-DDTHH:MM:SS.ffffffZ; on input also ISO 8601 "
            "with a zone, integer epoch milliseconds or float epoch seconds.",
        }
    ),
]
"""A time, stored in canonical form (``kmevents.contract.times``; that module imports no pydantic, so the
reading commands' time handling loads none)."""
