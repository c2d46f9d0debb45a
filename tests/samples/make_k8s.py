"""Writes the Kubernetes samples in this folder (run once; the files are committed).

Shapes follow the Kubernetes API documentation: watch streams are
newline-delimited ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object"}``
(API concepts, "Efficient detection of changes"), lists are ``<Kind>List``
with ``metadata.resourceVersion``, a expired watch ends with an ERROR event
carrying a ``Status`` with code 410, audit events are ``audit.k8s.io/v1``
``EventList``s as the webhook backend posts them. Pods carry k8sm's
annotations. Secrets are planted (env values, last-applied-configuration,
a token-named annotation, a Secret's data in an audit body, a password in an
Event message) so the ingest tests can prove none reaches Kafka.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

HERE = Path(__file__).parent / "k8s"
SECRET_ENV = "s3cr3t-k8s-env-31337"
SECRET_APPLIED = "s3cr3t-applied-config-555"
SECRET_ANNOTATION = "s3cr3t-annotation-token-77"
SECRET_AUDIT = "czNjcjN0LWF1ZGl0LWRhdGE="  # base64 of s3cr3t-audit-data
SECRET_EVENT = "s3cr3t-event-password-12"
M = "20150708-150322-16777343-5050-1234"


def pod(name: str, uid: str, rv: int, *, phase: str = "Pending", node: str | None = None, task: int | None = None,
        ready: bool = False, reason: str | None = None, message: str | None = None, restarts: int = 0) -> dict:
    applied = {"kind": "Pod", "spec": {"containers": [{"name": "app", "env": [
        {"name": "DB_PASSWORD", "value": SECRET_APPLIED}]}]}}
    ann = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied),
           "example.com/api-token": SECRET_ANNOTATION}
    if task is not None:
        ann.update({
            "k8s.mesosphere.io/taskId": f"pod.e1f2a3b4-000{task}-11e5-9f2c-42010af00002",
            "k8s.mesosphere.io/slaveId": f"{M}-S{task % 3}",
            "k8s.mesosphere.io/offerId": f"{M}-O{10 + task}",
            "k8s.mesosphere.io/bindingHost": f"10.132.0.1{task % 3}",
            "k8s.mesosphere.io/executorId": "6d3b3d5e2fa4d1a8_k8sm-executor"})
    p = {"kind": "Pod", "apiVersion": "v1",
         "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": str(rv),
                      "creationTimestamp": "2015-07-08T15:03:20Z", "labels": {"app": name.split("-")[0]},
                      "annotations": ann},
         "spec": {"volumes": [{"name": "data", "nfs": {"server": "10.132.0.50", "path": "/exports/data"}},
                              {"name": "scratch", "emptyDir": {}}],
                  "containers": [{"name": "app", "image": "nginx:1.9", "env": [
                      {"name": "API_TOKEN", "value": SECRET_ENV}],
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                  "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
         "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if node:
        p["spec"]["nodeName"] = node
    if phase != "Pending":
        p["status"]["containerStatuses"] = [{"name": "app", "image": "nginx:1.9", "ready": ready,
                                             "restartCount": restarts, "lastState": {}, "state": {}}]
    if reason:
        p["status"]["reason"] = reason
        p["status"]["message"] = message
    return p


def line(t: str, o: dict) -> str:
    return json.dumps({"type": t, "object": o})


def pods() -> None:
    u1, u2, u3 = (f"a4b5c6d7-000{i}-11e5-9f2c-42010af00002" for i in (1, 2, 3))
    stream = [
        line("ADDED", pod("nginx-9x2kq", u1, 100)),
        line("MODIFIED", pod("nginx-9x2kq", u1, 101, task=1)),
        line("MODIFIED", pod("nginx-9x2kq", u1, 102, phase="Running", node="10.132.0.11", task=1, ready=True)),
        line("ADDED", pod("redis-5qk1v", u2, 103, phase="Running", node="10.132.0.12", task=2, ready=True)),
        line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "104"}}),
        line("MODIFIED", pod("redis-5qk1v", u2, 105, phase="Failed", node="10.132.0.12", task=2,
                             reason="Evicted", message="The node was low on resource: memory.")),
        line("ADDED", pod("web-1a2b3", u3, 106, phase="Running", node="10.132.0.10", task=3, ready=True)),
        line("DELETED", pod("redis-5qk1v", u2, 107, phase="Failed", node="10.132.0.12", task=2,
                            reason="Evicted", message="The node was low on resource: memory.")),
    ]
    (HERE / "pods_watch.ndjson").write_text("\n".join(stream) + "\n")
    # What a later list reports (the source's own snapshot).
    later = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "107"}, "items": [
        pod("nginx-9x2kq", u1, 102, phase="Running", node="10.132.0.11", task=1, ready=True),
        pod("web-1a2b3", u3, 106, phase="Running", node="10.132.0.10", task=3, ready=True)]}
    (HERE / "pods_list.json").write_text(json.dumps(later, indent=1))
    # After a 410 Gone: web-1a2b3 was deleted while disconnected, nginx restarted, db new.
    u4 = "a4b5c6d7-0004-11e5-9f2c-42010af00002"
    relist = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "230"}, "items": [
        pod("nginx-9x2kq", u1, 210, phase="Running", node="10.132.0.11", task=1, ready=True, restarts=1),
        pod("db-77xk", u4, 220, phase="Running", node="10.132.0.10", task=4, ready=True)]}
    (HERE / "pods_relist.json").write_text(json.dumps(relist, indent=1))
    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Failure", "message": "too old resource version: 107 (200)",
                                        "reason": "Expired", "code": 410}}
    (HERE / "watch_gone.json").write_text(json.dumps(gone, indent=1))


def others() -> None:
    def node(name: str, rv: int, ready: bool, mem: bool = False) -> dict:
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "uid": f"n-{name}", "resourceVersion": str(rv),
                             "labels": {"kubernetes.io/hostname": name,
                                        "k8s.mesosphere.io/attribute-rack": "r0"}},
                "spec": {"externalID": name},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True" if ready else "Unknown",
                     "reason": "KubeletReady" if ready else "NodeStatusUnknown"},
                    {"type": "MemoryPressure", "status": "True" if mem else "False"},
                    {"type": "DiskPressure", "status": "False"}],
                    "addresses": [{"type": "InternalIP", "address": name}]}}
    nodes = [line("ADDED", node("10.132.0.10", 50, True)), line("ADDED", node("10.132.0.11", 51, True)),
             line("MODIFIED", node("10.132.0.11", 60, True, mem=True)),
             line("MODIFIED", node("10.132.0.11", 61, False)),
             line("DELETED", node("10.132.0.11", 62, False))]
    (HERE / "nodes_watch.ndjson").write_text("\n".join(nodes) + "\n")
    rc = {"kind": "ReplicationController", "apiVersion": "v1",
          "metadata": {"name": "nginx", "namespace": "default", "uid": "rc-1", "resourceVersion": "70"},
          "spec": {"replicas": 2, "selector": {"app": "nginx"}, "template": {
              "metadata": {"labels": {"app": "nginx"}},
              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.9",
                                       "env": [{"name": "API_TOKEN", "value": SECRET_ENV}]}]}}},
          "status": {"replicas": 2}}
    rc3 = copy.deepcopy(rc)
    rc3["metadata"]["resourceVersion"] = "71"
    rc3["spec"]["replicas"] = 3
    (HERE / "rcs_watch.ndjson").write_text("\n".join([line("ADDED", rc), line("MODIFIED", rc3)]) + "\n")
    svc = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "nginx", "namespace": "default", "uid": "svc-1", "resourceVersion": "80"},
           "spec": {"selector": {"app": "nginx"}, "clusterIP": "10.10.10.22", "type": "ClusterIP",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}}
    (HERE / "services_watch.ndjson").write_text(line("ADDED", svc) + "\n")
    ep = {"kind": "Endpoints", "apiVersion": "v1",
          "metadata": {"name": "nginx", "namespace": "default", "resourceVersion": "81"},
          "subsets": [{"addresses": [{"ip": "172.17.0.3", "targetRef": {
              "kind": "Pod", "namespace": "default", "name": "nginx-9x2kq",
              "uid": "a4b5c6d7-0001-11e5-9f2c-42010af00002", "resourceVersion": "102"}}],
              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    (HERE / "endpoints_watch.ndjson").write_text(line("ADDED", ep) + "\n")
    events = [
        {"kind": "Event", "apiVersion": "v1",
         "metadata": {"name": "redis-5qk1v.13f1a2b3c4d5e6f7", "namespace": "default", "resourceVersion": "90"},
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "redis-5qk1v",
                            "uid": "a4b5c6d7-0002-11e5-9f2c-42010af00002", "apiVersion": "v1"},
         "reason": "Evicted", "message": "The node was low on resource: memory.",
         "source": {"component": "kubelet", "host": "10.132.0.12"},
         "firstTimestamp": "2015-07-08T15:10:00Z", "lastTimestamp": "2015-07-08T15:10:00Z",
         "count": 1, "type": "Warning"},
        {"kind": "Event", "apiVersion": "v1",
         "metadata": {"name": "web-1a2b3.13f1a2b3c4d5e6f8", "namespace": "default", "resourceVersion": "91"},
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1a2b3",
                            "uid": "a4b5c6d7-0003-11e5-9f2c-42010af00002"},
         "reason": "FailedMount", "message": f"mount failed: DB_PASSWORD={SECRET_EVENT} rejected",
         "source": {"component": "kubelet", "host": "10.132.0.10"},
         "firstTimestamp": "2015-07-08T15:11:00Z", "lastTimestamp": "2015-07-08T15:12:00Z",
         "count": 3, "type": "Warning"},
        {"kind": "Event", "apiVersion": "v1",
         "metadata": {"name": "web-1a2b3.13f1a2b3c4d5e6f9", "namespace": "default", "resourceVersion": "92"},
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1a2b3"},
         "reason": "FailedScheduling", "message": "0/3 nodes are available: 3 Insufficient cpu.",
         "source": {"component": "default-scheduler"},
         "firstTimestamp": "2015-07-08T15:11:30Z", "lastTimestamp": "2015-07-08T15:11:30Z",
         "count": 1, "type": "Warning"},
    ]
    lines = [line("ADDED", events[0]), line("ADDED", events[1]), line("ADDED", events[2]),
             line("DELETED", events[0])]
    (HERE / "events_watch.ndjson").write_text("\n".join(lines) + "\n")


def audit() -> None:
    def ev(audit_id: str, verb: str, ref: dict, code: int, user: str, stamp: str, stage: str = "ResponseComplete",
           request: dict | None = None, response: dict | None = None) -> dict:
        e = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": audit_id,
             "stage": stage, "requestURI": f"/api/v1/namespaces/{ref.get('namespace', 'default')}/{ref['resource']}"
             f"/{ref.get('name', '')}" + (f"/{ref['subresource']}" if "subresource" in ref else ""),
             "verb": verb, "user": {"username": user, "groups": ["system:authenticated"]},
             "sourceIPs": ["10.132.0.2"], "userAgent": "kubectl/v1.20.0",
             "objectRef": {"apiVersion": "v1", **ref}, "responseStatus": {"metadata": {}, "code": code},
             "requestReceivedTimestamp": stamp,
             "stageTimestamp": stamp,
             "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}}
        if request is not None:
            e["requestObject"] = request
        if response is not None:
            e["responseObject"] = response
        return e
    items = [
        ev("a-1", "create", {"resource": "pods", "namespace": "default", "name": "nginx-9x2kq",
                             "subresource": "eviction"}, 201, "alice", "2015-07-08T15:20:00.123456Z",
           request={"kind": "Eviction", "apiVersion": "policy/v1",
                    "metadata": {"name": "nginx-9x2kq", "namespace": "default"}}),
        ev("a-2", "delete", {"resource": "pods", "namespace": "default", "name": "web-1a2b3"}, 200,
           "system:serviceaccount:kube-system:node-controller", "2015-07-08T15:21:00Z",
           response={"kind": "Pod", "apiVersion": "v1", "metadata": {
               "name": "web-1a2b3", "namespace": "default", "uid": "a4b5c6d7-0003-11e5-9f2c-42010af00002"},
               "spec": {"containers": [{"name": "app", "env": [{"name": "API_TOKEN", "value": SECRET_ENV}]}]}}),
        ev("a-3", "create", {"resource": "secrets", "namespace": "default", "name": "db"}, 201, "bob",
           "2015-07-08T15:22:00Z", request={"kind": "Secret", "apiVersion": "v1",
                                            "metadata": {"name": "db"}, "data": {"password": SECRET_AUDIT}}),
        ev("a-4", "delete", {"resource": "pods", "namespace": "default", "name": "db-77xk"}, 200, "bob",
           "2015-07-08T15:23:00Z", stage="RequestReceived"),
        ev("a-5", "delete", {"resource": "pods", "namespace": "default", "name": "nginx-9x2kq"}, 404, "bob",
           "2015-07-08T15:24:00Z"),
        ev("a-6", "delete", {"resource": "pods", "namespace": "default", "name": "db-77xk"}, 200, "bob",
           "2015-07-08T15:25:00Z"),
    ]
    (HERE / "audit_events.json").write_text(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                                        "metadata": {}, "items": items}, indent=1))


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    pods()
    others()
    audit()
