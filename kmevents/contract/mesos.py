"""Payloads of the Mesos-side families: master, framework, agent, offer,
inverse offer, task, executor, role.

One class per payload shape, named after the event type (``task.launched`` ->
``TaskLaunched``). Field names follow Mesos v1 in snake case; ids are plain
strings. Which raw Mesos event produces which type is in docs/event-catalogue.md.
"""

from __future__ import annotations

from pydantic import Field

from kmevents.contract.base import (
    AgentIdModel,
    ContractModel,
    NonEmptyStr,
    Port,
    Seconds,
    StrMap,
    TaskStateName,
    Timestamp,
)
from kmevents.contract.shapes import MasterInfo, PodRef, Resource, TaskStatus, TaskStatusV1

# ---- master ----


class MasterElected(ContractModel):
    """A master became leader (first ``SUBSCRIBED``, or the leading MasterInfo changed)."""

    master: MasterInfo
    """The new leading master."""
    previous_master_id: str | None = None
    """Id of the master that led before, when known."""


class MasterHeartbeatLost(ContractModel):
    """The subscriber missed the master's ``HEARTBEAT`` events."""

    master_id: NonEmptyStr
    """Master whose heartbeats stopped."""
    missed: int = Field(ge=1)
    """How many heartbeats in a row were missed."""
    interval_seconds: Seconds
    """The heartbeat interval the master announced."""


class MasterError(ContractModel):
    """The master sent ``ERROR`` (the scheduler must resubscribe)."""

    message: str
    """The master's error message."""


# ---- frameworks ----


class FrameworkInfo(ContractModel):
    """A framework as the master knows it (``mesos.v1.FrameworkInfo``, reduced)."""

    id: NonEmptyStr
    """Framework id assigned by the master."""
    name: str
    """Framework name ("Kubernetes" for k8sm)."""
    roles: list[NonEmptyStr] = Field(default_factory=list)
    """Roles the framework subscribes with (``*`` when none)."""
    principal: str | None = None
    """Authentication principal, when set."""
    hostname: str | None = None
    """Host the scheduler runs on, when set."""
    failover_timeout: Seconds = 0.0
    """Seconds the master waits for the scheduler to fail over before tearing it down."""


class FrameworkRegistered(ContractModel):
    """A framework registered (``SUBSCRIBED`` / operator ``FRAMEWORK_ADDED``) or
    re-registered (``FRAMEWORK_UPDATED``)."""

    framework: FrameworkInfo
    """The framework."""


class FrameworkRemoved(ContractModel):
    """A framework was torn down or its failover timeout expired."""

    framework_id: NonEmptyStr
    """Framework id."""
    reason: NonEmptyStr
    """``teardown``, ``failover_timeout`` or another reason as written."""


# ---- agents ----


class AgentInfo(ContractModel):
    """An agent (``mesos.v1.AgentInfo``, reduced)."""

    id: NonEmptyStr
    """Agent id (v0: slave id); a re-registering agent may get a new one."""
    hostname: NonEmptyStr
    """Agent hostname."""
    port: Port = 5051
    """Agent port."""
    resources: list[Resource] = Field(default_factory=list)
    """Total resources of the agent."""
    attributes: StrMap = Field(default_factory=dict)
    """Agent attributes (``rack``, ``zone``...), values as text."""


class AgentAdded(ContractModel):
    """An agent registered (``AGENT_ADDED``) or re-registered after a failover."""

    agent: AgentInfo
    """The agent."""


class AgentRemoved(AgentIdModel):
    """An agent was removed: lost (health checks failed), removed, or drained."""

    agent_id: NonEmptyStr
    """Agent id."""
    reason: NonEmptyStr
    """``lost``, ``removed``, ``drained`` or another reason as written."""


class AgentDraining(AgentIdModel):
    """An operator asked to drain an agent (``DRAIN_AGENT``)."""

    agent_id: NonEmptyStr
    """Agent id."""
    max_grace_period_seconds: Seconds | None = None
    """Longest kill grace period allowed while draining; null: the tasks' own."""


class AgentRef(AgentIdModel):
    """An agent was deactivated or reactivated (no offers while deactivated)."""

    agent_id: NonEmptyStr
    """Agent id."""


# ---- offers ----


class Offer(AgentIdModel):
    """One resource offer (``mesos.v1.Offer``, reduced)."""

    id: NonEmptyStr
    """Offer id."""
    framework_id: NonEmptyStr
    """Framework the offer is made to."""
    agent_id: NonEmptyStr
    """Agent whose resources are offered."""
    hostname: NonEmptyStr
    """Agent hostname."""
    resources: list[Resource]
    """Offered resources (cpus, mem, disk, ports ranges, with roles)."""


class OfferOffered(ContractModel):
    """An offer was made (one event per offer of an ``OFFERS`` event)."""

    offer: Offer
    """The offer."""


class OfferRef(ContractModel):
    """An offer was rescinded by the master or expired in k8sm's offer registry."""

    offer_id: NonEmptyStr
    """Offer id."""


class OfferDeclined(ContractModel):
    """The framework declined an offer (``DECLINE``)."""

    offer_id: NonEmptyStr
    """Offer id."""
    reason: NonEmptyStr
    """k8sm's reason: ``expired``, ``rescinded``, ``compat``, or another as written."""
    refuse_seconds: Seconds | None = None
    """``Filters.refuse_seconds`` sent with the decline; null: Mesos default (5 s)."""


