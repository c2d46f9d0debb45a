"""Hypothesis strategies for every event type of the contract.

    from tests.strategies import events, event_of_type, event_streams, producer_inputs

- ``event_of_type(type_)`` / ``events()`` draw **canonical** events: exactly what
  ``validate_event`` returns (every optional field present, nulls kept,
  ``dedupe_key`` and ``event_id`` filled with the documented recipes).
- ``producer_inputs()`` draws ``(input, canonical)`` pairs: the input is what a
  producer may send (optional nulls omitted, no ids, ``occurred_at`` as epoch
  ms or ISO with an offset, v0 ``SLAVE`` spellings); ``canonical`` is what
  ingest must make of it.
- ``event_streams()`` draws one cluster's stream: increasing ``source.seq``,
  non-decreasing ``occurred_at``.
- ``task_lifecycle()`` draws a plausible history of one k8sm task (offer,
  launch, status updates with Mesos retries, pod events).

Ids come from small alphabets (4 agents, 8 offers, 6 tasks/pods...) so that
streams collide on entities, and they are consistent: entity ``n`` is task
``TASK_IDS[n]``, pod ``POD_NAMES[n]`` with uid ``POD_UIDS[n]`` in namespace
``NAMESPACES[n % 2]``; agent ``a`` is ``AGENT_IDS[a]`` on host ``AGENT_HOSTS[a]``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from kmevents.contract import (
    EVENT_TYPES,
    SCHEMA_VERSIONS,
    TASK_REASONS,
    TASK_STATES,
    dedupe_key,
    derive_event_id,
)

Draw = Callable[[st.SearchStrategy[Any]], Any]
Event = dict[str, Any]

# ---- id alphabets ----

CLUSTERS = ("prod-1", "dev-2")
MASTER_PREFIX = "20150708-150322-16777343-5050-1234"
MASTER_IDS = (f"{MASTER_PREFIX}", "20150708-160101-33554607-5050-2201")
MASTER_HOSTS = ("master-1.mesos", "master-2.mesos")
FRAMEWORK_IDS = (f"{MASTER_PREFIX}-0000", f"{MASTER_PREFIX}-0001")
FRAMEWORK_NAMES = ("Kubernetes", "marathon")
AGENT_IDS = tuple(f"{MASTER_PREFIX}-S{i}" for i in range(4))
AGENT_HOSTS = tuple(f"10.132.0.{11 + i}" for i in range(4))
OFFER_IDS = tuple(f"{MASTER_PREFIX}-O{i}" for i in range(8))
INVERSE_OFFER_IDS = tuple(f"{MASTER_PREFIX}-O{100 + i}" for i in range(3))
POD_UIDS = (
    "a4b5c6d7-0001-11e5-9f2c-42010af00002",
    "a4b5c6d7-0002-11e5-9f2c-42010af00002",
    "a4b5c6d7-0003-11e5-9f2c-42010af00002",
    "a4b5c6d7-0004-11e5-9f2c-42010af00002",
    "a4b5c6d7-0005-11e5-9f2c-42010af00002",
    "a4b5c6d7-0006-11e5-9f2c-42010af00002",
)
TASK_IDS = tuple(f"pod.{uid.replace('a4b5c6d7', 'e1f2a3b4')}" for uid in POD_UIDS)
POD_NAMES = ("nginx-9x2kq", "nginx-7mzt4", "redis-master-5qk1v", "frontend-xw8c2", "frontend-q2m9d", "dns-v8-3kd8r")
NAMESPACES = ("default", "kube-system")
RC_NAMES = ("nginx", "redis-master", "frontend")
SERVICE_NAMES = ("nginx", "redis-master", "kube-dns")
IMAGES = ("nginx:1.9", "redis:3.0", "gcr.io/google_samples/gb-frontend:v3", "gcr.io/google_containers/kube2sky:1.11")
EXECUTOR_ID = "6d3b3d5e2fa4d1a8_k8sm-executor"
SCHEDULER_IDS = ("k8sm-scheduler-1", "k8sm-scheduler-2")
ROLES = ("*", "k8s", "slave_public")
STATUS_UUIDS = tuple(
    base64.b64encode(bytes([i]) * 16).decode() for i in range(1, 9)
)  # Mesos gives the 16 uuid bytes base64-encoded in JSON

N_ENTITIES = len(POD_UIDS)
N_AGENTS = len(AGENT_IDS)
BASE_TIME = dt.datetime(2015, 7, 8, 15, 3, 22, tzinfo=dt.UTC)


def canonical_at(micros: int) -> str:
    """Canonical ``occurred_at`` for ``BASE_TIME`` plus ``micros``."""
    return (BASE_TIME + dt.timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_seconds(canonical: str) -> float:
    """Float epoch seconds (millisecond precision, like Mesos) of a canonical time."""
    when = dt.datetime.strptime(canonical, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return round(when.timestamp(), 3)


# ---- shared values ----

entities = st.integers(0, N_ENTITIES - 1)
agents = st.integers(0, N_AGENTS - 1)
offers = st.sampled_from(OFFER_IDS)
labels = st.dictionaries(
    st.sampled_from(("app", "tier", "version", "k8s.mesosphere.io/team")),
    st.sampled_from(("nginx", "frontend", "backend", "v1", "v2")),
    max_size=3,
)


def scalar(name: str, amount: float, role: str = "*") -> dict[str, Any]:
    return {"name": name, "role": role, "scalar": amount, "ranges": None}


def ports(ranges: list[list[int]], role: str = "*") -> dict[str, Any]:
    return {"name": "ports", "role": role, "scalar": None, "ranges": ranges}


@st.composite
def resources(draw: Draw, *, big: bool = False) -> list[dict[str, Any]]:
    """Mesos resources: cpus/mem/disk scalars and a ports range, with a role."""
    role = draw(st.sampled_from(ROLES))
    cpus = draw(st.sampled_from((0.1, 0.25, 0.5, 1.0) if not big else (4.0, 8.0, 16.0)))
    mem = draw(st.sampled_from((64.0, 128.0, 256.0, 512.0) if not big else (7680.0, 15360.0)))
    out = [scalar("cpus", cpus, role), scalar("mem", mem, role)]
    if draw(st.booleans()):
        out.append(scalar("disk", draw(st.sampled_from((32.0, 1024.0, 20480.0))), role))
    if big or draw(st.booleans()):
        begin = draw(st.sampled_from((31000, 31500, 32000)))
        out.append(ports([[begin, begin + (999 if big else 0)]], role))
    return out


def pod_ref(n: int) -> dict[str, Any]:
    return {"namespace": NAMESPACES[n % 2], "name": POD_NAMES[n], "uid": POD_UIDS[n]}


def master_info(i: int) -> dict[str, Any]:
    return {"id": MASTER_IDS[i], "hostname": MASTER_HOSTS[i], "ip": f"10.132.0.{2 + i}",
            "port": 5050, "version": "1.11.0"}


def _task_info(draw: Draw, n: int, a: int) -> dict[str, Any]:
    return {
        "task_id": TASK_IDS[n],
        "name": f"{POD_NAMES[n]}.{NAMESPACES[n % 2]}.pod",
        "framework_id": FRAMEWORK_IDS[0],
        "agent_id": AGENT_IDS[a],
        "executor_id": EXECUTOR_ID,
        "resources": draw(resources()),
        "labels": draw(labels),
        "pod": pod_ref(n),
        "data": draw(st.none() | st.just("eyJraW5kIjoiUG9kIn0=")),
    }


@st.composite
def check_status(draw: Draw) -> dict[str, Any] | None:
    kind = draw(st.sampled_from((None, "COMMAND", "HTTP", "TCP")))
    if kind is None:
        return None
    out: dict[str, Any] = {"type": kind, "command": None, "http": None, "tcp": None}
    if kind == "COMMAND":
        out["command"] = {"exit_code": draw(st.sampled_from((0, 1, None)))}
    elif kind == "HTTP":
        out["http"] = {"status_code": draw(st.sampled_from((200, 503, None)))}
    else:
        out["tcp"] = {"succeeded": draw(st.sampled_from((True, False, None)))}
    return out


@st.composite
def task_status(draw: Draw, n: int, a: int, at: str, *, state: str | None = None) -> dict[str, Any]:
    """A TaskStatus (schema v2) for entity ``n`` on agent ``a`` at time ``at``."""
    state = state or draw(st.sampled_from(TASK_STATES))
    reconciliation = draw(st.integers(0, 5)) == 0
    if reconciliation:
        return {
            "task_id": TASK_IDS[n], "state": state, "source": "SOURCE_MASTER",
            "reason": "REASON_RECONCILIATION", "message": "Reconciliation: Latest task state",
            "uuid": None, "healthy": None, "timestamp": epoch_seconds(at), "agent_id": AGENT_IDS[a],
            "executor_id": None, "labels": None, "data": None, "check_status": None,
        }
    source = draw(st.sampled_from(("SOURCE_EXECUTOR", "SOURCE_AGENT", "SOURCE_MASTER")))
    reason = draw(st.none() | st.sampled_from(TASK_REASONS))
    return {
        "task_id": TASK_IDS[n],
        "state": state,
        "source": source,
        "reason": reason,
        "message": draw(st.none() | st.sampled_from(("Container exited with status 137", "Task launched"))),
        "uuid": draw(st.sampled_from(STATUS_UUIDS)),
        "healthy": draw(st.none() | st.booleans()),
        "timestamp": epoch_seconds(at),
        "agent_id": AGENT_IDS[a],
        "executor_id": EXECUTOR_ID,
        "labels": draw(labels),
        "data": None,
        "check_status": draw(check_status()),
    }


VOLUME_SOURCES: dict[str, dict[str, Any]] = {
    "emptyDir": {"medium": ""},
    "nfs": {"server": "nfs.example.internal", "path": "/exports/www", "readOnly": False},
    "gcePersistentDisk": {"pdName": "redis-data", "fsType": "ext4"},
    "rbd": {"monitors": ["10.16.154.78:6789"], "image": "foo", "pool": "kube", "user": "admin"},
    "cephfs": {"monitors": ["10.16.154.78:6789"], "path": "/", "user": "admin"},
    "hostPath": {"path": "/var/log"},
}


@st.composite
def pod(draw: Draw, n: int) -> dict[str, Any]:
    a = draw(agents)
    phase = draw(st.sampled_from(("Pending", "Running", "Succeeded", "Failed")))
    bound = phase != "Pending" or draw(st.booleans())
    annotations: dict[str, str] = {}
    if bound:
        annotations = {
            "k8s.mesosphere.io/taskId": TASK_IDS[n],
            "k8s.mesosphere.io/slaveId": AGENT_IDS[a],
            "k8s.mesosphere.io/offerId": draw(offers),
            "k8s.mesosphere.io/bindingHost": AGENT_HOSTS[a],
            "k8s.mesosphere.io/executorId": EXECUTOR_ID,
        }
    kinds = draw(st.lists(st.sampled_from(sorted(VOLUME_SOURCES)), max_size=2, unique=True))
    restarts = draw(st.integers(0, 5))
    termination = None
    if restarts:
        termination = draw(st.sampled_from((
            {"reason": "OOMKilled", "exit_code": 137},
            {"reason": "Error", "exit_code": 1},
            {"reason": "Completed", "exit_code": 0},
        )))
    return {
        "namespace": NAMESPACES[n % 2],
        "name": POD_NAMES[n],
        "uid": POD_UIDS[n],
        "resource_version": draw(st.none() | st.integers(100, 9999).map(str)),
        "labels": {"app": POD_NAMES[n].rsplit("-", 1)[0]},
        "annotations": annotations,
        "phase": phase,
        "node_name": AGENT_HOSTS[a] if bound else None,
        "ready": phase == "Running" and draw(st.booleans()),
        "volumes": [{"name": f"vol-{k.lower()}", "kind": k, "source": VOLUME_SOURCES[k]} for k in kinds],
        "containers": [{
            "name": POD_NAMES[n].rsplit("-", 1)[0],
            "image": IMAGES[n % len(IMAGES)],
            "ready": phase == "Running",
            "restart_count": restarts,
            "last_termination": termination,
        }],
    }


# ---- payloads, one builder per type ----

PayloadBuilder = Callable[[Draw, str], dict[str, Any]]


def _framework(draw: Draw) -> dict[str, Any]:
    i = draw(st.integers(0, 1))
    return {"framework": {
        "id": FRAMEWORK_IDS[i], "name": FRAMEWORK_NAMES[i], "roles": [draw(st.sampled_from(ROLES))],
        "principal": draw(st.none() | st.just("k8sm")), "hostname": "10.132.0.5",
        "failover_timeout": draw(st.sampled_from((0.0, 604800.0))),
    }}


def _agent(draw: Draw) -> dict[str, Any]:
    a = draw(agents)
    return {"agent": {
        "id": AGENT_IDS[a], "hostname": AGENT_HOSTS[a], "port": 5051,
        "resources": draw(resources(big=True)),
        "attributes": draw(st.dictionaries(st.sampled_from(("rack", "zone")), st.sampled_from(("r1", "us-east1-b")))),
    }}


def _offer(draw: Draw) -> dict[str, Any]:
    a = draw(agents)
    return {"offer": {
        "id": draw(offers), "framework_id": FRAMEWORK_IDS[0], "agent_id": AGENT_IDS[a],
        "hostname": AGENT_HOSTS[a], "resources": draw(resources(big=True)),
    }}


def _inverse_offer(draw: Draw, at: str) -> dict[str, Any]:
    return {"inverse_offer": {
        "id": draw(st.sampled_from(INVERSE_OFFER_IDS)), "framework_id": FRAMEWORK_IDS[0],
        "agent_id": draw(st.none() | st.sampled_from(AGENT_IDS)),
        "unavailability": {"start": at, "duration_seconds": draw(st.none() | st.just(3600.0))},
    }}


def _task_added(draw: Draw) -> dict[str, Any]:
    task = _task_info(draw, draw(entities), draw(agents))
    task["state"] = draw(st.sampled_from(TASK_STATES))
    return {"task": task}


def _node(draw: Draw) -> dict[str, Any]:
    a = draw(agents)
    return {"node": {
        "name": AGENT_HOSTS[a], "ready": draw(st.booleans()),
        "conditions": {c: draw(st.booleans()) for c in ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")},
        "agent_id": draw(st.none() | st.just(AGENT_IDS[a])),
        "components": {c: draw(st.booleans()) for c in ("kubelet", "proxy", "cadvisor")},
    }}


def _rc(draw: Draw) -> dict[str, Any]:
    i = draw(st.integers(0, len(RC_NAMES) - 1))
    return {"rc": {
        "namespace": NAMESPACES[0], "name": RC_NAMES[i], "replicas": draw(st.integers(0, 5)),
        "selector": {"app": RC_NAMES[i]}, "template_image": IMAGES[i],
    }}


def _service(draw: Draw) -> dict[str, Any]:
    i = draw(st.integers(0, len(SERVICE_NAMES) - 1))
    return {"service": {
        "namespace": NAMESPACES[i // 2], "name": SERVICE_NAMES[i], "selector": {"app": SERVICE_NAMES[i]},
        "portal_ip": draw(st.none() | st.just(f"10.10.10.{10 + i}")),
        "ports": [{"name": None, "port": 80, "protocol": "TCP", "target_port": draw(st.sampled_from((80, "http", None)))}],
    }}


def _endpoints(draw: Draw) -> dict[str, Any]:
    i = draw(st.integers(0, len(SERVICE_NAMES) - 1))
    members = draw(st.lists(entities, max_size=3, unique=True))
    return {
        "namespace": NAMESPACES[i // 2], "name": SERVICE_NAMES[i],
        "addresses": [{"ip": f"172.17.0.{10 + n}", "pod": draw(st.none() | st.just(pod_ref(n)))} for n in members],
        "ports": [{"name": None, "port": 80, "protocol": "TCP"}],
    }


def _k8s_event(draw: Draw) -> dict[str, Any]:
    n = draw(entities)
    reason, message = draw(st.sampled_from((
        ("FailedScheduling", "Failed for reason PodExceedsFreeCPU and possibly others"),
        ("FailedMount", "Unable to mount volumes for pod: nfs: mount failed: exit status 32"),
        ("Evicted", "The node was low on resource: memory."),
        ("BackOff", "Back-off restarting failed docker container"),
    )))
    return {
        "namespace": NAMESPACES[n % 2],
        "involved": {"kind": "Pod", "name": POD_NAMES[n], "uid": draw(st.none() | st.just(POD_UIDS[n]))},
        "reason": reason, "message": message, "count": draw(st.integers(1, 20)),
    }


def _status(draw: Draw, at: str) -> dict[str, Any]:
    return {"framework_id": draw(st.none() | st.sampled_from(FRAMEWORK_IDS)),
            "status": draw(task_status(draw(entities), draw(agents), at))}


PAYLOADS: dict[str, PayloadBuilder] = {
    "master.elected": lambda d, at: {"master": master_info(d(st.integers(0, 1))),
                                     "previous_master_id": d(st.none() | st.sampled_from(MASTER_IDS))},
    "master.heartbeat_lost": lambda d, at: {"master_id": d(st.sampled_from(MASTER_IDS)),
                                            "missed": d(st.integers(1, 10)), "interval_seconds": 15.0},
    "master.error": lambda d, at: {"message": d(st.sampled_from(("Framework has been removed", "Framework failed over")))},
    "framework.registered": lambda d, at: _framework(d),
    "framework.reregistered": lambda d, at: _framework(d),
    "framework.removed": lambda d, at: {"framework_id": d(st.sampled_from(FRAMEWORK_IDS)),
                                        "reason": d(st.sampled_from(("teardown", "failover_timeout")))},
    "agent.added": lambda d, at: _agent(d),
    "agent.reregistered": lambda d, at: _agent(d),
    "agent.removed": lambda d, at: {"agent_id": d(st.sampled_from(AGENT_IDS)),
                                    "reason": d(st.sampled_from(("lost", "removed", "drained")))},
    "agent.draining": lambda d, at: {"agent_id": d(st.sampled_from(AGENT_IDS)),
                                     "max_grace_period_seconds": d(st.none() | st.just(30.0))},
    "agent.deactivated": lambda d, at: {"agent_id": d(st.sampled_from(AGENT_IDS))},
    "agent.reactivated": lambda d, at: {"agent_id": d(st.sampled_from(AGENT_IDS))},
    "offer.offered": lambda d, at: _offer(d),
    "offer.rescinded": lambda d, at: {"offer_id": d(offers)},
    "offer.declined": lambda d, at: {"offer_id": d(offers), "reason": d(st.sampled_from(("expired", "rescinded", "compat"))),
                                     "refuse_seconds": d(st.none() | st.just(5.0))},
    "offer.accepted": lambda d, at: {"offer_id": d(offers), "task_ids": d(st.lists(st.sampled_from(TASK_IDS), max_size=2, unique=True))},
    "offer.expired": lambda d, at: {"offer_id": d(offers)},
    "inverse_offer.offered": lambda d, at: _inverse_offer(d, at),
    "inverse_offer.rescinded": lambda d, at: {"inverse_offer_id": d(st.sampled_from(INVERSE_OFFER_IDS))},
    "inverse_offer.accepted": lambda d, at: {"inverse_offer_id": d(st.sampled_from(INVERSE_OFFER_IDS))},
    "inverse_offer.declined": lambda d, at: {"inverse_offer_id": d(st.sampled_from(INVERSE_OFFER_IDS))},
    "task.launched": lambda d, at: {"offer_id": d(offers), "task": _task_info(d, d(entities), d(agents))},
    "task.status_updated": _status,
    "task.added": lambda d, at: _task_added(d),
    "task.kill_requested": lambda d, at: {"framework_id": d(st.none() | st.sampled_from(FRAMEWORK_IDS)),
                                          "task_id": d(st.sampled_from(TASK_IDS)),
                                          "agent_id": d(st.none() | st.sampled_from(AGENT_IDS)),
                                          "reason": d(st.none() | st.just("pod deleted"))},
    "executor.added": lambda d, at: {"executor": {"executor_id": EXECUTOR_ID, "framework_id": FRAMEWORK_IDS[0],
                                                  "agent_id": d(st.sampled_from(AGENT_IDS))}},
    "executor.removed": lambda d, at: {"executor": {"executor_id": EXECUTOR_ID, "framework_id": FRAMEWORK_IDS[0],
                                                    "agent_id": d(st.sampled_from(AGENT_IDS))}},
    "role.updated": lambda d, at: {"role": {"name": d(st.sampled_from(ROLES)), "weight": d(st.sampled_from((1.0, 2.5))),
                                            "frameworks": d(st.lists(st.sampled_from(FRAMEWORK_IDS), max_size=2, unique=True))}},
    "pod.upserted": lambda d, at: {"pod": d(pod(d(entities)))},
    "pod.scheduled": lambda d, at: _pod_scheduled(d),
    "pod.evicted": lambda d, at: {"pod": _pod_by_name(d), **d(st.sampled_from((
        {"kind": "node_pressure", "reason": "Evicted", "message": "The node was low on resource: memory."},
        {"kind": "api", "reason": "Evicted", "message": None},
        {"kind": "node_controller", "reason": "NodeLost", "message": "Node 10.132.0.12 is NotReady"},
    )))},
    "pod.deleted": lambda d, at: {"pod": _pod_by_name(d), "reason": d(st.none() | st.just("scaled down"))},
    "namespace.upserted": lambda d, at: {"namespace": {"name": d(st.sampled_from(NAMESPACES)),
                                                       "phase": d(st.sampled_from(("Active", "Terminating"))),
                                                       "labels": {}}},
    "namespace.deleted": lambda d, at: {"name": d(st.sampled_from(NAMESPACES))},
    "node.upserted": lambda d, at: _node(d),
    "node.deleted": lambda d, at: {"name": d(st.sampled_from(AGENT_HOSTS))},
    "replication_controller.upserted": lambda d, at: _rc(d),
    "replication_controller.deleted": lambda d, at: {"namespace": NAMESPACES[0], "name": d(st.sampled_from(RC_NAMES))},
    "service.upserted": lambda d, at: _service(d),
    "service.deleted": lambda d, at: {"namespace": NAMESPACES[0], "name": d(st.sampled_from(SERVICE_NAMES))},
    "endpoints.observed": lambda d, at: _endpoints(d),
    "k8s_event.recorded": lambda d, at: _k8s_event(d),
    "k8s_write.recorded": lambda d, at: _k8s_write(d),
    "scheduler.leader_elected": lambda d, at: {"identity": d(st.sampled_from(SCHEDULER_IDS)),
                                               "previous": d(st.none() | st.sampled_from(SCHEDULER_IDS))},
    "cluster.snapshot_observed": lambda d, at: {"agents": d(st.integers(0, 4)), "frameworks": d(st.integers(0, 2)),
                                                "tasks": d(st.integers(0, 6)),
                                                "digest": "sha256:" + "ab" * 32},
    "source.gap": lambda d, at: _gap(d),
    "source.clock_skew": lambda d, at: {"stream_id": d(st.sampled_from(("sched-1", "watch-pods"))),
                                        "skew_seconds": d(st.sampled_from((-2.5, 0.75, 31.0)))},
}


def _pod_by_name(draw: Draw) -> dict[str, Any]:
    """A pod reference as a delete or an eviction carries it: by uid, or (an audit record at
    level Metadata) by namespace/name only."""
    ref = pod_ref(draw(entities))
    return draw(st.just(ref) | st.just({**ref, "uid": None}))


#: (resource, subresource, verb) of the writes an audit record attributes.
K8S_WRITES = (("pods", None, "create"), ("pods", None, "delete"), ("pods", "eviction", "create"),
              ("pods", "binding", "create"), ("replicationcontrollers", "scale", "update"),
              ("replicationcontrollers", None, "patch"), ("services", None, "delete"),
              ("endpoints", None, "update"), ("namespaces", None, "create"), ("nodes", None, "patch"),
              ("pods", None, "deletecollection"))


def _k8s_write(draw: Draw) -> dict[str, Any]:
    resource, sub, verb = draw(st.sampled_from(K8S_WRITES))
    n = draw(entities)
    ns: str | None = NAMESPACES[0]
    if resource == "pods":
        ns, name = NAMESPACES[n % 2], POD_NAMES[n]
    elif resource == "replicationcontrollers":
        name = draw(st.sampled_from(RC_NAMES))
    elif resource in ("services", "endpoints"):
        name = draw(st.sampled_from(SERVICE_NAMES))
    elif resource == "namespaces":
        ns, name = None, draw(st.sampled_from(NAMESPACES))
    else:
        ns, name = None, draw(st.sampled_from(AGENT_HOSTS))
    impersonated = draw(st.none() | st.just("alice"))
    return {
        "audit_id": f"{draw(st.integers(0, 10**6)):08d}-5d2c-4b1e-9a55-0242ac110002",
        "verb": verb, "resource": resource, "subresource": sub, "namespace": ns,
        "name": None if verb == "deletecollection" else name,
        "uid": POD_UIDS[n] if resource == "pods" and draw(st.booleans()) else None,
        "user": "admin" if impersonated else draw(st.sampled_from(("bob", "system:kube-scheduler"))),
        "impersonated_user": impersonated, "code": 201 if verb == "create" else 200,
        "level": draw(st.sampled_from(("Metadata", "Request", "RequestResponse"))),
        "replicas": draw(st.integers(0, 5)) if sub == "scale" else None,
        "target": draw(st.sampled_from(AGENT_HOSTS)) if sub == "binding" else None,
    }


def _pod_scheduled(draw: Draw) -> dict[str, Any]:
    n, a = draw(entities), draw(agents)
    return {"pod": pod_ref(n), "host": AGENT_HOSTS[a], "task_id": TASK_IDS[n], "agent_id": AGENT_IDS[a],
            "offer_id": draw(st.none() | offers)}


def _gap(draw: Draw) -> dict[str, Any]:
    expected = draw(st.integers(0, 1000))
    return {"stream_id": draw(st.sampled_from(("sched-1", "watch-pods"))), "expected_seq": expected,
            "got_seq": expected + draw(st.integers(1, 50))}


# ---- envelope ----

RAW_TYPES: dict[str, str] = {
    "master.elected": "SUBSCRIBED", "master.heartbeat_lost": "HEARTBEAT", "master.error": "ERROR",
    "framework.registered": "FRAMEWORK_ADDED", "framework.reregistered": "FRAMEWORK_UPDATED",
    "framework.removed": "FRAMEWORK_REMOVED", "agent.added": "AGENT_ADDED", "agent.reregistered": "AGENT_ADDED",
    "agent.removed": "AGENT_REMOVED", "agent.draining": "DRAIN_AGENT", "agent.deactivated": "DEACTIVATE_AGENT",
    "agent.reactivated": "REACTIVATE_AGENT", "offer.offered": "OFFERS", "offer.rescinded": "RESCIND",
    "offer.declined": "DECLINE", "offer.accepted": "ACCEPT", "offer.expired": "OFFER_EXPIRED",
    "inverse_offer.offered": "INVERSE_OFFERS", "inverse_offer.rescinded": "RESCIND_INVERSE_OFFER",
    "inverse_offer.accepted": "ACCEPT_INVERSE_OFFERS", "inverse_offer.declined": "DECLINE_INVERSE_OFFERS",
    "task.launched": "ACCEPT", "task.status_updated": "UPDATE", "task.added": "TASK_ADDED",
    "task.kill_requested": "KILL", "executor.added": "EXECUTOR_ADDED", "executor.removed": "EXECUTOR_REMOVED",
    "role.updated": "GET_ROLES", "pod.upserted": "MODIFIED", "pod.scheduled": "BINDING",
    "pod.evicted": "Evicted", "pod.deleted": "DELETED", "namespace.upserted": "ADDED",
    "namespace.deleted": "DELETED", "node.upserted": "MODIFIED", "node.deleted": "DELETED",
    "replication_controller.upserted": "MODIFIED", "replication_controller.deleted": "DELETED",
    "service.upserted": "ADDED", "service.deleted": "DELETED", "endpoints.observed": "MODIFIED",
    "k8s_event.recorded": "ADDED", "k8s_write.recorded": "ResponseComplete",
    "scheduler.leader_elected": "LEADER_CHANGED",
    "cluster.snapshot_observed": "GET_STATE", "source.gap": "GAP", "source.clock_skew": "CLOCK_SKEW",
}

_K8SM_TYPES = {"offer.expired", "pod.scheduled", "scheduler.leader_elected"}


def _origin(type_: str) -> tuple[str, str, str]:
    """(source kind, stream id, clock) typical of a type."""
    family = type_.split(".", 1)[0]
    if type_ in _K8SM_TYPES:
        return "k8sm", "k8sm-scheduler-1", "scheduler"
    if type_ == "task.status_updated":
        return "mesos.scheduler", "sched-1", "agent"
    if family in {"pod", "namespace", "node", "replication_controller", "service", "endpoints", "k8s_event"}:
        return "k8s.watch", f"watch-{family}", "apiserver"
    if family == "k8s_write":
        return "k8s.audit", "audit-1", "apiserver"
    if family in {"source", "cluster"}:
        return "ingest", "adapter-1", "adapter"
    if family in {"agent", "executor", "role", "framework"}:
        return "mesos.operator", "operator-1", "master"
    return "mesos.scheduler", "sched-1", "master"


def _correlation(type_: str, payload: dict[str, Any]) -> str | None:
    for path in (("pod", "uid"), ("task", "pod", "uid"), ("offer", "id"), ("offer_id",)):
        node: Any = payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str):
            return node
    return None


def finish(event: Event) -> Event:
    """Fill ``dedupe_key`` and ``event_id`` with the documented recipes (in place)."""
    event["dedupe_key"] = dedupe_key(event)
    event["event_id"] = derive_event_id(event["cluster"], event["dedupe_key"])
    return event


@st.composite
def event_of_type(
    draw: Draw,
    type_: str,
    *,
    cluster: str | None = None,
    micros: int | None = None,
    seq: int | None = None,
) -> Event:
    """A canonical event of ``type_`` (current schema version)."""
    at = canonical_at(micros if micros is not None else draw(st.integers(0, 86_400_000_000)))
    payload = PAYLOADS[type_](draw, at)
    kind, stream, clock = _origin(type_)
    event: Event = {
        "event_id": None,
        "type": type_,
        "schema_version": SCHEMA_VERSIONS[type_],
        "cluster": cluster or draw(st.sampled_from(CLUSTERS)),
        "source": {"kind": kind, "stream_id": stream, "seq": seq if seq is not None else draw(st.integers(0, 10_000))},
        "occurred_at": at,
        "clock": clock,
        "raw_type": RAW_TYPES[type_],
        "actor": draw(st.none() | st.sampled_from((
            {"kind": "scheduler", "name": "k8sm"}, {"kind": "user", "name": "alice"},
            {"kind": "controller", "name": "replication-controller"},
        ))),
        "correlation_id": _correlation(type_, payload),
        "causation_id": None,
        "dedupe_key": None,
        "redacted": [],
        "payload": payload,
    }
    return finish(event)


def events(*, cluster: str | None = None, types: tuple[str, ...] = EVENT_TYPES) -> st.SearchStrategy[Event]:
    """A canonical event of any of ``types`` (default: every type)."""
    return st.sampled_from(types).flatmap(lambda t: event_of_type(t, cluster=cluster))


@st.composite
def event_streams(
    draw: Draw,
    *,
    cluster: str = CLUSTERS[0],
    min_size: int = 1,
    max_size: int = 50,
    types: tuple[str, ...] = EVENT_TYPES,
) -> list[Event]:
    """One cluster's stream: ``source.seq`` increasing, ``occurred_at`` non-decreasing."""
    size = draw(st.integers(min_size, max_size))
    out: list[Event] = []
    micros = draw(st.integers(0, 3_600_000_000))
    for seq in range(size):
        micros += draw(st.integers(0, 5_000_000))
        out.append(draw(event_of_type(draw(st.sampled_from(types)), cluster=cluster, micros=micros, seq=seq)))
    return out


