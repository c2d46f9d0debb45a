"""Fold rate and memory of the reducer (kmevents.reducer), from stored bytes.

    python -m bench.run fold [--quick]

Input: a deterministic, seeded log of catalogue-shaped events from
``generate`` below (the simulator had no generator API when this was written;
swap it in when it has). The mix is what a busy k8sm cluster writes: most
events are ``task.status_updated`` (including Mesos' re-deliveries of the
same status) and ``offer.*`` (offers declined, expired, rescinded, accepted),
then tasks launched, pods upserted/scheduled/deleted, a few agents removed
and re-registered, RC and service updates and endpoints.

Measured in one process, on the same list of bytes, alternating and keeping
the best of several rounds, in CPU time of this process (``time.process_time``:
the machine is shared with other engineers' builds and stacks, and wall time
there measured the neighbours as much as the code):

- fold: ``apply(state, orjson.loads(b), partition=0, offset=i)`` per record;
- baseline: ``orjson.loads(b)`` plus one dict update per record.

Both loops run inside ``kmevents.reducer.few_collections()``, the GC setting
``fold`` and the processors' worker use (the baseline keeps nothing alive, so
it hardly changes it).

Peak memory: a child process generates and folds N events on the fly and
reports its ``VmHWM`` (``ru_maxrss`` would carry the parent's peak across exec); a second child only generates, so the difference is
what the state costs. 1M events (and 10M when not quick).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

CLUSTER = "bench-1"
BASE = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
N_AGENTS = 400
FRAMEWORKS = (("fw-k8sm", "*"), ("fw-marathon", "marathon"))
NAMESPACES = ("default", "kube-system", "team-a", "team-b")
APPS = ("web", "api", "worker", "cache", "batch")

Event = dict[str, Any]


class _Log:
    """Envelope builder with a monotonic source clock."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.us = 0
        self.seq = 0
        self._sec = -1
        self._prefix = ""

    def at(self) -> str:
        self.us += self.rng.randrange(50, 2_000)
        sec, frac = divmod(self.us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = (BASE + dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{frac:06d}Z"

    def ev(self, type_: str, raw: str, payload: dict[str, Any], key: str, clock: str = "master",
           corr: str | None = None) -> Event:
        self.seq += 1
        return {
            "event_id": f"{self.seq:016x}", "type": type_, "schema_version": 1, "cluster": CLUSTER,
            "source": {"kind": "simulator", "stream_id": f"{CLUSTER}/mesos", "seq": self.seq},
            "occurred_at": self.at(), "clock": clock, "raw_type": raw, "actor": None,
            "correlation_id": corr, "causation_id": None, "dedupe_key": key, "redacted": [],
            "payload": payload,
        }


def _res(cpus: float, mem: float, disk: float, ports: list[list[int]] | None, role: str) -> list[dict[str, Any]]:
    out = [{"name": "cpus", "role": role, "scalar": cpus, "ranges": None},
           {"name": "mem", "role": role, "scalar": mem, "ranges": None},
           {"name": "disk", "role": role, "scalar": disk, "ranges": None}]
    if ports:
        out.append({"name": "ports", "role": role, "scalar": None, "ranges": ports})
    return out


def _task_script(log: _Log, rng: random.Random, n: int, agent: int) -> Iterator[Event]:
    """One k8sm task and its pod, from the offer to the deletion."""
    aid = f"S{agent}"
    fw, role = FRAMEWORKS[0] if n % 4 else FRAMEWORKS[1]
    oid = f"O-t{n}"
    tid = f"pod.{n:08x}-task"
    ns = NAMESPACES[n % len(NAMESPACES)]
    app = APPS[n % len(APPS)]
    name = f"{app}-{n:x}"
    uid = f"uid-{n:08x}"
    ref = {"namespace": ns, "name": name, "uid": uid}
    cpus, mem = rng.choice(((0.1, 128.0), (0.25, 256.0), (0.5, 512.0), (1.0, 1024.0)))
    port = 31000 + n % 1000
    yield log.ev("offer.offered", "OFFERS", {"offer": {
        "id": oid, "framework_id": fw, "agent_id": aid, "hostname": f"host-{agent}",
        "resources": _res(4.0, 8192.0, 20000.0, [[31000, 32000]], role)}}, f"offer.offered|{oid}", corr=oid)
    yield log.ev("offer.accepted", "ACCEPT", {"offer_id": oid, "task_ids": [tid]}, f"offer.accepted|{oid}", corr=oid)
    task = {"task_id": tid, "name": name, "framework_id": fw, "agent_id": aid, "executor_id": "k8sm-executor",
            "resources": _res(cpus, mem, 0.0, [[port, port]], role), "labels": {"app": app}, "pod": ref, "data": None}
    yield log.ev("task.launched", "ACCEPT", {"offer_id": oid, "task": task}, f"task.launched|{tid}", corr=uid)
    pod = {"namespace": ns, "name": name, "uid": uid, "labels": {"app": app}, "annotations": {
        "k8s.mesosphere.io/taskId": tid, "k8s.mesosphere.io/slaveId": aid}, "phase": "Pending",
        "node_name": None, "ready": False,
        "volumes": [{"name": "data", "kind": "emptyDir", "source": {}}],
        "containers": [{"name": app, "image": f"{app}:1", "ready": False, "restart_count": 0, "last_termination": None}]}
    yield log.ev("pod.upserted", "ADDED", {"pod": dict(pod)}, f"pod.upserted|{uid}|1", clock="apiserver", corr=uid)
    yield log.ev("pod.scheduled", "BINDING", {"pod": ref, "host": f"host-{agent}", "task_id": tid, "agent_id": aid,
                                              "offer_id": oid}, f"pod.scheduled|{uid}|{tid}", clock="scheduler", corr=uid)
    k = 0

    def status(state: str, reason: str | None = None, healthy: bool | None = None) -> Event:
        nonlocal k
        k += 1
        u = f"{n:08x}-{k:04x}-uuid"
        st = {"task_id": tid, "state": state, "source": "SOURCE_EXECUTOR", "reason": reason, "message": None,
              "uuid": u, "healthy": healthy, "timestamp": log.us / 1e6, "agent_id": aid,
              "executor_id": "k8sm-executor", "labels": None, "data": None}
        return log.ev("task.status_updated", "UPDATE", {"status": st},
                      f"task.status_updated|{aid}|{tid}|{u}", clock="agent", corr=uid)

    for state in ("TASK_STARTING", "TASK_RUNNING"):
        e = status(state)
        yield e
        if rng.random() < 0.05:
            yield e  # re-delivered: the agent retries until acknowledged
    pod.update(phase="Running", node_name=f"host-{agent}", ready=True)
    yield log.ev("pod.upserted", "MODIFIED", {"pod": dict(pod)}, f"pod.upserted|{uid}|2", clock="apiserver", corr=uid)
    for _ in range(rng.randrange(0, 6)):
        yield status("TASK_RUNNING", healthy=rng.random() < 0.97)
    r = rng.random()
    if r < 0.6:
        end, reason = "TASK_FINISHED", None
    elif r < 0.8:
        end, reason = "TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED"
    elif r < 0.95:
        yield log.ev("task.kill_requested", "KILL", {"task_id": tid, "agent_id": aid, "reason": "pod deleted"},
                     f"task.kill_requested|{tid}|x", corr=uid)
        yield status("TASK_KILLING")
        end, reason = "TASK_KILLED", None
    else:
        end, reason = "TASK_LOST", "REASON_AGENT_DISCONNECTED"
    e = status(end, reason)
    yield e
    if rng.random() < 0.05:
        yield e
    pod.update(phase="Succeeded" if end == "TASK_FINISHED" else "Failed", ready=False)
    yield log.ev("pod.upserted", "MODIFIED", {"pod": dict(pod)}, f"pod.upserted|{uid}|3", clock="apiserver", corr=uid)
    yield log.ev("pod.deleted", "DELETED", {"pod": ref, "reason": None}, f"pod.deleted|{uid}", clock="apiserver", corr=uid)


def _offer_script(log: _Log, rng: random.Random, n: int, agent: int) -> Iterator[Event]:
    """An offer nobody takes: declined (k8sm reasons), expired or rescinded."""
    oid = f"O-d{n}"
    fw, role = FRAMEWORKS[n % 2]
    yield log.ev("offer.offered", "OFFERS", {"offer": {
        "id": oid, "framework_id": fw, "agent_id": f"S{agent}", "hostname": f"host-{agent}",
        "resources": _res(2.0, 4096.0, 10000.0, [[31000, 32000]], role)}}, f"offer.offered|{oid}", corr=oid)
    r = rng.random()
    if r < 0.6:
        yield log.ev("offer.declined", "DECLINE", {"offer_id": oid, "reason": rng.choice(("expired", "compat")),
                                                   "refuse_seconds": 5.0}, f"offer.declined|{oid}", corr=oid)
    elif r < 0.85:
        yield log.ev("offer.expired", "TTL", {"offer_id": oid}, f"offer.expired|{oid}", clock="scheduler", corr=oid)
    else:
        yield log.ev("offer.rescinded", "RESCIND", {"offer_id": oid}, f"offer.rescinded|{oid}", corr=oid)


def generate(n_events: int, seed: int = 7) -> Iterator[Event]:
    """A deterministic stream of ``n_events`` catalogue-shaped events."""
    rng = random.Random(seed)
    log = _Log(rng)
    emitted = 0

    def out(e: Event) -> bool:
        nonlocal emitted
        emitted += 1
        return emitted >= n_events

    setup: list[Event] = [log.ev("master.elected", "SUBSCRIBED", {"master": {
        "id": "M1", "hostname": "master-1", "ip": "10.0.0.1", "port": 5050, "version": "1.11.0"},
        "previous_master_id": None}, "master.elected|M1")]
    for fid, role in FRAMEWORKS:
        setup.append(log.ev("framework.registered", "SUBSCRIBED", {"framework": {
            "id": fid, "name": fid, "roles": [role], "principal": None, "hostname": "sched",
            "failover_timeout": 600.0}}, f"framework.registered|{fid}"))
    for a in range(N_AGENTS):
        setup.append(log.ev("agent.added", "AGENT_ADDED", {"agent": {
            "id": f"S{a}", "hostname": f"host-{a}", "port": 5051,
            "resources": _res(32.0, 131072.0, 1e6, [[31000, 32000]], "*") + _res(8.0, 32768.0, 1e5, None, "marathon"),
            "attributes": {"rack": f"r{a % 10}"}}}, f"agent.added|S{a}"))
    for ns in NAMESPACES:
        for app in APPS:
            setup.append(log.ev("replication_controller.upserted", "ADDED", {"rc": {
                "namespace": ns, "name": app, "replicas": 50, "selector": {"app": app},
                "template_image": f"{app}:1"}}, f"rc|{ns}/{app}", clock="apiserver"))
            setup.append(log.ev("service.upserted", "ADDED", {"service": {
                "namespace": ns, "name": app, "selector": {"app": app}, "portal_ip": "10.1.0.1",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "target_port": 8080}]}},
                f"svc|{ns}/{app}", clock="apiserver"))
    for e in setup:
        yield e
        if out(e):
            return
    scripts: list[Iterator[Event]] = []
    n = 0
    removed: list[int] = []
    while True:
        r = rng.random()
        if r < 0.02 or not scripts:  # a new task
            n += 1
            scripts.append(_task_script(log, rng, n, rng.randrange(N_AGENTS)))
            continue
        if r < 0.13:  # a declined/expired/rescinded offer
            n += 1
            scripts.append(_offer_script(log, rng, n, rng.randrange(N_AGENTS)))
            continue
        if r < 0.1306:  # an agent lost and coming back later
            a = rng.randrange(N_AGENTS)
            e = log.ev("agent.removed", "AGENT_REMOVED", {"agent_id": f"S{a}", "reason": "lost"},
                       f"agent.removed|S{a}|{log.seq}")
            removed.append(a)
        elif r < 0.1312 and removed:
            a = removed.pop(0)
            e = log.ev("agent.reregistered", "AGENT_ADDED", {"agent": {
                "id": f"S{a}", "hostname": f"host-{a}", "port": 5051,
                "resources": _res(32.0, 131072.0, 1e6, [[31000, 32000]], "*"), "attributes": {}}},
                f"agent.reregistered|S{a}|{log.seq}")
        elif r < 0.135:
            ns, app = rng.choice(NAMESPACES), rng.choice(APPS)
            e = log.ev("endpoints.observed", "MODIFIED", {"namespace": ns, "name": app, "addresses": [],
                                                          "ports": []}, f"ep|{ns}/{app}|{log.seq}", clock="apiserver")
        else:
            i = rng.randrange(len(scripts))
            e = next(scripts[i], None)
            if e is None:
                scripts[i] = scripts[-1]
                scripts.pop()
                continue
        if out(e):
            yield e
            return
        yield e


