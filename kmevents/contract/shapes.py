"""Value shapes shared by several event types: Resource, MasterInfo, PodRef, TaskStatus.

They follow the Mesos v1 messages of the same name, flattened where Mesos wraps
a scalar in an object (``{"value": "..."}`` ids become plain strings; Mesos
``Labels`` become a string map).
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from kmevents.contract.base import (
    AgentIdModel,
    CheckTypeName,
    ContractModel,
    NonEmptyStr,
    Port,
    StrMap,
    TaskReasonName,
    TaskSourceName,
    TaskStateName,
)

#: The largest scalar amount accepted: 2**53 / 1000. Mesos keeps scalars in fixed point
#: with three decimals, and the fold's totals stay exact (order-independent) only while
#: amounts in thousandths fit a double's 53-bit mantissa; far above any real resource
#: (9e12 CPUs, or 9 exabytes of MB). ``kmevents.reducer.resources.MAX_AMOUNT`` is the same.
MAX_SCALAR = 2**53 / 1000

PortRange = Annotated[list[Port], Field(min_length=2, max_length=2)]
"""An inclusive ``[begin, end]`` port range."""


class Resource(ContractModel):
    """One Mesos resource (``mesos.v1.Resource``), scalar or ranges.

    ``{"name": "cpus", "role": "*", "scalar": 0.5, "ranges": null}``;
    ``{"name": "ports", "role": "*", "scalar": null, "ranges": [[31000, 32000]]}``.
    """

    name: NonEmptyStr
    """Resource name: ``cpus``, ``mem`` (MB), ``disk`` (MB), ``gpus``, ``ports``, ..."""
    role: NonEmptyStr = "*"
    """Role the resource is reserved for; ``*`` for unreserved."""
    scalar: float | None = Field(default=None, ge=0, le=MAX_SCALAR)
    """Amount, for scalar resources (cpus, mem, disk, gpus); at most ``MAX_SCALAR`` (2**53 / 1000)."""
    ranges: list[PortRange] | None = None
    """Inclusive ``[begin, end]`` ranges, for range resources (ports)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        check_resource_kind(self.scalar, self.ranges)
        return self


def check_resource_kind(scalar: float | None, ranges: list[list[int]] | None) -> None:
    """Exactly one of ``scalar`` and ``ranges``, each range ``begin <= end``.

    A function of the values rather than of the model: ingest's fast path
    (``kmevents.contract.fastpath``) runs the same check on a validated dict.
    """
    if (scalar is None) == (ranges is None):
        raise ValueError("exactly one of 'scalar' and 'ranges' must be set")
    if ranges is not None:
        for begin, end in ranges:
            if begin > end:
                raise ValueError(f"range [{begin}, {end}] has begin > end")


class MasterInfo(ContractModel):
    """The leading Mesos master (``mesos.v1.MasterInfo``)."""

    id: NonEmptyStr
    """Master id (changes at every master start)."""
    hostname: str | None = None
    """Master hostname, when known."""
    ip: str | None = None
    """Master IP address, dotted form."""
    port: Port = 5050
    """Master port."""
    version: str | None = None
    """Mesos version string of the master ("1.11.0")."""


class PodRef(ContractModel):
    """A reference to one Kubernetes pod."""

    namespace: NonEmptyStr
    """Pod namespace."""
    name: NonEmptyStr
    """Pod name."""
    uid: NonEmptyStr
    """Pod uid (metadata.uid): distinguishes pods that reuse a name."""


class CheckCommandStatus(ContractModel):
    """Result of a command check."""

    exit_code: int | None = None
    """Exit code of the check command; null when not available (timed out)."""


class CheckHttpStatus(ContractModel):
    """Result of an HTTP check."""

    status_code: int | None = None
    """HTTP status code; null when not available."""


class CheckTcpStatus(ContractModel):
    """Result of a TCP check."""

    succeeded: bool | None = None
    """Whether the TCP connection succeeded; null when not available."""


class CheckStatus(ContractModel):
    """A task check result (``mesos.v1.CheckStatusInfo``); new in task.status_updated v2."""

    type: CheckTypeName
    """Kind of check: ``COMMAND``, ``HTTP`` or ``TCP``."""
    command: CheckCommandStatus | None = None
    """Set when type is COMMAND."""
    http: CheckHttpStatus | None = None
    """Set when type is HTTP."""
    tcp: CheckTcpStatus | None = None
    """Set when type is TCP."""


class TaskStatusV1(AgentIdModel):
    """A Mesos task status (``mesos.v1.TaskStatus``) as schema version 1 stores it."""

    task_id: NonEmptyStr
    """Task id."""
    state: TaskStateName
    """Mesos v1 TaskState name."""
    source: TaskSourceName | None = None
    """Who produced the update: ``SOURCE_MASTER``, ``SOURCE_AGENT``, ``SOURCE_EXECUTOR``."""
    reason: TaskReasonName | None = None
    """Mesos v1 TaskStatus.Reason name, or null."""
    message: str | None = None
    """Human-readable detail."""
    uuid: str | None = None
    """Update uuid (base64, as Mesos JSON gives it); absent for unreliable updates
    (reconciliation, master-generated)."""
    healthy: bool | None = None
    """Health check verdict, when the task has a health check."""
    timestamp: float | None = None
    """The agent's (or master's) time of the update, float seconds since the epoch."""
    agent_id: str | None = None
    """Agent the task runs on (v0: ``slave_id``)."""
    executor_id: str | None = None
    """Executor of the task, when known."""
    labels: StrMap | None = None
    """Status labels; null (not empty) when the update did not carry them, e.g.
    reconciliation: then they must not overwrite what is known."""
    data: str | None = None
    """Opaque status data (base64); null when not carried."""


class TaskStatus(TaskStatusV1):
    """A Mesos task status as the current schema (version 2) stores it."""

    check_status: CheckStatus | None = None
    """Result of the task's general check (``TaskStatus.check_status``), or null when
    the task has no check or the update predates schema version 2."""
