"""Planted secrets and planted non-secrets for the redaction tests (unit table and the
end-to-end test on Kafka + etcd).

``PLANTED`` holds the 22 placements of issue 14's hostile run, the 10 that passed
redaction then first, each as ``(name, event, marker, path)``: the producer
event as sent, the secret marker in it, and the path ``redacted`` must list.
``KEPT`` holds values that look secret-adjacent but are not secrets (a
Secret's *name*, ids, k8sm annotations): they must come through unchanged.
"""

from __future__ import annotations

from typing import Any

from kmevents.contract import SCHEMA_VERSIONS

CLUSTER = "redact-cases"
POD_UID = "0b5e7a52-7c1e-4d6b-9f3a-5d1c2e3f4a5b"
POD = {"namespace": "shop", "name": "token-rotator-7xk2p", "uid": POD_UID}


def event(type_: str, payload: dict[str, Any], *, seq: int, cluster: str = CLUSTER) -> dict[str, Any]:
    """A producer event (ids derived at ingest)."""
    return {
        "type": type_, "schema_version": SCHEMA_VERSIONS[type_], "cluster": cluster,
        "source": {"kind": "simulator", "stream_id": "redact-cases", "seq": seq},
        "occurred_at": f"2026-01-01T00:{seq // 60:02d}:{seq % 60:02d}Z", "clock": "master",
        "raw_type": "TEST", "payload": payload,
    }


def pod(*, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        volumes: list[dict[str, Any]] | None = None, termination: str | None = None) -> dict[str, Any]:
    return {"pod": {
        **POD, "labels": {"app": "shop", **(labels or {})},
        "annotations": {"k8s.mesosphere.io/taskId": "pod.5f2e", **(annotations or {})},
        "phase": "Running", "node_name": "agent-3.local", "ready": True, "volumes": volumes or [],
        "containers": [{"name": "shop", "image": "registry.local/shop:1.2", "ready": True, "restart_count": 1,
                        "last_termination": {"reason": termination, "exit_code": 1} if termination else None}],
    }}


def task(*, labels: dict[str, str] | None = None, data: str | None = None) -> dict[str, Any]:
    return {"offer_id": "O-1", "task": {
        "task_id": "pod.5f2e", "name": "shop.pod", "framework_id": "F-k8sm", "agent_id": "S-3",
        "executor_id": "k8sm-executor", "resources": [{"name": "cpus", "role": "*", "scalar": 0.5}],
        "labels": {"app": "shop", **(labels or {})}, "pod": POD, "data": data}}


def status(*, message: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": {"task_id": "pod.5f2e", "state": "TASK_FAILED", "source": "SOURCE_EXECUTOR",
                       "message": message, "uuid": "dXVpZA==", "timestamp": 1767225601.0, "agent_id": "S-3",
                       "labels": labels}}


def k8s_event(message: str, reason: str = "Failed") -> dict[str, Any]:
    return {"namespace": "shop", "involved": {"kind": "Pod", "name": POD["name"], "uid": POD_UID},
            "reason": reason, "message": message, "count": 1}