def log_bytes(n_events: int, seed: int = 7) -> list[bytes]:
    dumps = orjson.dumps
    return [dumps(e) for e in generate(n_events, seed)]


def _fold(lines: list[bytes]) -> tuple[float, Any, int]:
    from kmevents.reducer import ClusterState, apply, few_collections

    st = ClusterState.empty(CLUSTER)
    loads = orjson.loads
    n_anns = 0
    with few_collections():
        t0 = time.process_time()
        for i, b in enumerate(lines):
            if apply(st, loads(b), partition=0, offset=i):
                n_anns += 1
        el = time.process_time() - t0
    return el, st, n_anns


def _baseline(lines: list[bytes]) -> float:
    from kmevents.reducer import few_collections

    loads = orjson.loads
    last: dict[str, Any] = {}
    with few_collections():
        t0 = time.process_time()
        for b in lines:
            e = loads(b)
            last[e["type"]] = e
        el = time.process_time() - t0
    return el


_CHILD = """
import sys, orjson
sys.path.insert(0, {root!r})
from bench.bench_fold import generate
n, fold = int(sys.argv[1]), sys.argv[2] == "fold"
if fold:
    from kmevents.reducer import ClusterState, apply
    st = ClusterState.empty("bench-1")
dumps, loads = orjson.dumps, orjson.loads
for i, e in enumerate(generate(n)):
    e = loads(dumps(e))
    if fold:
        apply(st, e, partition=0, offset=i)
        if not i % 4096:
            st.take_dirty()
sizes = {{k: st.count(k) for k in st.kinds}} if fold else {{}}
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(hwm, orjson.dumps(sizes).decode())
"""


