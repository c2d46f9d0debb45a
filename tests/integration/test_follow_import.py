"""``kmevents follow`` and ``kmevents import`` as a user runs them, on the real Kafka + etcd and local
fake sources on 127.0.0.1: the quarantine topic holds what a parser failed on, a dry run touches
nothing, a stream that breaks on an unexpected error never ends as a clean run, and Kafka being
down is one line and exit 2."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import Settings, child_env
from kmevents.sources import run_import
from tests.integration.test_sources_live import serve
from tests.unit.sources._helpers import SAMPLES, load

pytestmark = pytest.mark.timeout(120)


def env_of(s: Settings) -> dict[str, str]:
    return {**os.environ, **child_env(s, cluster=True)}


def kmevents(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=90)


async def read_topic(s: Settings, topic: str, at_least: int = 0) -> list[Any]:
    """Every record of ``topic`` (one consumer, until ``at_least`` came and then a quiet fetch)."""
    c = kafka_adapter.consumer(s.kafka, topic)
    await c.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while True:
                batch = await c.getmany(timeout_ms=1500)
                if not batch and len(out) >= at_least:
                    return out
                for recs in batch.values():
                    out.extend(recs)
    finally:
        await c.stop()


async def ends(s: Settings, topic: str) -> int:
    return sum((await kafka_adapter.end_offsets(s.kafka, topic)).values())


def audit_log(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """The sample audit events as an audit log (one Event per line), with a line cut short and an Event that is
    not an object: the two records no parser can read."""
    items = load("k8s/audit_events.json")["items"]
    lines = [orjson.dumps(i) for i in items[:2]] + [b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"Resp'] \
        + [orjson.dumps(i) for i in items[2:]] + [b'["not", "an", "event"]']
    p = tmp_path / "audit.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p, lines


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- import -------------------------------------------------------------------------------

async def test_import_writes_the_events_to_kafka_and_the_records_it_cannot_read_to_the_quarantine_topic(
        isolated: Settings, tmp_path: Path) -> None:
    log, lines = audit_log(tmp_path)
    summary = await run_import("k8s-audit", [str(log)], isolated)
    t = summary.tally(str(log))
    assert t.records == len(lines) and t.quarantined == 2 and t.refused == 0
    stored = [orjson.loads(r.value) for r in await read_topic(isolated, isolated.kafka.events_topic, t.accepted)]
    assert len(stored) == t.accepted == t.events
    assert all(e["cluster"] == isolated.cluster and e["source"]["kind"] == "k8s.audit" for e in stored)
    quarantined = await read_topic(isolated, isolated.kafka.quarantine_topic, 2)
    by_origin = {orjson.loads(r.value)["origin"]: r for r in quarantined}
    assert set(by_origin) == {f"{log}:3", f"{log}:{len(lines)}"}
    cut = by_origin[f"{log}:3"]
    assert cut.key == f"file:{log}:2".encode()
    value = orjson.loads(cut.value)
    assert base64.b64decode(value["raw_b64"]) == lines[2] and "not JSON" in value["reason"]
    assert value["cluster"] == isolated.cluster and value["kind"] == "k8s.audit"
    not_an_event = orjson.loads(by_origin[f"{log}:{len(lines)}"].value)
    assert orjson.loads(base64.b64decode(not_an_event["raw_b64"])) == ["not", "an", "event"]
    assert summary.exit_code == 1


def test_import_on_the_command_line_prints_the_summary_and_exits_one_on_a_quarantined_record(
        isolated: Settings, tmp_path: Path) -> None:
    log, lines = audit_log(tmp_path)
    r = kmevents("import", "k8s-audit", str(log), "--format", "json", env=env_of(isolated))
    assert r.returncode == 1, r.stderr
    summary = json.loads(r.stdout)
    total = summary["total"]
    assert (total["in"], total["quarantined"], total["refused"]) == (len(lines), 2, 0)
    assert total["in"] == total["records_with_events"] + total["skipped"] + total["quarantined"] + total["unexplained"]
    assert summary["destination"] == isolated.kafka.events_topic
    assert summary["quarantine"] == isolated.kafka.quarantine_topic
    assert r.stderr.count("quarantined") == 2, "each quarantined record is logged once"
    assert asyncio.run(ends(isolated, isolated.kafka.events_topic)) == total["out"]


def test_a_dry_run_writes_the_files_and_touches_nothing(isolated: Settings, tmp_path: Path) -> None:
    log, lines = audit_log(tmp_path)
    out = tmp_path / "out.jsonl"
    r = kmevents("import", "k8s-audit", str(log), "--dry-run", "-o", str(out), env=env_of(isolated))
    assert r.returncode == 1, r.stderr
    events = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    quarantined = [orjson.loads(x) for x in Path(f"{out}.quarantine.jsonl").read_bytes().splitlines()]
    assert events and all(e["event_id"] and e["cluster"] == isolated.cluster for e in events)
    assert len(quarantined) == 2
    assert "dry run: events to" in r.stdout
    assert asyncio.run(ends(isolated, isolated.kafka.events_topic)) == 0
    assert asyncio.run(ends(isolated, isolated.kafka.quarantine_topic)) == 0
    # and it needs no server at all
    r2 = kmevents("import", "k8s-audit", str(log), "--dry-run", "-o", str(tmp_path / "again.jsonl"),
                  "--bootstrap", f"127.0.0.1:{closed_port()}", "--etcd", f"http://127.0.0.1:{closed_port()}",
                  env=env_of(isolated))
    assert r2.returncode == 1 and (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


# ---- follow -------------------------------------------------------------------------------

async def wait_for(predicate: Any, seconds: float = 60.0) -> None:
    async with asyncio.timeout(seconds):
        while not await predicate():
            await asyncio.sleep(0.3)


class Follow:
    """``kmevents follow ...`` in a subprocess, its output in files (a pipe nobody reads fills up)."""

    def __init__(self, tmp: Path, env: dict[str, str], *args: str) -> None:
        self.out, self.err = tmp / "follow.out", tmp / "follow.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "kmevents.cli", "follow", *args], env=env,
                                         stdout=out, stderr=err)

    async def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C, as a user stops it; the exit code, the summary and the log."""
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(self.proc.wait, 60)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def test_a_poll_the_parser_fails_on_is_quarantined_and_the_poller_goes_on(isolated: Settings,
                                                                                tmp_path: Path) -> None:
    # Before issue 16 the poll that could not be read ended the stream: the run reported its first
    # events, no error, exit 0, and the later polls were never read.
    polls = [load("mesos/master_state_1.json"), ["not", "a", "state"], load("mesos/master_state_2.json")]
    last = load("mesos/master_state_3.json")

    async def state(request: web.Request) -> web.Response:
        return web.json_response(polls.pop(0) if polls else last)

    app = web.Application()
    app.router.add_get("/master/state", state)
    runner, url = await serve(app)
    proc = Follow(tmp_path, env_of(isolated), "mesos-state", "--url", url, "--interval", "0.1", "--format", "json")
    try:
        async def past_the_third_poll() -> bool:  # the three states' events and more polls of the last
            return await ends(isolated, isolated.kafka.events_topic) >= 20

        await wait_for(past_the_third_poll)
        code, out, err = await proc.interrupt()
    finally:
        proc.kill()
        await runner.cleanup()
    assert code == 1, err
    total = json.loads(out)["total"]
    assert total["quarantined"] == 1 and total["refused"] == 0 and total["out"] >= 20
    stored = [orjson.loads(r.value) for r in await read_topic(isolated, isolated.kafka.events_topic, total["out"])]
    assert len(stored) == total["out"]
    assert [e["source"]["seq"] for e in stored if e["type"] == "cluster.snapshot_observed"][:3] == [0, 2, 3]
    (q,) = await read_topic(isolated, isolated.kafka.quarantine_topic, 1)
    value = orjson.loads(q.value)
    assert orjson.loads(base64.b64decode(value["raw_b64"])) == ["not", "a", "state"]
    assert q.key == b"master-state:1" and value["kind"] == "mesos.state"


