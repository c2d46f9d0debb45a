"""Every event type of the contract: payload model, schema versions, dedupe recipe.

``SPECS`` is the single table; everything else (``EVENT_TYPES``,
``SCHEMA_VERSIONS``, the per-type event models, the JSON Schemas, the README's
type table) is derived from it. Adding a type means adding one ``EventSpec``
here (and its strategy in tests/strategies.py).

Dedupe templates: ``{path}`` is a dotted path into the canonical event
(``{occurred_at}``, ``{payload.status.uuid}``); everything else is literal.
Templates are tried in order and the first whose fields are all non-null is
used; if none is, the last is used with nulls rendered as empty strings. Values
render as: strings as is, integers in decimal, floats with exactly six
decimals (``%.6f``), booleans as ``true``/``false``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, create_model

from kmevents.contract import kubernetes as k8s
from kmevents.contract import mesos, observations
from kmevents.contract.base import ContractModel
from kmevents.contract.envelope import Envelope


@dataclass(frozen=True)
class EventSpec:
    """One event type at one schema version."""

    type: str
    """``family.action``."""
    version: int
    """Schema version of the payload."""
    payload: builtins.type[ContractModel]  # ``type`` is a field name here
    """Payload model."""
    raw_types: str
    """The source events it comes from (documentation)."""
    dedupe: tuple[str, ...]
    """Dedupe key templates, tried in order (see module docstring)."""


def _spec(type_: str, payload: type[ContractModel], raw: str, *tails: str, version: int = 1) -> EventSpec:
    return EventSpec(type_, version, payload, raw, tuple(f"{type_}|{tail}" for tail in tails))


_AT = "{occurred_at}"

SPECS: Final[tuple[EventSpec, ...]] = (
    # master
    _spec("master.elected", mesos.MasterElected, "SUBSCRIBED, leader MasterInfo change", "{payload.master.id}"),
    _spec("master.heartbeat_lost", mesos.MasterHeartbeatLost, "missed HEARTBEAT", "{payload.master_id}|" + _AT),
    _spec("master.error", mesos.MasterError, "ERROR", _AT + "|{payload.message}"),
    # frameworks
    _spec("framework.registered", mesos.FrameworkRegistered, "SUBSCRIBED, FRAMEWORK_ADDED", "{payload.framework.id}"),
    _spec("framework.reregistered", mesos.FrameworkRegistered, "FRAMEWORK_UPDATED", "{payload.framework.id}|" + _AT),
    _spec("framework.removed", mesos.FrameworkRemoved, "FRAMEWORK_REMOVED, failover timeout", "{payload.framework_id}"),
    # agents
    _spec("agent.added", mesos.AgentAdded, "AGENT_ADDED", "{payload.agent.id}"),
    _spec("agent.reregistered", mesos.AgentAdded, "AGENT_ADDED after failover", "{payload.agent.id}|" + _AT),
    _spec("agent.removed", mesos.AgentRemoved, "AGENT_REMOVED, FAILURE", "{payload.agent_id}"),
    _spec("agent.draining", mesos.AgentDraining, "DRAIN_AGENT", "{payload.agent_id}|" + _AT),
    _spec("agent.deactivated", mesos.AgentRef, "DEACTIVATE_AGENT", "{payload.agent_id}|" + _AT),
    _spec("agent.reactivated", mesos.AgentRef, "REACTIVATE_AGENT", "{payload.agent_id}|" + _AT),
    # offers
    _spec("offer.offered", mesos.OfferOffered, "OFFERS (one event per offer)", "{payload.offer.id}"),
    _spec("offer.rescinded", mesos.OfferRef, "RESCIND", "{payload.offer_id}"),
    _spec("offer.declined", mesos.OfferDeclined, "DECLINE", "{payload.offer_id}"),
    _spec("offer.accepted", mesos.OfferAccepted, "ACCEPT", "{payload.offer_id}"),
    _spec("offer.expired", mesos.OfferRef, "k8sm offer TTL", "{payload.offer_id}"),
    _spec("inverse_offer.offered", mesos.InverseOfferOffered, "INVERSE_OFFERS", "{payload.inverse_offer.id}"),
    _spec("inverse_offer.rescinded", mesos.InverseOfferRef, "RESCIND_INVERSE_OFFER", "{payload.inverse_offer_id}"),
    _spec("inverse_offer.accepted", mesos.InverseOfferRef, "ACCEPT_INVERSE_OFFERS", "{payload.inverse_offer_id}"),
    _spec("inverse_offer.declined", mesos.InverseOfferRef, "DECLINE_INVERSE_OFFERS", "{payload.inverse_offer_id}"),
    # tasks
    # A Mesos task id is unique only within its framework: from these versions on the
    # dedupe keys carry the framework (the older versions' recipes stay as they were).
    _spec("task.launched", mesos.TaskLaunched, "ACCEPT with LAUNCH", "{payload.task.task_id}"),
    _spec("task.launched", mesos.TaskLaunched, "ACCEPT with LAUNCH",
          "{payload.task.framework_id}|{payload.task.task_id}", version=2),
    _spec(
        "task.status_updated", mesos.TaskStatusUpdatedV1, "UPDATE",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.uuid}",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.state}|{payload.status.timestamp}",
    ),
    _spec(
        "task.status_updated", mesos.TaskStatusUpdated, "UPDATE",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.uuid}",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.state}|{payload.status.timestamp}",
        version=2,
    ),
    _spec(
        "task.status_updated", mesos.TaskStatusUpdatedV3, "UPDATE",
        # with the framework when the source gave it; without, the v2 keys
        "{payload.status.agent_id}|{payload.framework_id}|{payload.status.task_id}|{payload.status.uuid}",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.uuid}",
        "{payload.status.agent_id}|{payload.framework_id}|{payload.status.task_id}|{payload.status.state}|"
        "{payload.status.timestamp}",
        "{payload.status.agent_id}|{payload.status.task_id}|{payload.status.state}|{payload.status.timestamp}",
        version=3,
    ),
    _spec("task.added", mesos.TaskAdded, "TASK_ADDED (operator API)", "{payload.task.task_id}|" + _AT),
    _spec("task.added", mesos.TaskAdded, "TASK_ADDED (operator API)",
          "{payload.task.framework_id}|{payload.task.task_id}|" + _AT, version=2),
    _spec("task.kill_requested", mesos.TaskKillRequestedV1, "KILL", "{payload.task_id}|" + _AT),
    _spec("task.kill_requested", mesos.TaskKillRequested, "KILL",
          "{payload.framework_id}|{payload.task_id}|" + _AT, version=2),
    _spec("executor.added", mesos.ExecutorChanged, "EXECUTOR_ADDED",
          "{payload.executor.agent_id}|{payload.executor.executor_id}"),
    _spec("executor.removed", mesos.ExecutorChanged, "executor terminated",
          "{payload.executor.agent_id}|{payload.executor.executor_id}"),
    _spec("role.updated", mesos.RoleUpdated, "GET_ROLES", "{payload.role.name}|" + _AT),
    # pods and Kubernetes objects
    _spec("pod.upserted", k8s.PodUpserted, "k8s ADDED/MODIFIED",
          "{payload.pod.uid}|{payload.pod.resource_version}", "{payload.pod.uid}|" + _AT),
    _spec("pod.scheduled", k8s.PodScheduled, "k8sm binding", "{payload.pod.uid}|{payload.task_id}"),
    _spec("pod.evicted", k8s.PodEvicted, "Evicted, audit create pods/eviction, node controller", "{payload.pod.uid}",
          "{payload.pod.namespace}/{payload.pod.name}|" + _AT),
    _spec("pod.deleted", k8s.PodDeleted, "k8s DELETED, audit delete pods", "{payload.pod.uid}",
          "{payload.pod.namespace}/{payload.pod.name}|" + _AT),
    _spec("namespace.upserted", k8s.NamespaceUpserted, "k8s watch", "{payload.namespace.name}|" + _AT),
    _spec("namespace.deleted", k8s.NamedRef, "k8s watch DELETED", "{payload.name}|" + _AT),
    _spec("node.upserted", k8s.NodeUpserted, "k8s watch", "{payload.node.name}|" + _AT),
    _spec("node.deleted", k8s.NamedRef, "k8s watch DELETED", "{payload.name}|" + _AT),
    _spec("replication_controller.upserted", k8s.ReplicationControllerUpserted, "k8s watch",
          "{payload.rc.namespace}/{payload.rc.name}|" + _AT),
    _spec("replication_controller.deleted", k8s.NamespacedRef, "k8s watch DELETED",
          "{payload.namespace}/{payload.name}|" + _AT),
    _spec("service.upserted", k8s.ServiceUpserted, "k8s watch",
          "{payload.service.namespace}/{payload.service.name}|" + _AT),
    _spec("service.deleted", k8s.NamespacedRef, "k8s watch DELETED", "{payload.namespace}/{payload.name}|" + _AT),
    _spec("endpoints.observed", k8s.EndpointsObserved, "k8s watch", "{payload.namespace}/{payload.name}|" + _AT),
    _spec(
        "k8s_event.recorded", k8s.K8sEventRecorded, "k8s Event",
        "{payload.namespace}|{payload.involved.uid}|{payload.reason}|{payload.count}",
        "{payload.namespace}|{payload.involved.name}|{payload.reason}|{payload.count}",
    ),
    _spec("k8s_write.recorded", k8s.K8sWriteRecorded, "audit ResponseComplete of a write", "{payload.audit_id}"),
    _spec("scheduler.leader_elected", k8s.SchedulerLeaderElected, "k8sm leader key change",
          "{payload.identity}|" + _AT),
    # observations
    _spec("cluster.snapshot_observed", observations.ClusterSnapshotObserved, "SUBSCRIBED/GET_STATE", _AT),
    _spec("source.gap", observations.SourceGap, "adapter detection", "{payload.stream_id}|" + _AT),
    _spec("source.clock_skew", observations.SourceClockSkew, "adapter detection", "{payload.stream_id}|" + _AT),
)

#: Current schema version of every type.
SCHEMA_VERSIONS: Final[dict[str, int]] = {}
for _s in SPECS:
    SCHEMA_VERSIONS[_s.type] = max(_s.version, SCHEMA_VERSIONS.get(_s.type, 0))

#: Every event type, in catalogue order.
EVENT_TYPES: Final[tuple[str, ...]] = tuple(SCHEMA_VERSIONS)

#: ``(type, version) -> EventSpec``.
SPEC_BY_VERSION: Final[dict[tuple[str, int], EventSpec]] = {(s.type, s.version): s for s in SPECS}

#: ``type -> EventSpec`` of the current version.
CURRENT_SPECS: Final[dict[str, EventSpec]] = {
    t: SPEC_BY_VERSION[(t, v)] for t, v in SCHEMA_VERSIONS.items()
}


def _model_name(spec: EventSpec) -> str:
    camel = "".join(part.capitalize() for part in spec.type.replace(".", "_").split("_"))
    return f"{camel}V{spec.version}Event"


class _TypedEvent(Envelope):
    """Base of the generated per-type models (their fields carry explicit descriptions)."""

    model_config = ConfigDict(use_attribute_docstrings=False)


def _event_model(spec: EventSpec) -> type[Envelope]:
    fields: dict[str, Any] = {
        "type": (Literal[spec.type], Field(description="kmevents event type.")),
        "schema_version": (
            Literal[spec.version],
            Field(description="Version of this type's payload schema."),
        ),
        "payload": (spec.payload, Field(description=(spec.payload.__doc__ or "").strip())),
    }
    doc = f"A ``{spec.type}`` event, schema version {spec.version}."
    return create_model(_model_name(spec), __base__=_TypedEvent, __doc__=doc, **fields)


#: ``(type, version) -> event model`` (envelope + typed payload).
EVENT_MODELS: Final[dict[tuple[str, int], type[Envelope]]] = {
    key: _event_model(spec) for key, spec in SPEC_BY_VERSION.items()
}

#: ``type -> event model`` of the current version.
CURRENT_MODELS: Final[dict[str, type[Envelope]]] = {
    t: EVENT_MODELS[(t, v)] for t, v in SCHEMA_VERSIONS.items()
}
