"""Enumerated names of the contract: Mesos v1 names and the envelope's closed sets.

Two kinds of enumerations live here:

- **Open** enumerations come from a source that may grow them (Mesos adds a
  ``TASK_*`` state or a ``REASON_*`` code; Kubernetes adds a pod phase). The
  contract keeps an unknown value of the right shape and reports a warning
  (``kmevents.contract.ContractWarning``); it never rejects one. They are
  plain ``frozenset`` values of known names plus a shape pattern.
- **Closed** enumerations belong to kmevents itself (source kinds, clocks,
  actor kinds): anything outside them is an error.

The tuples keep Mesos' documentation order so that generated schemas and the
README list them the way operators read them.
"""

from __future__ import annotations

from typing import Final, Literal

#: Mesos v1 ``TaskState`` names (mesos.v1.TaskState), in lifecycle order.
TASK_STATES: Final[tuple[str, ...]] = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)

#: Task states nothing leaves: Mesos' ``isTerminalState`` without ``TASK_LOST`` (a
#: partitioned agent that comes back turns LOST tasks into RUNNING again). Mesos
#: releases a task's resources in each of them. ``TASK_GONE_BY_OPERATOR`` is among
#: them as Mesos counts it (the operator asserted the agent is gone; mesos.proto warns
#: the operator may be wrong, and then a later RUNNING is a contradiction the fold
#: annotates rather than a resurrection). The one definition: the reducer, the
#: simulator and the state-snapshot adapter use it.
TERMINAL_TASK_STATES: Final[frozenset[str]] = frozenset(
    {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE",
     "TASK_GONE_BY_OPERATOR"}
)

#: Task states whose resources count as allocated and in which the task counts as running.
ACTIVE_TASK_STATES: Final[frozenset[str]] = frozenset(
    {"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})

#: Neither active nor terminal: the task may come back (LOST -> RUNNING happens), but it
#: does not count as allocated or running meanwhile.
PARKED_TASK_STATES: Final[frozenset[str]] = frozenset({"TASK_LOST", "TASK_UNREACHABLE", "TASK_UNKNOWN"})

#: States that only PARTITION_AWARE frameworks receive (Mesos >= 1.1).
PARTITION_AWARE_TASK_STATES: Final[frozenset[str]] = frozenset(
    {"TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
)

#: Mesos v1 ``TaskStatus.Source`` names.
TASK_SOURCES: Final[tuple[str, ...]] = ("SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR")

#: Mesos v1 ``TaskStatus.Reason`` names: the complete list of mesos.v1.TaskStatus.Reason.
TASK_REASONS: Final[tuple[str, ...]] = (
    "REASON_COMMAND_EXECUTOR_FAILED",
    "REASON_CONTAINER_LAUNCH_FAILED",
    "REASON_CONTAINER_LIMITATION",
    "REASON_CONTAINER_LIMITATION_DISK",
    "REASON_CONTAINER_LIMITATION_MEMORY",
    "REASON_CONTAINER_PREEMPTED",
    "REASON_CONTAINER_UPDATE_FAILED",
    "REASON_MAX_COMPLETION_TIME_REACHED",
    "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
    "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
    "REASON_EXECUTOR_TERMINATED",
    "REASON_EXECUTOR_UNREGISTERED",
    "REASON_FRAMEWORK_REMOVED",
    "REASON_GC_ERROR",
    "REASON_INVALID_FRAMEWORKID",
    "REASON_INVALID_OFFERS",
    "REASON_IO_SWITCHBOARD_EXITED",
    "REASON_MASTER_DISCONNECTED",
    "REASON_RECONCILIATION",
    "REASON_RESOURCES_UNKNOWN",
    "REASON_AGENT_DISCONNECTED",
    "REASON_AGENT_DRAINING",
    "REASON_AGENT_REMOVED",
    "REASON_AGENT_REMOVED_BY_OPERATOR",
    "REASON_AGENT_REREGISTERED",
    "REASON_AGENT_RESTARTED",
    "REASON_AGENT_UNKNOWN",
    "REASON_TASK_KILLED_DURING_LAUNCH",
    "REASON_TASK_CHECK_STATUS_UPDATED",
    "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
    "REASON_TASK_GROUP_INVALID",
    "REASON_TASK_GROUP_UNAUTHORIZED",
    "REASON_TASK_INVALID",
    "REASON_TASK_UNAUTHORIZED",
    "REASON_TASK_UNKNOWN",
)

#: Mesos v1 ``CheckInfo.Type`` names (the kind of a task check, schema v2 of
#: ``task.status_updated``).
CHECK_TYPES: Final[tuple[str, ...]] = ("UNKNOWN", "COMMAND", "HTTP", "TCP")

#: Kubernetes pod phases (core/v1 PodPhase).
POD_PHASES: Final[tuple[str, ...]] = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

#: Volume sources the contract names (others are kept as written).
VOLUME_KINDS: Final[tuple[str, ...]] = (
    "emptyDir",
    "nfs",
    "gcePersistentDisk",
    "rbd",
    "cephfs",
    "hostPath",
    "secret",
    "persistentVolumeClaim",
)

#: Kubernetes namespace phases.
NAMESPACE_PHASES: Final[tuple[str, ...]] = ("Active", "Terminating")

#: Shape patterns of the open enumerations (an unknown value must still fit).
TASK_STATE_PATTERN: Final = r"^TASK_[A-Z0-9_]+$"
TASK_SOURCE_PATTERN: Final = r"^SOURCE_[A-Z0-9_]+$"
TASK_REASON_PATTERN: Final = r"^REASON_[A-Z0-9_]+$"

# ---- closed sets (kmevents' own vocabulary) ----

SourceKind = Literal[
    "mesos.scheduler",
    "mesos.operator",
    "mesos.state",
    "k8s.watch",
    "k8s.audit",
    "k8sm",
    "simulator",
    "ingest",
]
"""Where an event came from: a Mesos API stream, a Kubernetes watch, k8sm, ..."""

Clock = Literal["agent", "master", "apiserver", "scheduler", "adapter"]
"""Which clock gave ``occurred_at``."""

ActorKind = Literal["user", "controller", "scheduler", "node", "master", "agent"]
"""Who caused an event."""

EvictionKind = Literal["node_pressure", "api", "node_controller"]
"""How a pod was evicted: the kubelet under node pressure, the eviction API,
or the node controller after the node went NotReady."""

NodeCondition = Literal["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]
"""The node pressure conditions the contract records."""
