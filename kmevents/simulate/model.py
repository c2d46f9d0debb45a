"""The simulated cluster's in-memory world: agents, frameworks, offers, tasks, pods, RCs, services.

Only live things are kept: a task leaves the world when it reaches a terminal
state, a pod when it is deleted, an offer when it is accepted, declined or
rescinded. So memory follows the cluster's size (agents, pods), never the
number of events simulated.

Determinism: nothing here iterates a ``set`` (string hashing is randomised per
process); collections are dicts (insertion order) and ``Bag``s (indexable, for
O(1) random choice and removal).
"""

from __future__ import annotations

import random
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Bag(Generic[T]):
    """A list with O(1) add, remove and uniform random choice; order is deterministic.

    Removal swaps the last element into the hole, so positions move but the
    sequence of operations fully determines the layout.
    """

    __slots__ = ("items", "_pos")

    def __init__(self) -> None:
        self.items: list[T] = []
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: T) -> bool:
        return id(item) in self._pos

    def add(self, item: T) -> None:
        if id(item) in self._pos:
            return
        self._pos[id(item)] = len(self.items)
        self.items.append(item)

    def discard(self, item: T) -> None:
        idx = self._pos.pop(id(item), None)
        if idx is None:
            return
        last = self.items.pop()
        if idx < len(self.items):
            self.items[idx] = last
            self._pos[id(last)] = idx

    def choice(self, rng: random.Random) -> T | None:
        items = self.items
        if not items:
            return None
        return items[int(rng.random() * len(items))]


class Master:
    __slots__ = ("id", "hostname", "ip", "info", "actor")

    def __init__(self, id: str, hostname: str, ip: str, version: str) -> None:
        self.id = id
        self.hostname = hostname
        self.ip = ip
        self.info = {"id": id, "hostname": hostname, "ip": ip, "port": 5050, "version": version}
        self.actor = {"kind": "master", "name": hostname}


class Framework:
    """A Mesos framework. ``kind`` is ``k8sm``, ``marathon`` or ``spark``."""

    __slots__ = (
        "idx", "id", "name", "kind", "roles", "principal", "hostname", "failover_timeout",
        "refuse_seconds", "want", "tasks", "info", "apps", "ends_at", "live", "counter",
    )

    def __init__(self, idx: int, id: str, name: str, kind: str, role: str, hostname: str,
                 failover_timeout: float, refuse_seconds: float) -> None:
        self.idx = idx
        self.id = id
        self.name = name
        self.kind = kind
        self.roles = [role]
        self.principal = name.split("-")[0]
        self.hostname = hostname
        self.failover_timeout = failover_timeout
        self.refuse_seconds = refuse_seconds
        self.want = 0
        """Tasks this framework still wants to launch (not for k8sm: pods drive it)."""
        self.tasks: dict[str, Task] = {}
        self.apps: list[tuple[str, str, float, float]] = []
        """(app id, image, cpus, mem) of the work a non-k8sm framework runs."""
        self.ends_at: int | None = None
        self.live = True
        self.counter = 0
        self.info = {
            "id": id, "name": name, "roles": list(self.roles), "principal": self.principal,
            "hostname": hostname, "failover_timeout": failover_timeout,
        }


class Agent:
    __slots__ = (
        "idx", "id", "hostname", "ip", "cpus", "mem", "disk", "used_cpus", "used_mem",
        "used_disk", "next_port", "tasks", "state", "offer", "refuse_until", "skew",
        "attributes", "info", "node_ready", "kubelet", "pressure", "executor", "pod_ip_next",
        "last_declined", "generation",
    )

    def __init__(self, idx: int, id: str, hostname: str, ip: str, cpus: float, mem: float,
                 disk: float, attributes: dict[str, str], skew: int, n_frameworks: int) -> None:
        self.idx = idx
        self.id = id
        self.hostname = hostname
        self.ip = ip
        self.cpus = cpus
        self.mem = mem
        self.disk = disk
        self.used_cpus = 0.0
        self.used_mem = 0.0
        self.used_disk = 0.0
        self.next_port = 31000
        self.tasks: dict[str, Task] = {}
        self.state = "active"
        """``active``, ``draining``, ``lost`` (removed, may come back) or ``gone``."""
        self.offer: Offer | None = None
        self.refuse_until = [0] * n_frameworks
        self.skew = skew
        """This agent's clock offset from the master's, in microseconds."""
        self.attributes = attributes
        self.node_ready = True
        self.kubelet = True
        self.pressure = False
        self.executor = False
        """Whether k8sm's executor runs here."""
        self.pod_ip_next = 2
        self.last_declined: tuple[str, int] | None = None
        self.generation = 0
        """Bumped at every loss/drain, so timers armed before it can tell they are stale."""
        self.info = {
            "id": id, "hostname": hostname, "port": 5051,
            "resources": [
                {"name": "cpus", "role": "*", "scalar": cpus, "ranges": None},
                {"name": "mem", "role": "*", "scalar": mem, "ranges": None},
                {"name": "disk", "role": "*", "scalar": disk, "ranges": None},
                {"name": "ports", "role": "*", "scalar": None, "ranges": [[31000, 32000]]},
            ],
            "attributes": attributes,
        }

    def free(self) -> tuple[float, float, float]:
        return (round(self.cpus - self.used_cpus, 3), round(self.mem - self.used_mem, 1),
                round(self.disk - self.used_disk, 1))


