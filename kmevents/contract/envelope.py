"""The envelope: the fields every event carries around its type-specific payload.

``Envelope`` validates the envelope of any event (payload as a plain object);
``kmevents.contract.registry`` derives one model per event type and schema
version from it, with ``type`` and ``schema_version`` pinned and ``payload``
typed. ``recorded_at`` is never part of an event: readers take Kafka's
LogAppendTime.

``event_id`` and ``dedupe_key`` are optional on input and always present in
what ingest writes (``kmevents.contract.ids`` computes the missing ones).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field

from kmevents.contract.base import ContractModel, NonEmptyStr, Timestamp
from kmevents.contract.enums import ActorKind, Clock, SourceKind

#: Shape of ``cluster``: a DNS-label-like name.
CLUSTER_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: Shape of ``type``: ``family.action``.
TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
#: Shape of ``event_id``: 1 to 128 printable ASCII characters, no spaces.
EVENT_ID_PATTERN: Final = r"^[!-~]{1,128}$"

ClusterName = Annotated[str, Field(pattern=CLUSTER_PATTERN)]
"""Mesos cluster name, ``[a-z0-9][a-z0-9-]{0,62}``."""

EventId = Annotated[str, Field(pattern=EVENT_ID_PATTERN)]
"""Event id: producer-supplied, or derived at ingest (see ``kmevents.contract.ids``)."""


class SourceRef(ContractModel):
    """Where the event was observed."""

    kind: SourceKind
    """The kind of source: ``mesos.scheduler``, ``mesos.operator``, ``mesos.state``,
    ``k8s.watch``, ``k8s.audit``, ``k8sm``, ``simulator``, ``ingest``."""
    stream_id: NonEmptyStr
    """One subscription/watch/connection of that source (its Mesos-Stream-Id, watch id...)."""
    seq: int = Field(ge=0)
    """Position of the event in that stream, counted by the adapter from 0."""


class Actor(ContractModel):
    """Who caused the event, when known."""

    kind: ActorKind
    """``user``, ``controller``, ``scheduler``, ``node``, ``master`` or ``agent``."""
    name: NonEmptyStr
    """User name, controller name, host name, ..."""


class Envelope(ContractModel):
    """Every event: envelope fields plus a type-specific ``payload``."""

    event_id: EventId | None = None
    """Unique event id; derived at ingest from cluster and dedupe key when absent."""
    type: Annotated[str, Field(pattern=TYPE_PATTERN)]
    """kmevents event type, ``family.action``."""
    schema_version: int = Field(ge=1)
    """Version of this type's payload schema."""
    cluster: ClusterName
    """Mesos cluster the event belongs to."""
    source: SourceRef
    """Source stream and position."""
    occurred_at: Timestamp
    """Source time, canonical UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    clock: Clock
    """Which clock gave ``occurred_at``."""
    raw_type: NonEmptyStr
    """The source's own event type (``UPDATE``, ``OFFERS``, ``TASK_ADDED``, ``MODIFIED``...)."""
    actor: Actor | None = None
    """Who caused the event, when known."""
    correlation_id: str | None = None
    """Ties a causal chain: the pod uid for pod/task events, the offer id for offer events."""
    causation_id: str | None = None
    """``event_id`` of the event that caused this one, when known."""
    dedupe_key: NonEmptyStr | None = None
    """Same real-world occurrence, same key (per-type recipe); computed at ingest when absent."""
    redacted: list[NonEmptyStr] = Field(default_factory=list)
    """Payload paths whose values were removed at ingest; empty when none."""
    payload: dict[str, Any]
    """Type-specific content."""


#: Envelope field names, in documentation order.
ENVELOPE_FIELDS: Final[tuple[str, ...]] = tuple(Envelope.model_fields)