def peak_rss_mib(n: int, fold: bool) -> tuple[float, dict[str, int]]:
    import pathlib

    root = str(pathlib.Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", _CHILD.format(root=root), str(n), "fold" if fold else "gen"],
                         check=True, capture_output=True, text=True).stdout.split(" ", 1)
    return int(out[0]) / 1024, json.loads(out[1])


def run(quick: bool) -> list[dict[str, Any]]:
    n = 100_000 if quick else 1_000_000
    lines = log_bytes(n)
    mb = sum(map(len, lines)) / 2**20
    best_fold = best_base = float("inf")
    rounds = 3
    gc.collect()
    for _ in range(rounds):
        best_base = min(best_base, _baseline(lines))
        el, st, n_anns = _fold(lines)
        best_fold = min(best_fold, el)
        del st
        gc.collect()
    fold_rate, base_rate = n / best_fold, n / best_base
    ratio = fold_rate / base_rate
    results = [{
        "name": f"fold from bytes ({n:,} events)",
        "figure": round(fold_rate, 1), "unit": "events/s",
        "baseline": "orjson.loads + one dict update per event, same bytes",
        "baseline_figure": round(base_rate, 1), "ratio": round(ratio, 3),
        "aim": ">= 250k events/s per core and >= 0.6 of baseline",
        "met": fold_rate >= 250_000 and ratio >= 0.6,
        "notes": f"{mb:.0f} MiB of records, avg {mb * 2**20 / n:.0f} B; best of {rounds} rounds, "
                 f"{n_anns:,} events annotated; shared machine",
    }]
    for size in ([1_000_000] if quick else [1_000_000, 10_000_000]):
        gen_rss, _ = peak_rss_mib(size, False)
        fold_rss, sizes = peak_rss_mib(size, True)
        results.append({
            "name": f"peak RSS folding {size:,} events",
            "figure": round(fold_rss, 1), "unit": "MiB",
            "baseline": "same child generating the events without folding",
            "baseline_figure": round(gen_rss, 1), "ratio": round(fold_rss / gen_rss, 3),
            "aim": None, "met": None,
            "notes": f"should plateau (bounded by Retention defaults, not log length); "
                     f"live entities at the end: {sizes}",
        })
    return results


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
