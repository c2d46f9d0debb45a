"""Payloads of the Kubernetes-side families: pods, namespaces, nodes,
replication controllers, services, endpoints, Kubernetes Events, and k8sm's
scheduler leadership.

Kubernetes keeps its own spelling in names and keys: annotation keys such as
``k8s.mesosphere.io/slaveId`` are stored exactly as written.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kmevents.contract.base import (
    AgentIdModel,
    ContractModel,
    NamespacePhaseName,
    NonEmptyStr,
    PodPhaseName,
    Port,
    StrMap,
)
from kmevents.contract.enums import EvictionKind
from kmevents.contract.shapes import PodRef

# ---- pods ----


class Volume(ContractModel):
    """A pod volume and its source."""

    name: NonEmptyStr
    """Volume name within the pod."""
    kind: NonEmptyStr
    """Source kind as Kubernetes spells it: ``emptyDir``, ``nfs``, ``gcePersistentDisk``,
    ``rbd``, ``cephfs``, ``hostPath``, ... (others are kept as written)."""
    source: dict[str, Any] = Field(default_factory=dict)
    """The source's own fields as Kubernetes gives them (``{"server": ..., "path": ...}``
    for nfs, ``{"pdName": ..., "fsType": ...}`` for gcePersistentDisk)."""


class Termination(ContractModel):
    """How a container's previous run ended (``lastState.terminated``)."""

    reason: str | None = None
    """``OOMKilled``, ``Error``, ``Completed``, ..."""
    exit_code: int | None = None
    """Exit code of the previous run."""


class ContainerStatus(ContractModel):
    """One container of a pod and its status."""

    name: NonEmptyStr
    """Container name."""
    image: str
    """Image reference."""
    ready: bool = False
    """Whether the container passes its readiness probe."""
    restart_count: int = Field(default=0, ge=0)
    """How many times the kubelet restarted the container."""
    last_termination: Termination | None = None
    """How the previous run ended; null if it never terminated."""


class Pod(ContractModel):
    """A Kubernetes pod as the watch sees it (reduced)."""

    namespace: NonEmptyStr
    """Namespace."""
    name: NonEmptyStr
    """Name."""
    uid: NonEmptyStr
    """metadata.uid."""
    resource_version: str | None = None
    """metadata.resourceVersion, when the source gives it (used in the dedupe key)."""
    labels: StrMap = Field(default_factory=dict)
    """metadata.labels."""
    annotations: StrMap = Field(default_factory=dict)
    """metadata.annotations; k8sm's ``k8s.mesosphere.io/taskId``, ``slaveId``, ``offerId``,
    ``bindingHost``, ``executorId`` tie the pod to its Mesos task. Keys kept as written."""
    phase: PodPhaseName
    """status.phase: Pending, Running, Succeeded, Failed, Unknown."""
    node_name: str | None = None
    """spec.nodeName once bound."""
    ready: bool = False
    """Whether the pod's Ready condition is True."""
    volumes: list[Volume] = Field(default_factory=list)
    """Volumes."""
    containers: list[ContainerStatus] = Field(default_factory=list)
    """Containers and their statuses."""


class PodUpserted(ContractModel):
    """A pod was created or changed (watch ``ADDED`` / ``MODIFIED``)."""

    pod: Pod
    """The pod."""


class PodScheduled(AgentIdModel):
    """k8sm bound a pod to a host and launched its task."""

    pod: PodRef
    """The pod."""
    host: NonEmptyStr
    """Binding host (``k8s.mesosphere.io/bindingHost``)."""
    task_id: NonEmptyStr
    """Mesos task running the pod."""
    agent_id: NonEmptyStr
    """Agent the task runs on."""
    offer_id: str | None = None
    """Offer used, when known."""


class PodByName(ContractModel):
    """A pod named by namespace and name, and by uid when the source knows it.

    An audit record at level ``Metadata`` (the usual production level) names the pod of a
    delete or an eviction by namespace and name only: its uid is in no field. The fold
    resolves such a reference against the pod it holds under ``<namespace>/<name>``.
    """

    namespace: NonEmptyStr
    """Pod namespace."""
    name: NonEmptyStr
    """Pod name."""
    uid: NonEmptyStr | None = None
    """Pod uid (metadata.uid); null when the source named the pod only by namespace/name."""