class Offer:
    __slots__ = ("id", "agent", "framework", "cpus", "mem", "disk", "event_id", "expires")

    def __init__(self, id: str, agent: Agent, framework: Framework, cpus: float, mem: float,
                 disk: float, event_id: str, expires: int) -> None:
        self.id = id
        self.agent = agent
        self.framework = framework
        self.cpus = cpus
        self.mem = mem
        self.disk = disk
        self.event_id = event_id
        self.expires = expires


class Task:
    """A Mesos task; for k8sm, ``pod`` is the pod it runs."""

    __slots__ = (
        "id", "name", "framework", "agent", "pod", "cpus", "mem", "disk", "state",
        "launch_eid", "info", "executor_id", "labels", "healthy", "lost_from", "last_status",
    )

    def __init__(self, id: str, name: str, framework: Framework, agent: Agent, pod: Pod | None,
                 cpus: float, mem: float, disk: float, executor_id: str | None,
                 labels: dict[str, str]) -> None:
        self.id = id
        self.name = name
        self.framework = framework
        self.agent = agent
        self.pod = pod
        self.cpus = cpus
        self.mem = mem
        self.disk = disk
        self.state = "TASK_STAGING"
        self.launch_eid: str | None = None
        self.info: dict[str, Any] = {}
        self.executor_id = executor_id
        self.labels = labels
        self.healthy: bool | None = None
        self.lost_from: str | None = None
        """The state a task was in when its agent was lost (LOST -> that state on return)."""
        self.last_status: dict[str, Any] | None = None
        """The latest reliable status update sent while its re-delivery is pending (else None):
        the only one Mesos may still retry."""


class Container:
    __slots__ = ("name", "image", "ready", "restarts", "last")

    def __init__(self, name: str, image: str) -> None:
        self.name = name
        self.image = image
        self.ready = False
        self.restarts = 0
        self.last: dict[str, Any] | None = None


class Pod:
    __slots__ = (
        "ns", "name", "uid", "ref", "labels", "annotations", "phase", "node", "ready", "volumes",
        "containers", "rc", "cpus", "mem", "task", "batch", "attempts", "ip", "deleting",
        "created_eid", "evicted", "services", "addr",
    )

    def __init__(self, ns: str, name: str, uid: str, labels: dict[str, str],
                 annotations: dict[str, str], volumes: list[dict[str, Any]],
                 containers: list[Container], rc: RC | None, cpus: float, mem: float,
                 batch: bool) -> None:
        self.ns = ns
        self.name = name
        self.uid = uid
        self.ref = {"namespace": ns, "name": name, "uid": uid}
        self.labels = labels
        self.annotations = annotations
        self.phase = "Pending"
        self.node: Agent | None = None
        self.ready = False
        self.volumes = volumes
        self.containers = containers
        self.rc = rc
        self.cpus = cpus
        self.mem = mem
        self.task: Task | None = None
        self.batch = batch
        self.attempts = 0
        self.ip: str | None = None
        self.addr: dict[str, Any] | None = None
        """The pod's entry in its services' endpoints, once it has an IP."""
        self.deleting = False
        self.created_eid: str | None = None
        self.evicted = False
        self.services: list[Service] = []


class RC:
    """A replication controller and the template of the pods it keeps alive."""

    __slots__ = (
        "ns", "name", "replicas", "selector", "labels", "image", "containers", "volumes",
        "cpus", "mem", "pods", "services", "system", "rolling", "max_replicas", "tag",
        "sync_armed", "deleted", "base",
    )

    def __init__(self, ns: str, name: str, replicas: int, containers: list[tuple[str, str]],
                 volumes: list[dict[str, Any]], cpus: float, mem: float, system: bool,
                 max_replicas: int) -> None:
        self.ns = ns
        self.name = name
        self.replicas = replicas
        self.base = replicas
        self.selector = {"app": name}
        self.labels = {"app": name}
        self.containers = containers
        self.image = containers[0][1]
        self.volumes = volumes
        self.cpus = cpus
        self.mem = mem
        self.pods: dict[str, Pod] = {}
        self.services: list[Service] = []
        self.system = system
        self.rolling = False
        self.max_replicas = max_replicas
        self.tag = 1
        self.sync_armed = False
        self.deleted = False


class Service:
    __slots__ = ("ns", "name", "selector", "portal_ip", "ports", "rcs", "dirty", "info", "deleted")

    def __init__(self, ns: str, name: str, rcs: list[RC], portal_ip: str,
                 ports: list[dict[str, Any]], selector: dict[str, str]) -> None:
        self.ns = ns
        self.name = name
        self.selector = selector
        self.portal_ip = portal_ip
        self.ports = ports
        self.rcs = rcs
        self.dirty = False
        self.deleted = False
        self.info = {"namespace": ns, "name": name, "selector": self.selector,
                     "portal_ip": portal_ip, "ports": ports}
