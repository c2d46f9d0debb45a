"""Writes the Mesos samples in this folder (run once; the files are committed).

Shapes follow the Mesos documentation: operator API (docs/operator-http-api.md,
include/mesos/v1/master/master.proto), scheduler API
(docs/scheduler-http-api.md, scheduler.proto), ``/master/state``
(docs/endpoints/master/state.md and the JSON model of src/common/http.cpp).
Secrets (env values, task/status data, secret-named labels, flags) are planted
so the ingest tests can prove that none reaches Kafka.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

HERE = Path(__file__).parent / "mesos"
M = "20150708-150322-16777343-5050-1234"
F0, F1, F2 = f"{M}-0000", f"{M}-0001", f"{M}-0002"
S = [f"{M}-S{i}" for i in range(5)]
EXEC = "6d3b3d5e2fa4d1a8_k8sm-executor"
SECRET_ENV = "s3cr3t-env-value-4711"
SECRET_DATA = "s3cr3t-pod-data-0815"
SECRET_LABEL = "s3cr3t-label-token-42"
SECRET_MSG = "s3cr3t-message-pw-99"
SECRET_FLAG = "s3cr3t-zk-password-7"
T = {i: f"pod.e1f2a3b4-000{i}-11e5-9f2c-42010af00002" for i in range(1, 7)}
MT3 = "webapp.7f3c2b1a-25e4-11e5-a6b4-0242ac110003"


def vid(v: str) -> dict:
    return {"value": v}


def scalar(name: str, v: float) -> dict:
    return {"name": name, "type": "SCALAR", "scalar": {"value": v}, "role": "*"}


def ports(b: int, e: int) -> dict:
    return {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": b, "end": e}]}, "role": "*"}


AGENT_RES = [scalar("cpus", 4.0), scalar("mem", 15360.0), scalar("disk", 102400.0), ports(31000, 32000)]


def agent_info(i: int) -> dict:
    return {"hostname": f"10.132.0.1{i}", "port": 5051, "id": vid(S[i]), "resources": AGENT_RES,
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": f"r{i % 2}"}},
                           {"name": "gen", "type": "SCALAR", "scalar": {"value": 2.0}}]}


def agent(i: int, t: int) -> dict:
    return {"agent_info": agent_info(i), "active": True, "version": "1.11.0",
            "pid": f"slave(1)@10.132.0.1{i}:5051", "registered_time": {"nanoseconds": t * 10**9},
            "total_resources": AGENT_RES, "allocated_resources": [], "offered_resources": []}


def fw_info(fid: str, name: str, timeout: float = 604800.0) -> dict:
    return {"user": "root", "name": name, "id": vid(fid), "failover_timeout": timeout,
            "checkpoint": True, "roles": ["*"], "hostname": "10.132.0.2", "principal": name.lower(),
            "capabilities": [{"type": "MULTI_ROLE"}]}


def framework(fid: str, name: str, t: int, timeout: float = 604800.0) -> dict:
    return {"framework_info": fw_info(fid, name, timeout), "active": True, "connected": True,
            "recovered": False, "registered_time": {"nanoseconds": t * 10**9}}


def status(tid: str, state: str, agent: int, ts: float, uuid: str | None, *, source: str = "SOURCE_EXECUTOR",
           reason: str | None = None, message: str | None = None, data: bool = False) -> dict:
    s = {"task_id": vid(tid), "state": state, "source": source, "agent_id": vid(S[agent]),
         "executor_id": vid(EXEC), "timestamp": ts, "container_status": {
             "network_infos": [{"ip_addresses": [{"ip_address": "172.17.0.3"}]}]}}
    if uuid:
        s["uuid"] = base64.b64encode(uuid.encode()).decode()
    if reason:
        s["reason"] = reason
    if message:
        s["message"] = message
    if data:
        pod = {"metadata": {"name": "x"}, "spec": {"containers": [{"env": [
            {"name": "DB_PASSWORD", "value": SECRET_DATA}]}]}}
        s["data"] = base64.b64encode(json.dumps(pod).encode()).decode()
    return s


def task(tid: str, name: str, fid: str, agent: int, state: str, statuses: list[dict],
         executor: str | None = EXEC, cpus: float = 0.25, mem: float = 64.0) -> dict:
    t = {"name": name, "task_id": vid(tid), "framework_id": vid(fid), "agent_id": vid(S[agent]),
         "state": state, "resources": [scalar("cpus", cpus), scalar("mem", mem)],
         "statuses": statuses, "status_update_state": state,
         "labels": {"labels": [{"key": "app", "value": name.split(".")[0]},
                               {"key": "vault-token", "value": SECRET_LABEL}]}}
    if executor:
        t["executor_id"] = vid(executor)
    return t


def recordio(events: list[dict]) -> bytes:
    out = b""
    for e in events:
        b = json.dumps(e).encode()
        out += str(len(b)).encode() + b"\n" + b
    return out


def operator() -> None:
    t1 = task(T[1], "nginx-9x2kq.default.pod", F0, 0, "TASK_RUNNING",
              [status(T[1], "TASK_RUNNING", 0, 1436367803.5, "u-t1-running")])
    t2 = task(T[2], "redis-5qk1v.default.pod", F0, 1, "TASK_RUNNING",
              [status(T[2], "TASK_RUNNING", 1, 1436367803.7, "u-t2-running")])
    t3 = task(MT3, "webapp.7f3c", F1, 1, "TASK_STAGING", [], executor=None, cpus=1.0, mem=256.0)
    get_state = {
        "get_tasks": {"tasks": [t1, t2, t3]},
        "get_executors": {"executors": [{"executor_info": {"executor_id": vid(EXEC), "framework_id": vid(F0),
                                         "command": {"value": "./executor", "environment": {"variables": [
                                             {"name": "API_TOKEN", "type": "VALUE", "value": SECRET_ENV}]}}},
                                         "agent_id": vid(S[0])}]},
        "get_frameworks": {"frameworks": [framework(F0, "Kubernetes", 1436367802),
                                          framework(F1, "marathon", 1436367802)]},
        "get_agents": {"agents": [agent(0, 1436367801), agent(1, 1436367801), agent(2, 1436367801)]},
    }
    t4_added = task(T[4], "web-1a2b3.default.pod", F0, 0, "TASK_STAGING", [])
    t4_added["command"] = {"value": "/bin/run", "environment": {"variables": [
        {"name": "API_TOKEN", "type": "VALUE", "value": SECRET_ENV}]}}
    stream = [
        {"type": "SUBSCRIBED", "subscribed": {"get_state": get_state, "heartbeat_interval_seconds": 15}},
        {"type": "HEARTBEAT"},
        {"type": "TASK_ADDED", "task_added": {"task": t4_added}},
        {"type": "TASK_UPDATED", "task_updated": {
            "framework_id": vid(F0), "state": "TASK_RUNNING",
            "status": status(T[4], "TASK_RUNNING", 0, 1436367810.25, "u-t4-running", data=True,
                             message=f"started; DB_PASSWORD={SECRET_MSG}")}},
        {"type": "TASK_UPDATED", "task_updated": {
            "framework_id": vid(F1), "state": "TASK_RUNNING",
            "status": status(MT3, "TASK_RUNNING", 1, 1436367811.0, "u-t3-running")}},
        {"type": "AGENT_ADDED", "agent_added": {"agent": agent(3, 1436367812)}},
        {"type": "FRAMEWORK_ADDED", "framework_added": {"framework": framework(F2, "spark", 1436367813)}},
        {"type": "HEARTBEAT"},
        {"type": "TASK_UPDATED", "task_updated": {
            "framework_id": vid(F0), "state": "TASK_FINISHED",
            "status": status(T[2], "TASK_FINISHED", 1, 1436367820.0, "u-t2-finished")}},
        {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": vid(S[2])}},
        {"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": {
            **framework(F1, "marathon", 1436367802, timeout=3600.0),
            "reregistered_time": {"nanoseconds": 1436367825 * 10**9}}}},
        {"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw_info(F2, "spark")}},
        {"type": "HEARTBEAT"},
    ]
    (HERE / "operator_subscribe.recordio").write_bytes(recordio(stream))
    # GET_STATE answered after the stream above (what the master reports then).
    fw1 = framework(F1, "marathon", 1436367802, timeout=3600.0)
    t4 = task(T[4], "web-1a2b3.default.pod", F0, 0, "TASK_RUNNING",
              [status(T[4], "TASK_RUNNING", 0, 1436367810.25, "u-t4-running")])
    t3r = task(MT3, "webapp.7f3c", F1, 1, "TASK_RUNNING",
               [status(MT3, "TASK_RUNNING", 1, 1436367811.0, "u-t3-running")], executor=None, cpus=1.0, mem=256.0)
    t2f = task(T[2], "redis-5qk1v.default.pod", F0, 1, "TASK_FINISHED",
               [status(T[2], "TASK_RUNNING", 1, 1436367803.7, "u-t2-running"),
                status(T[2], "TASK_FINISHED", 1, 1436367820.0, "u-t2-finished")])
    later = {"type": "GET_STATE", "get_state": {
        "get_tasks": {"tasks": [t1, t3r, t4], "completed_tasks": [t2f]},
        "get_executors": get_state["get_executors"],
        "get_frameworks": {"frameworks": [framework(F0, "Kubernetes", 1436367802), fw1],
                           "completed_frameworks": [framework(F2, "spark", 1436367813)]},
        "get_agents": {"agents": [agent(0, 1436367801), agent(1, 1436367801), agent(3, 1436367812)]},
    }}
    (HERE / "operator_get_state.json").write_text(json.dumps(later, indent=1))
    # Resubscription after a disconnection: T1 vanished, T3 killed meanwhile, T5 new,
    # agent S1 gone, S4 new.
    t5 = task(T[5], "db-77xk.default.pod", F0, 3, "TASK_RUNNING",
              [status(T[5], "TASK_RUNNING", 3, 1436367900.0, "u-t5-running")])
    t3k = task(MT3, "webapp.7f3c", F1, 1, "TASK_KILLED",
               [status(MT3, "TASK_KILLED", 1, 1436367890.0, "u-t3-killed", source="SOURCE_AGENT")],
               executor=None, cpus=1.0, mem=256.0)
    resub = [
        {"type": "SUBSCRIBED", "subscribed": {"heartbeat_interval_seconds": 15, "get_state": {
            "get_tasks": {"tasks": [t4, t5], "completed_tasks": [t2f, t3k]},
            "get_frameworks": {"frameworks": [framework(F0, "Kubernetes", 1436367802), fw1],
                               "completed_frameworks": [framework(F2, "spark", 1436367813)]},
            "get_agents": {"agents": [agent(0, 1436367801), agent(3, 1436367812), agent(4, 1436367880)]},
        }}},
        {"type": "HEARTBEAT"},
    ]
    (HERE / "operator_resubscribe.recordio").write_bytes(recordio(resub))
    (HERE / "master_info.json").write_text(json.dumps({"type": "GET_MASTER", "get_master": {"master_info": {
        "id": M, "ip": 16777343, "port": 5050, "pid": "master@127.0.0.1:5050", "hostname": "localhost",
        "version": "1.11.0", "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": 5050}}}}, indent=1))


def v0_task(tid: str, name: str, fid: str, agent: int, state: str, sts: list[tuple[str, float]],
            executor: str = EXEC) -> dict:
    return {"id": tid, "name": name, "framework_id": fid, "executor_id": executor, "slave_id": S[agent],
            "state": state, "resources": {"cpus": 0.25, "mem": 64.0, "disk": 0.0, "gpus": 0.0,
                                          "ports": "[31000-31001]"},
            "role": "*", "statuses": [{"state": s, "timestamp": ts, "container_status": {}} for s, ts in sts],
            "labels": [{"key": "app", "value": name.split("-")[0]},
                       {"key": "db-password", "value": SECRET_LABEL}]}


def v0_slave(i: int, active: bool = True) -> dict:
    res = {"disk": 102400.0, "mem": 15360.0, "gpus": 0.0, "cpus": 4.0, "ports": "[31000-32000]"}
    return {"id": S[i], "pid": f"slave(1)@10.132.0.1{i}:5051", "hostname": f"10.132.0.1{i}",
            "registered_time": 1436367801.5, "resources": res, "used_resources": res,
            "offered_resources": {}, "reserved_resources": {}, "unreserved_resources": res,
            "attributes": {"rack": f"r{i % 2}", "gen": 2}, "active": active, "version": "0.28.0"}


def v0_framework(fid: str, name: str, tasks: list, completed: list) -> dict:
    return {"id": fid, "name": name, "pid": f"scheduler-1@10.132.0.2:{40000 + int(fid[-1])}",
            "used_resources": {}, "offered_resources": {}, "capabilities": [], "hostname": "10.132.0.2",
            "webui_url": "", "active": True, "user": "root", "failover_timeout": 604800,
            "checkpoint": True, "role": "*", "registered_time": 1436367802.1, "unregistered_time": 0,
            "principal": name.lower(), "resources": {}, "tasks": tasks, "completed_tasks": completed,
            "offers": [], "executors": []}


def master_state() -> None:
    flags = {"cluster": "prod-1", "zk": f"zk://mesos:{SECRET_FLAG}@10.132.0.1:2181/mesos",
             "quorum": "2", "work_dir": "/var/lib/mesos"}
    base = {"version": "0.28.0", "git_sha": "9d5889b5a265849886a533965f4aefefd1fbd103",
            "build_date": "2016-02-15 10:00:28", "build_time": 1455559228, "build_user": "mesos-user",
            "start_time": 1455643643.42422, "elected_time": 1455643643.43457, "id": M,
            "pid": "master@10.132.0.1:5050", "hostname": "10.132.0.1", "cluster": "prod-1",
            "leader": "master@10.132.0.1:5050", "log_dir": "/var/log", "flags": flags}
    a1 = v0_task(T[1], "nginx-9x2kq", F0, 0, "TASK_RUNNING", [("TASK_STAGING", 1436367803.0),
                                                               ("TASK_RUNNING", 1436367803.5)])
    a2 = v0_task(T[2], "redis-5qk1v", F0, 1, "TASK_RUNNING", [("TASK_RUNNING", 1436367803.7)])
    s1 = {**base, "activated_slaves": 2, "deactivated_slaves": 0, "slaves": [v0_slave(0), v0_slave(1)],
          "frameworks": [v0_framework(F0, "Kubernetes", [a1, a2], [])], "completed_frameworks": [],
          "orphan_tasks": [], "unregistered_frameworks": []}
    a2f = v0_task(T[2], "redis-5qk1v", F0, 1, "TASK_FINISHED", [("TASK_RUNNING", 1436367803.7),
                                                                 ("TASK_FINISHED", 1436367820.0)])
    a3 = v0_task(T[3], "web-1a2b3", F0, 2, "TASK_STAGING", [])
    s2 = {**base, "activated_slaves": 2, "deactivated_slaves": 1,
          "slaves": [v0_slave(0), v0_slave(1, active=False), v0_slave(2)],
          "frameworks": [v0_framework(F0, "Kubernetes", [a1, a3], [a2f]),
                         v0_framework(F1, "marathon", [], [])],
          "completed_frameworks": [], "orphan_tasks": [], "unregistered_frameworks": []}
    a3r = v0_task(T[3], "web-1a2b3", F0, 2, "TASK_RUNNING", [("TASK_RUNNING", 1436367830.0)])
    a6 = v0_task(T[6], "orphan-0", F1, 2, "TASK_RUNNING", [("TASK_RUNNING", 1436367832.0)])
    s3 = {**base, "id": f"{M}-B", "pid": "master@10.132.0.5:5050", "hostname": "10.132.0.5",
          "leader": "master@10.132.0.5:5050", "elected_time": 1436367840.0,
          "activated_slaves": 2, "deactivated_slaves": 0, "slaves": [v0_slave(0), v0_slave(2)],
          "frameworks": [v0_framework(F0, "Kubernetes", [a1, a3r], [a2f])],
          "completed_frameworks": [], "orphan_tasks": [a6], "unregistered_frameworks": [F1]}
    for i, s in enumerate((s1, s2, s3), 1):
        (HERE / f"master_state_{i}.json").write_text(json.dumps(s, indent=1))


def scheduler() -> None:
    def offer(n: int, agent: int) -> dict:
        return {"id": vid(f"{M}-O{n}"), "framework_id": vid(F0), "agent_id": vid(S[agent]),
                "hostname": f"10.132.0.1{agent}", "url": {"scheme": "http", "address": {
                    "hostname": f"10.132.0.1{agent}", "ip": f"10.132.0.1{agent}", "port": 5051},
                    "path": "/slave(1)"},
                "resources": [scalar("cpus", 2.0), scalar("mem", 8192.0), scalar("disk", 51200.0),
                              ports(31000, 31100)],
                "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r0"}}]}
    events = [
        {"type": "SUBSCRIBED", "subscribed": {"framework_id": vid(F0), "heartbeat_interval_seconds": 15,
                                              "master_info": {"id": M, "ip": 16777343, "port": 5050,
                                                              "pid": "master@127.0.0.1:5050",
                                                              "hostname": "localhost", "version": "1.11.0"}}},
        {"type": "OFFERS", "offers": {"offers": [offer(11, 0), offer(12, 1)]}},
        {"type": "RESCIND", "rescind": {"offer_id": vid(f"{M}-O12")}},
        {"type": "UPDATE", "update": {"status": status(T[1], "TASK_STARTING", 0, 1436367803.2, "u-s1-starting")}},
        {"type": "UPDATE", "update": {"status": status(T[1], "TASK_RUNNING", 0, 1436367803.5, "u-s1-running",
                                                       data=True, message=f"API_TOKEN={SECRET_MSG}")}},
        {"type": "INVERSE_OFFERS", "inverse_offers": {"inverse_offers": [{
            "id": vid(f"{M}-O13"), "url": {"scheme": "http", "address": {"ip": "10.132.0.11", "port": 5051}},
            "framework_id": vid(F0), "agent_id": vid(S[1]),
            "unavailability": {"start": {"nanoseconds": 1436370000 * 10**9},
                               "duration": {"nanoseconds": 3600 * 10**9}}}]}},
        {"type": "RESCIND_INVERSE_OFFER", "rescind_inverse_offer": {"inverse_offer_id": vid(f"{M}-O13")}},
        {"type": "MESSAGE", "message": {"agent_id": vid(S[0]), "executor_id": vid(EXEC),
                                        "data": base64.b64encode(SECRET_DATA.encode()).decode()}},
        {"type": "HEARTBEAT"},
        {"type": "FAILURE", "failure": {"agent_id": vid(S[1]), "executor_id": vid(EXEC), "status": 137}},
        {"type": "FAILURE", "failure": {"agent_id": vid(S[1])}},
        {"type": "UPDATE", "update": {"status": status(T[2], "TASK_LOST", 1, 1436367850.0, None,
                                                       source="SOURCE_MASTER", reason="REASON_SLAVE_REMOVED",
                                                       message="Slave 10.132.0.11 removed")}},
        {"type": "ERROR", "error": {"message": "Framework has been removed"}},
    ]
    (HERE / "scheduler_events.recordio").write_bytes(recordio(events))
    (HERE / "scheduler_framework_info.json").write_text(json.dumps(fw_info(F0, "Kubernetes"), indent=1))


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    operator()
    master_state()
    scheduler()