# ---- one task's history ----

_HAPPY = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")
_ENDINGS = (
    ("TASK_FINISHED", None),
    ("TASK_FAILED", "REASON_CONTAINER_LIMITATION_MEMORY"),
    ("TASK_KILLED", None),
    ("TASK_LOST", "REASON_AGENT_REMOVED"),
    ("TASK_UNREACHABLE", "REASON_AGENT_DISCONNECTED"),
    ("TASK_GONE", "REASON_AGENT_REMOVED_BY_OPERATOR"),
)


@st.composite
def task_lifecycle(draw: Draw, *, cluster: str = CLUSTERS[0], n: int | None = None) -> list[Event]:
    """Offer -> accept -> launch -> pod bound -> status updates (some retried, i.e.
    duplicated with the same uuid) -> maybe a terminal state, for one task."""
    n = draw(entities) if n is None else n
    a = draw(agents)
    offer_id = draw(offers)
    micros = draw(st.integers(0, 3_600_000_000))
    seq = 0
    out: list[Event] = []

    def add(type_: str, payload: dict[str, Any], clock: str = "master") -> None:
        nonlocal micros, seq
        micros += draw(st.integers(1_000, 2_000_000))
        event = draw(event_of_type(type_, cluster=cluster, micros=micros, seq=seq))
        event["payload"] = payload
        event["clock"] = clock
        event["correlation_id"] = _correlation(type_, payload)
        out.append(finish(event))
        seq += 1

    add("offer.offered", {"offer": {"id": offer_id, "framework_id": FRAMEWORK_IDS[0], "agent_id": AGENT_IDS[a],
                                    "hostname": AGENT_HOSTS[a], "resources": draw(resources(big=True))}})
    add("offer.accepted", {"offer_id": offer_id, "task_ids": [TASK_IDS[n]]})
    task = _task_info(draw, n, a)
    add("task.launched", {"offer_id": offer_id, "task": task})
    add("pod.scheduled", {"pod": pod_ref(n), "host": AGENT_HOSTS[a], "task_id": TASK_IDS[n],
                          "agent_id": AGENT_IDS[a], "offer_id": offer_id}, clock="scheduler")
    states = list(_HAPPY[: draw(st.integers(1, len(_HAPPY)))])
    ending = draw(st.none() | st.sampled_from(_ENDINGS))
    for i, state in enumerate(states + ([ending[0]] if ending else [])):
        reason = ending[1] if ending and i == len(states) else None
        status = {
            "task_id": TASK_IDS[n], "state": state, "source": "SOURCE_EXECUTOR", "reason": reason,
            "message": None, "uuid": STATUS_UUIDS[i % len(STATUS_UUIDS)], "healthy": None,
            "timestamp": epoch_seconds(canonical_at(micros)), "agent_id": AGENT_IDS[a],
            "executor_id": EXECUTOR_ID, "labels": {}, "data": None, "check_status": None,
        }
        for _retry in range(draw(st.integers(1, 2))):  # Mesos retries until acknowledged
            add("task.status_updated", {"framework_id": FRAMEWORK_IDS[0], "status": dict(status)}, clock="agent")
    return out