def _planted() -> list[tuple[str, dict[str, Any], str, str]]:
    m = "zq{}Secret7f3a9c"  # a unique marker per case
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        # the 10 that passed redaction in issue 14
        ("csi volumeAttributes.password", "pod.upserted", pod(volumes=[{
            "name": "data", "kind": "csi", "source": {
                "driver": "nas.csi.example.com", "volumeAttributes": {"server": "nas.local", "password": m.format(1)},
                "nodePublishSecretRef": {"name": "nas-creds"}}}]),
         "pod.volumes.0.source.volumeAttributes.password"),
        ("PASSWORD= in a pod.evicted message", "pod.evicted",
         {"pod": POD, "kind": "api", "reason": "Evicted",
          "message": f"evicted; container env was PASSWORD={m.format(2)} HOME=/root"}, "message"),
        ("password: x inside a message", "k8s_event.recorded",
         k8s_event(f"config rejected: password: {m.format(3)} (too short)"), "message"),
        ('"token":"x" inside a message', "k8s_event.recorded",
         k8s_event(f'webhook said {{"token":"{m.format(4)}","user":"bob"}}'), "message"),
        ("label DB_PASS", "pod.upserted", pod(labels={"DB_PASS": m.format(5)}), "pod.labels.DB_PASS"),
        ("label db-pass", "pod.upserted", pod(labels={"db-pass": m.format(6)}), "pod.labels.db-pass"),
        ("annotation example.com/creds", "pod.upserted", pod(annotations={"example.com/creds": m.format(7)}),
         "pod.annotations[example.com/creds]"),
        ("agent attributes.secret_token", "agent.added",
         {"agent": {"id": "S-3", "hostname": "agent-3.local", "attributes": {"rack": "r1", "secret_token": m.format(8)}}},
         "agent.attributes.secret_token"),
        ("annotation DB_PASS", "pod.upserted", pod(annotations={"DB_PASS": m.format(9)}), "pod.annotations.DB_PASS"),
        ("annotation db-pass", "pod.upserted", pod(annotations={"db-pass": m.format(10)}), "pod.annotations.db-pass"),
        # the 12 that were already caught: they must stay caught
        ("task data", "task.launched", task(data=f"eyJlbnYiOiJ7m{m.format(11)}"), "task.data"),
        ("task label db-password", "task.launched", task(labels={"db-password": m.format(12)}),
         "task.labels.db-password"),
        ("status message API_TOKEN=", "task.status_updated", status(message=f"start failed: API_TOKEN={m.format(13)}"),
         "status.message"),
        ("status label root-password", "task.status_updated", status(labels={"root-password": m.format(14)}),
         "status.labels.root-password"),
        ("last-applied-configuration", "pod.upserted",
         pod(annotations={"kubectl.kubernetes.io/last-applied-configuration": f'{{"env":"{m.format(15)}"}}'}),
         "pod.annotations[kubectl.kubernetes.io/last-applied-configuration]"),
        ("flexVolume options.password", "pod.upserted", pod(volumes=[{
            "name": "cifs", "kind": "flexVolume", "source": {"driver": "x/cifs", "options": {"password": m.format(16)}}}]),
         "pod.volumes.0.source.options.password"),
        ("annotation vault-token", "pod.upserted", pod(annotations={"vault-token": m.format(17)}),
         "pod.annotations.vault-token"),
        ("namespace label api-key", "namespace.upserted",
         {"namespace": {"name": "shop", "labels": {"api-key": m.format(18)}}}, "namespace.labels.api-key"),
        ("MYSQL_ROOT_PASSWORD= in a status message", "task.status_updated",
         status(message=f"bad env MYSQL_ROOT_PASSWORD={m.format(19)}"), "status.message"),
        ("Authorization: Bearer in a kill reason", "task.kill_requested",
         {"task_id": "pod.5f2e", "agent_id": "S-3", "reason": f"proxy sent Authorization: Bearer {m.format(20)}"},
         "reason"),
        ("URL password in a master error", "master.error",
         {"message": f"fetch https://deploy:{m.format(21)}@registry.local/v2/ failed"}, "message"),
        ("nested credentials in a volume source", "pod.upserted", pod(volumes=[{
            "name": "cfg", "kind": "projectedConfig", "source": {"sources": [{"config": {"auth": {"x-api-key": m.format(22)}}}]}}]),
         "pod.volumes.0.source.sources.0.config.auth"),
    ]
    return [(name, event(type_, payload, seq=i), m.format(i + 1), path)
            for i, (name, type_, payload, path) in enumerate(cases)]


PLANTED: list[tuple[str, dict[str, Any], str, str]] = _planted()

#: Values that must survive redaction, each in the event that carries it.
KEPT_VALUES = ("keep-db-creds-secret", "keep-default-token-x9f2k", "keep-pg-pass", "keep-sa-name", "keep-csi-creds",
               "pod.5f2e", "token-rotator-7xk2p", "ReplicationController/shop/token-rotator")
KEPT: list[dict[str, Any]] = [
    event("pod.upserted", pod(
        annotations={"kubernetes.io/created-by": "ReplicationController/shop/token-rotator",
                     "vault.example.com/secret-name": "keep-db-creds-secret"},
        volumes=[
            {"name": "default-token", "kind": "secret", "source": {"secretName": "keep-default-token-x9f2k"}},
            {"name": "pg", "kind": "pgVolume", "source": {"passwordSecretRef": {"name": "keep-pg-pass"},
                                                         "serviceAccountName": "keep-sa-name"}},
            {"name": "csi", "kind": "csi", "source": {"driver": "x", "nodePublishSecretRef": {"name": "keep-csi-creds"}}},
        ]), seq=100),
]