class OfferAccepted(ContractModel):
    """The framework accepted an offer (``ACCEPT``)."""

    offer_id: NonEmptyStr
    """Offer id."""
    task_ids: list[NonEmptyStr] = Field(default_factory=list)
    """Tasks launched on the offer (empty for reserve-only operations)."""


class Unavailability(ContractModel):
    """A planned unavailability interval (``mesos.v1.Unavailability``)."""

    start: Timestamp
    """When the maintenance starts."""
    duration_seconds: Seconds | None = None
    """How long it lasts; null: indefinitely."""


class InverseOffer(AgentIdModel):
    """A request to give resources back (maintenance)."""

    id: NonEmptyStr
    """Inverse offer id (an OfferID)."""
    framework_id: NonEmptyStr
    """Framework asked to release resources."""
    agent_id: str | None = None
    """Agent concerned; null: all the framework's agents."""
    unavailability: Unavailability
    """The maintenance window."""


class InverseOfferOffered(ContractModel):
    """An inverse offer was made (``INVERSE_OFFERS``)."""

    inverse_offer: InverseOffer
    """The inverse offer."""


class InverseOfferRef(ContractModel):
    """An inverse offer was rescinded, accepted or declined."""

    inverse_offer_id: NonEmptyStr
    """Inverse offer id."""


# ---- tasks ----


class TaskInfo(AgentIdModel):
    """A task as launched (``mesos.v1.TaskInfo`` reduced, plus its pod for k8sm tasks)."""

    task_id: NonEmptyStr
    """Task id (k8sm: ``pod.<uuid>``)."""
    name: str
    """Task name."""
    framework_id: NonEmptyStr
    """Framework that launched the task."""
    agent_id: NonEmptyStr
    """Agent the task runs on."""
    executor_id: str | None = None
    """Executor id; null for command tasks."""
    resources: list[Resource] = Field(default_factory=list)
    """Resources the task uses."""
    labels: StrMap = Field(default_factory=dict)
    """Task labels."""
    pod: PodRef | None = None
    """The Kubernetes pod the task runs, for k8sm tasks."""
    data: str | None = None
    """Opaque task data (base64), when kept."""


class TaskLaunched(ContractModel):
    """The framework launched a task on an accepted offer (``ACCEPT`` + ``LAUNCH``)."""

    offer_id: str | None = None
    """Offer the task was launched on; null when not known."""
    task: TaskInfo
    """The task."""


class TaskStatusUpdatedV1(ContractModel):
    """A task status update (``UPDATE``), schema version 1."""

    status: TaskStatusV1
    """The status."""


class TaskStatusUpdated(ContractModel):
    """A task status update (``UPDATE``), schema version 2: the status may carry
    ``check_status``."""

    status: TaskStatus
    """The status."""


class TaskStatusUpdatedV3(ContractModel):
    """A task status update (``UPDATE``), schema version 3: the framework of the task, when the
    source knows it (a Mesos task id is unique only within its framework)."""

    framework_id: str | None = None
    """Framework of the task (the subscriber of a scheduler stream, the operator API's
    ``TASK_UPDATED.framework_id``); null when the source did not say (the fold then finds
    the task by its id among the tasks it knows)."""
    status: TaskStatus
    """The status."""


class TaskWithState(TaskInfo):
    """A task with its current state, as the operator API's ``TASK_ADDED`` gives it."""

    state: TaskStateName
    """Current Mesos TaskState."""


class TaskAdded(ContractModel):
    """The master reported a task (operator ``TASK_ADDED``, or a ``GET_STATE`` listing)."""

    task: TaskWithState
    """The task and its state."""


class TaskKillRequestedV1(AgentIdModel):
    """The framework asked to kill a task (``KILL``), schema version 1."""

    task_id: NonEmptyStr
    """Task id."""
    agent_id: str | None = None
    """Agent of the task, when the request named it."""
    reason: str | None = None
    """Why (k8sm: pod deleted, ...), when known."""


class TaskKillRequested(AgentIdModel):
    """The framework asked to kill a task (``KILL``), schema version 2: with the framework."""

    framework_id: str | None = None
    """Framework asking (the task's); null when the source did not say."""
    task_id: NonEmptyStr
    """Task id."""
    agent_id: str | None = None
    """Agent of the task, when the request named it."""
    reason: str | None = None
    """Why (k8sm: pod deleted, ...), when known."""


# ---- executors and roles ----


class ExecutorRef(AgentIdModel):
    """An executor on an agent."""

    executor_id: NonEmptyStr
    """Executor id (k8sm: one executor per agent and framework)."""
    framework_id: NonEmptyStr
    """Framework owning the executor."""
    agent_id: NonEmptyStr
    """Agent it runs on."""


class ExecutorChanged(ContractModel):
    """An executor was added or removed (operator ``EXECUTOR_ADDED`` / removal)."""

    executor: ExecutorRef
    """The executor."""


class RoleInfo(ContractModel):
    """A Mesos role (``GET_ROLES``)."""

    name: NonEmptyStr
    """Role name (``*`` is the default role)."""
    weight: float = Field(default=1.0, gt=0)
    """Allocation weight."""
    frameworks: list[NonEmptyStr] = Field(default_factory=list)
    """Ids of frameworks subscribed to the role."""


class RoleUpdated(ContractModel):
    """A role's weight or frameworks were observed."""

    role: RoleInfo
    """The role."""