# ---- producer-side inputs ----


_FREE_FORM = {"labels", "annotations", "attributes", "selector", "source"}


def _strip_nulls(node: Any, draw: Draw, key: str | None = None) -> Any:
    if key in _FREE_FORM and isinstance(node, dict) and key != "source":
        return node
    if isinstance(node, dict):
        return {
            k: _strip_nulls(v, draw, k) for k, v in node.items()
            if not (v is None and draw(st.booleans()))
        }
    if isinstance(node, list):
        return [_strip_nulls(v, draw) for v in node]
    return node


@st.composite
def producer_inputs(draw: Draw, *, types: tuple[str, ...] = EVENT_TYPES) -> tuple[Event, Event]:
    """``(input, canonical)``: a producer's form of an event and what ingest makes of it."""
    canonical = draw(events(types=types))
    raw: Event = _strip_nulls(canonical, draw)
    raw.pop("dedupe_key", None)
    raw.pop("event_id", None)
    if not raw["redacted"] and draw(st.booleans()):
        del raw["redacted"]
    at = dt.datetime.strptime(canonical["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    form = draw(st.sampled_from(("canonical", "offset", "epoch_ms", "epoch_s")))
    if form == "offset":
        raw["occurred_at"] = at.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    elif form == "epoch_ms" and at.microsecond % 1000 == 0:
        raw["occurred_at"] = round(at.timestamp() * 1000)
    elif form == "epoch_s" and at.microsecond % 1000 == 0:
        raw["occurred_at"] = round(at.timestamp(), 3)
    if raw["type"] == "task.status_updated" and draw(st.booleans()):
        status = raw["payload"]["status"]
        if "agent_id" in status:
            status[draw(st.sampled_from(("slave_id", "slaveId")))] = status.pop("agent_id")
        for field in ("source", "reason"):
            if isinstance(status.get(field), str):
                status[field] = status[field].replace("AGENT", "SLAVE")
    return raw, canonical


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value, as keys and list indexes (for mutating one field of an event)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths_of(value, (*prefix, i))
    return out
