"""README's main job, `kmevents demo`, end to end on its own local stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.stacks import _free_ports


def test_the_demo_runs_the_whole_main_job_and_reports_verify_clean(tmp_path: Path) -> None:
    kport, eport = _free_ports(2)
    env = {**os.environ, "KMEVENTS_STACK__HOME": str(tmp_path / "home"),
           "KMEVENTS_STACK__KAFKA_PORT": str(kport), "KMEVENTS_STACK__KAFKA_CONTROLLER_PORT": str(kport + 1),
           "KMEVENTS_STACK__ETCD_PORT": str(eport), "KMEVENTS_STACK__ETCD_PEER_PORT": str(eport + 1),
           "KMEVENTS_STACK__KAFKA_HEAP": "512m",
           "KMEVENTS_KAFKA__BOOTSTRAP": f"127.0.0.1:{kport}", "KMEVENTS_ETCD__ENDPOINT": f"http://127.0.0.1:{eport}"}
    cli = [sys.executable, "-m", "kmevents.cli"]
    try:
        # A fixed cluster name: what the simulator does depends on it (a random one failed the
        # lost-task history below about once in N runs).
        r = subprocess.run([*cli, "demo", "--sim-events", "20000", "--cluster", "demo-pinned", "--format", "json"],
                           env=env,
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        out = orjson.loads(r.stdout)
        rt, p = out["round_trip"], out["pipeline"]
        assert rt["ok"] and rt["kafka_consumed"] == rt["kafka_produced"] == 10_000
        assert p["ingested"] == 20_000 and p["refused"] == 0
        assert p["entities"]["task"] > 100 and p["entities"]["agent"] > 10
        # one lost task's causal chain: launched, ran, lost with the agent
        hist = p["history"]
        assert hist["entity"] and hist["entity"].startswith("task/")
        types = [e["type"] for e in hist["events"]]
        assert "task.launched" in types and types.count("task.status_updated") >= 2
        lost = [e for e in hist["events"] if e["type"] == "task.status_updated"
                and any(r["condition"] == "TASK_LOST" for r in e["results"].values())]
        assert lost, types
        assert p["search"]["count"] == len(p["search"]["events"]) > 0
        assert all(h["event"]["type"] == "pod.evicted" for h in p["search"]["events"])
        assert p["verify"]["clean"] and p["verify"]["checked_keys"] > 1000
    finally:
        subprocess.run([*cli, "stack", "down", "--wipe"], env=env, capture_output=True, timeout=120)