async def test_follow_dry_run_writes_the_files_and_needs_no_server(tmp_path: Path) -> None:
    polls = [load("mesos/master_state_1.json"), {"message": "Service Unavailable"}, load("mesos/master_state_2.json")]

    async def state(request: web.Request) -> web.Response:
        return web.json_response(polls.pop(0) if polls else load("mesos/master_state_3.json"))

    app = web.Application()
    app.router.add_get("/master/state", state)
    runner, url = await serve(app)
    out = tmp_path / "state.jsonl"
    env = {**os.environ, "KMEVENTS_CLUSTER": "prod-1"}
    proc = Follow(tmp_path, env, "mesos-state", "--url", url, "--interval", "0.1", "--dry-run", "-o", str(out),
                  "--bootstrap", f"127.0.0.1:{closed_port()}", "--etcd", f"http://127.0.0.1:{closed_port()}")
    try:
        async def written() -> bool:
            return out.exists() and len(out.read_bytes().splitlines()) >= 20

        await wait_for(written)
        code, text, err = await proc.interrupt()
    finally:
        proc.kill()
        await runner.cleanup()
    lines = text.splitlines()
    assert lines[0] == f"kmevents follow mesos-state: dry run: events to {out}, quarantined records to {out}.quarantine.jsonl"
    events = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert {e["cluster"] for e in events} == {"prod-1"} and all(e["event_id"] for e in events)
    quarantined = [orjson.loads(x) for x in Path(f"{out}.quarantine.jsonl").read_bytes().splitlines()]
    assert len(quarantined) == 1 and quarantined[0]["key"] == "master-state:1"
    assert code == 1, err  # the quarantined poll