class PodEvicted(ContractModel):
    """A pod was evicted."""

    pod: PodByName
    """The pod (its uid may be null: see ``PodByName``)."""
    kind: EvictionKind
    """``node_pressure`` (kubelet), ``api`` (eviction API), ``node_controller`` (node NotReady)."""
    reason: NonEmptyStr
    """Reason as reported (``Evicted``, ``NodeLost``, ...)."""
    message: str | None = None
    """Message as reported ("The node was low on resource: memory.")."""


class PodDeleted(ContractModel):
    """A pod was deleted (watch ``DELETED``, or a delete through the API in the audit log)."""

    pod: PodByName
    """The pod (its uid may be null: see ``PodByName``)."""
    reason: str | None = None
    """Why, when known."""


# ---- namespaces ----


class Namespace(ContractModel):
    """A Kubernetes namespace."""

    name: NonEmptyStr
    """Name."""
    phase: NamespacePhaseName = "Active"
    """``Active`` or ``Terminating``."""
    labels: StrMap = Field(default_factory=dict)
    """metadata.labels."""


class NamespaceUpserted(ContractModel):
    """A namespace was created or changed."""

    namespace: Namespace
    """The namespace."""


class NamedRef(ContractModel):
    """A cluster-scoped object (namespace, node) was deleted."""

    name: NonEmptyStr
    """Its name."""


class NamespacedRef(ContractModel):
    """A namespaced object (replication controller, service) was deleted."""

    namespace: NonEmptyStr
    """Namespace."""
    name: NonEmptyStr
    """Name."""


# ---- nodes ----


class NodeConditions(ContractModel):
    """Node pressure conditions (True = the condition holds)."""

    MemoryPressure: bool = False
    """The node is short of memory."""
    DiskPressure: bool = False
    """The node is short of disk."""
    PIDPressure: bool = False
    """The node is short of process ids."""
    NetworkUnavailable: bool = False
    """The node's network is not configured."""


class NodeComponents(ContractModel):
    """Health of the node's Kubernetes components (k8sm runs them in its executor)."""

    kubelet: bool = True
    """Kubelet healthy."""
    proxy: bool = True
    """kube-proxy healthy."""
    cadvisor: bool = True
    """cAdvisor healthy."""


class Node(AgentIdModel):
    """A Kubernetes node (one per Mesos agent running k8sm's executor)."""

    name: NonEmptyStr
    """Node name (the agent hostname)."""
    ready: bool
    """Ready condition: True = Ready, False = NotReady (or Unknown)."""
    conditions: NodeConditions = Field(default_factory=NodeConditions)
    """Pressure conditions."""
    agent_id: str | None = None
    """Mesos agent behind the node, when known."""
    components: NodeComponents = Field(default_factory=NodeComponents)
    """Component health."""


class NodeUpserted(ContractModel):
    """A node was registered or its status changed."""

    node: Node
    """The node."""


# ---- replication controllers, services, endpoints ----


class ReplicationController(ContractModel):
    """A replication controller."""

    namespace: NonEmptyStr
    """Namespace."""
    name: NonEmptyStr
    """Name."""
    replicas: int = Field(ge=0)
    """Desired replicas (spec.replicas)."""
    selector: StrMap = Field(default_factory=dict)
    """Pod selector."""
    template_image: str
    """Image of the pod template's first container."""


class ReplicationControllerUpserted(ContractModel):
    """A replication controller was created or changed."""

    rc: ReplicationController
    """The replication controller."""


class ServicePort(ContractModel):
    """A service port."""

    name: str | None = None
    """Port name (required by Kubernetes when there are several)."""
    port: Port
    """Port the service exposes."""
    protocol: str = "TCP"
    """``TCP`` or ``UDP``."""
    target_port: Port | str | None = None
    """Port (number or name) on the pods; null: same as ``port``."""


class Service(ContractModel):
    """A Kubernetes service."""

    namespace: NonEmptyStr
    """Namespace."""
    name: NonEmptyStr
    """Name."""
    selector: StrMap = Field(default_factory=dict)
    """Pod selector."""
    portal_ip: str | None = None
    """Cluster IP ("portal IP" in early Kubernetes); null for headless services."""
    ports: list[ServicePort] = Field(default_factory=list)
    """Ports."""


class ServiceUpserted(ContractModel):
    """A service was created or changed."""

    service: Service
    """The service."""


class EndpointAddress(ContractModel):
    """One ready address behind a service."""

    ip: NonEmptyStr
    """Pod IP."""
    pod: PodRef | None = None
    """The pod behind the address (targetRef), when given."""


class EndpointPort(ContractModel):
    """One endpoints port."""

    name: str | None = None
    """Port name."""
    port: Port
    """Port number."""
    protocol: str = "TCP"
    """``TCP`` or ``UDP``."""


class EndpointsObserved(ContractModel):
    """A service's endpoints as last observed (whole value, not a delta)."""

    namespace: NonEmptyStr
    """Namespace."""
    name: NonEmptyStr
    """Service name."""
    addresses: list[EndpointAddress] = Field(default_factory=list)
    """Ready addresses."""
    ports: list[EndpointPort] = Field(default_factory=list)
    """Ports."""


# ---- Kubernetes Events and k8sm ----


class InvolvedObject(ContractModel):
    """The object a Kubernetes Event is about."""

    kind: NonEmptyStr
    """``Pod``, ``Node``, ``ReplicationController``, ..."""
    name: NonEmptyStr
    """Object name."""
    uid: str | None = None
    """Object uid, when given."""


class K8sEventRecorded(ContractModel):
    """A Kubernetes Event (best-effort in Kubernetes, durable here)."""

    namespace: NonEmptyStr
    """Namespace of the Event."""
    involved: InvolvedObject
    """The object concerned."""
    reason: NonEmptyStr
    """``FailedScheduling``, ``FailedMount``, ``Evicted``, ``BackOff``, ... as written."""
    message: str
    """Message."""
    count: int = Field(default=1, ge=1)
    """How many times the Event was seen (Kubernetes folds repeats into one Event)."""


class SchedulerLeaderElected(ContractModel):
    """A k8sm scheduler instance became leader (leader election key changed)."""

    identity: NonEmptyStr
    """Identity of the new leader."""
    previous: str | None = None
    """Identity of the previous leader, when known."""


# ---- who wrote what (the API server's audit log) ----


class K8sWriteRecorded(ContractModel):
    """A successful write to an object kmevents keeps, as the API server's audit log records
    it: who made it (the envelope's ``actor``: the impersonated user when there is one), the
    verb and the object. The fold joins it to the entity the watch shows (its recent
    ``writers``), so a history says who deleted, scaled or bound it. Only writes that took effect are recorded (HTTP 2xx, not a dry run); the objects are
    pods (and their ``eviction`` and ``binding`` subresources, and ``bindings``),
    replication controllers (and ``scale``), services, endpoints, namespaces and nodes.
    Request and response bodies are never copied: at most the replica count of a scale
    and the node of a binding are read from them.
    """

    audit_id: NonEmptyStr
    """The request's ``auditID`` (one per request; every stage of it shares it)."""
    verb: NonEmptyStr
    """``create``, ``update``, ``patch``, ``delete`` or ``deletecollection``."""
    resource: NonEmptyStr
    """``pods``, ``bindings``, ``replicationcontrollers``, ``services``, ``endpoints``,
    ``namespaces`` or ``nodes``."""
    subresource: str | None = None
    """``eviction``, ``binding`` or ``scale``; null for the object itself."""
    namespace: str | None = None
    """Namespace of the object; null for cluster-scoped kinds (namespaces, nodes)."""
    name: str | None = None
    """Name of the object; null when the record does not give it (the create of an object
    named by ``generateName``, a ``deletecollection``)."""
    uid: str | None = None
    """The object's uid when the record gives it (``objectRef.uid``, the logged object); else null."""
    user: NonEmptyStr
    """The authenticated user (``user.username``), who acted as ``impersonated_user`` when set."""
    impersonated_user: str | None = None
    """The user the request impersonated (``impersonatedUser.username``); null without impersonation."""
    code: int = Field(ge=100, le=599)
    """HTTP status of the response (2xx)."""
    level: NonEmptyStr
    """Audit level of the record (``Metadata``, ``Request``, ``RequestResponse``): what it could carry."""
    replicas: int | None = Field(default=None, ge=0)
    """A scale or replication controller write: the desired replicas, when the body was logged."""
    target: str | None = None
    """A binding: the node the pod was bound to, when the body was logged."""