def fake_apiserver(watches: list[str]) -> web.Application:
    """Pods only. The first watch sends a pod, then a line that is JSON but not a watch event (a list),
    which the watch client does not expect; the next watches send the pod's later changes."""
    lines = (SAMPLES / "k8s/pods_watch.ndjson").read_text().splitlines()

    async def pods(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "99"},
                                      "items": []})
        watches.append(request.query["resourceVersion"])
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if len(watches) == 1:
            await resp.write(lines[0].encode() + b"\n")
            await resp.write(b'["an", "unexpected", "line"]\n')
        elif len(watches) == 2:
            for line in lines[1:]:
                await resp.write(line.encode() + b"\n")
        await asyncio.sleep(30 if len(watches) > 2 else 0.2)  # then an idle watch, as a quiet cluster's
        return resp

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    return app


async def test_a_watch_that_breaks_on_an_unexpected_error_goes_on_and_the_run_never_exits_zero(
        isolated: Settings, tmp_path: Path) -> None:
    # Before issue 16 the error escaped the watch client, the runner swallowed it, the run ended
    # with "accepted 1; refused 0" and exit 0, and the pod's later changes were never read.
    watches: list[str] = []
    runner, url = await serve(fake_apiserver(watches))
    proc = Follow(tmp_path, env_of(isolated), "k8s", "--url", url, "--resources", "pods", "--format", "json")
    try:
        async def later_changes_stored() -> bool:  # the sample watch gives 11 events, 1 before the break
            return await ends(isolated, isolated.kafka.events_topic) >= 11

        await wait_for(later_changes_stored)
        code, out, err = await proc.interrupt()
    finally:
        proc.kill()
        await runner.cleanup()
    assert code == 1, err
    pods = json.loads(out)["sources"]["k8s/pods"]
    stored = [orjson.loads(r.value) for r in await read_topic(isolated, isolated.kafka.events_topic, pods["out"])]
    last_rv = json.loads((SAMPLES / "k8s/pods_watch.ndjson").read_text().splitlines()[-1])["object"]["metadata"]
    assert any(e["type"] == "pod.deleted" or e["payload"].get("pod", {}).get("resource_version") ==
               last_rv["resourceVersion"] for e in stored), "the changes after the break were read"
    assert pods["stream_errors"] + pods["quarantined"] >= 1, pods
    if pods["stream_errors"]:
        assert pods["restarts"] >= 1 and "Traceback" in err  # logged with its traceback, once
    assert len(watches) >= 2


def test_follow_and_import_with_kafka_down_say_so_in_one_line_and_exit_two(tmp_path: Path) -> None:
    env = {**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": f"127.0.0.1:{closed_port()}"}
    r = kmevents("follow", "mesos-state", "--url", f"http://127.0.0.1:{closed_port()}", env=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("kmevents follow: cannot reach Kafka at 127.0.0.1:") and "kmevents stack up" in r.stderr
    assert r.stdout == ""
    r = kmevents("import", "k8s-audit", str(SAMPLES / "k8s/audit_events.json"), env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("kmevents import: cannot reach Kafka")


def test_etcd_down_is_one_line_and_exit_two_too(isolated: Settings) -> None:
    env = {**env_of(isolated), "KMEVENTS_ETCD__ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    r = kmevents("import", "k8s-audit", str(SAMPLES / "k8s/audit_events.json"), env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("kmevents import: cannot reach etcd at") and "partition map" in r.stderr
    assert asyncio.run(ends(isolated, isolated.kafka.events_topic)) == 0
