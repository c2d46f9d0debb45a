"""``run_import`` into a dry run (no server): every kind's reader, the capture-time order of state dumps,
the quarantine file, and refusals exactly as ingest would make them. The same through Kafka is in
tests/integration/test_follow_import.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from kmevents.contract import validate_event
from kmevents.errors import UsageError
from kmevents.ingest import Ingestor
from kmevents.settings import Settings, load
from kmevents.sources import DryRunSink, StateParser, run_import
from kmevents.sources.recordio import encode
from kmevents.sources.summary import Summary
from tests.unit.sources._helpers import CLUSTER, SAMPLES, fixed_now, records
from tests.unit.sources._helpers import load as load_sample


def settings() -> Settings:
    # nothing listens there: a dry run must not need it
    return load({"kafka.bootstrap": "127.0.0.1:9", "etcd.endpoint": "http://127.0.0.1:9", "cluster": CLUSTER})


def dry(kind: str, paths: list[Path], out: Path, **kw: Any) -> tuple[Summary, list[dict[str, Any]], list[dict[str, Any]]]:
    s = settings()
    summary = asyncio.run(run_import(kind, [str(p) for p in paths], s, sink=DryRunSink(s, out), **kw))
    events = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    quarantined = [orjson.loads(x) for x in Path(f"{out}.quarantine.jsonl").read_bytes().splitlines()]
    return summary, events, quarantined


def audit_items() -> list[dict[str, Any]]:
    return load_sample("k8s/audit_events.json")["items"]


def test_an_audit_log_with_a_broken_line_gives_its_events_and_keeps_the_line(tmp_path: Path) -> None:
    items = audit_items()
    log = tmp_path / "audit.log"
    lines = [orjson.dumps(i) for i in items[:3]] + [b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","sta'] + \
        [orjson.dumps(i) for i in items[3:]] + [b"[1, 2]"]
    log.write_bytes(b"\n".join(lines) + b"\n")
    summary, events, quarantined = dry("k8s-audit", [log], tmp_path / "out.jsonl")
    t = summary.tally(str(log))
    assert t.records == len(items) + 2
    assert t.records == t.with_events + t.skipped_total + t.quarantined + t.unexplained
    assert t.quarantined == 2 and t.events == t.accepted == len(events) and t.refused == 0
    for e in events:  # what ingest would store: canonical, validated, with ids
        assert validate_event(e)[0]["event_id"] == e["event_id"]
    truncated = next(q for q in quarantined if q["origin"] == f"{log}:4")
    assert base64.b64decode(truncated["raw_b64"]) == lines[3]
    assert truncated["key"] == f"file:{log}:3" and "not JSON" in truncated["reason"]
    assert {q["origin"] for q in quarantined} == {f"{log}:4", f"{log}:{len(lines)}"}
    assert summary.exit_code == 1


def test_an_event_list_document_is_read_item_by_item(tmp_path: Path) -> None:
    summary, events, _ = dry("k8s-audit", [SAMPLES / "k8s/audit_events.json"], tmp_path / "out.jsonl")
    t = summary.tally(str(SAMPLES / "k8s/audit_events.json"))
    assert t.records == len(audit_items()) and t.accepted == len(events)


def test_dry_run_refuses_exactly_what_ingest_refuses(tmp_path: Path) -> None:
    item = dict(audit_items()[1])  # the node controller's pod delete
    item["stageTimestamp"] = "2099-01-01T00:00:00.000000Z"  # ahead of the ingest clock's horizon
    log = tmp_path / "future.log"
    log.write_bytes(orjson.dumps(item) + b"\n")
    summary, events, _ = dry("k8s-audit", [log], tmp_path / "out.jsonl")
    t = summary.tally(str(log))
    assert t.events >= 1 and t.refused == t.events and events == []
    assert all("ahead of the ingest clock" in r for r in t.refusals)
    assert summary.exit_code == 1


def write_dump(path: Path, sample: str, date: str | None, mtime: float) -> None:
    head = f"HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\n\r\n".encode() if date else b""
    path.write_bytes(head + (SAMPLES / sample).read_bytes())
    os.utime(path, (mtime, mtime))


def test_state_dumps_are_diffed_in_capture_order_like_the_poller(tmp_path: Path) -> None:
    d = tmp_path / "dumps"
    d.mkdir()
    # names in the opposite order of the capture times (Date headers): the times decide
    write_dump(d / "a.json", "mesos/master_state_3.json", "Wed, 08 Jul 2015 15:07:00 GMT", 1)
    write_dump(d / "b.json", "mesos/master_state_2.json", "Wed, 08 Jul 2015 15:06:00 GMT", 1)
    write_dump(d / "c.json", "mesos/master_state_1.json", "Wed, 08 Jul 2015 15:05:00 GMT", 1)
    (d / "d.json").write_bytes(b"<html><body>503 Service Unavailable: no leader</body></html>\n")
    os.utime(d / "d.json", (1436368000, 1436368000))
    standby = load_sample("mesos/master_state_1.json") | {"frameworks": [], "slaves": [], "pid": "master@10.0.0.2:5050"}
    (d / "e.json").write_bytes(orjson.dumps(standby))
    os.utime(d / "e.json", (1436368100, 1436368100))
    summary, events, quarantined = dry("mesos-state", [d], tmp_path / "out.jsonl")

    poller = StateParser(CLUSTER, now=fixed_now)
    live = [e for i in (1, 2, 3) for e in poller.feed(load_sample(f"mesos/master_state_{i}.json"))]
    ingest = Ingestor(settings())  # the live poller's events as ingest would store them
    assert [(e["type"], e["payload"]) for e in events] == [(e["type"], e["payload"]) for e in
                                                           (ingest.check(x).canonical for x in live)]
    snaps = [e for e in events if e["type"] == "cluster.snapshot_observed"]
    assert [e["occurred_at"] for e in snaps] == ["2015-07-08T15:05:00.000000Z", "2015-07-08T15:06:00.000000Z",
                                                 "2015-07-08T15:07:00.000000Z"]
    # stamped by the master's Date header, except status changes: the status's own time, the
    # agent's clock (issue 16)
    assert {e["clock"] for e in events if e["type"] != "task.status_updated"} == {"master"}
    assert {e["clock"] for e in events if e["type"] == "task.status_updated"} <= {"agent", "master"}
    t = summary.tally(str(d))
    assert (t.records, t.quarantined, t.skipped) == (5, 1, {"state of a master that was not leading": 1})
    (q,) = quarantined
    assert q["origin"] == str(d / "d.json") and base64.b64decode(q["raw_b64"]).startswith(b"<html>")
    assert any("capture times from Date header x3, modification time x2" in n for n in t.notes)


def test_a_dump_without_a_date_takes_the_flag_and_says_clock_adapter(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    write_dump(p, "mesos/master_state_1.json", None, 1)
    summary, events, _ = dry("mesos-state", [p], tmp_path / "out.jsonl", captured_at=1436367900.0)
    assert {e["clock"] for e in events} == {"adapter"}
    assert min(e["occurred_at"] for e in events) == "2015-07-08T15:05:00.000000Z"
    assert any("--captured-at" in n for n in summary.tally(str(p)).notes)


def test_watch_lines_lists_and_bare_objects_are_read_and_unkept_kinds_counted(tmp_path: Path) -> None:
    watch = tmp_path / "pods.watch.json"
    lines = (SAMPLES / "k8s/pods_watch.ndjson").read_bytes().splitlines()
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    cm = {"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}}
    watch.write_bytes(b"\n".join([*lines, orjson.dumps(cm), orjson.dumps(error)]) + b"\n")
    listing = SAMPLES / "k8s/pods_relist.json"
    bare = tmp_path / "kubectl-w.json"  # kubectl get -w -o json: pretty objects, no event type
    pod = next(json.loads(x)["object"] for x in lines if json.loads(x)["type"] == "ADDED")
    bare.write_text(json.dumps(pod, indent=4) + "\n" + json.dumps(pod, indent=4) + "\n")
    summary, events, quarantined = dry("k8s-watch", [watch, listing, bare], tmp_path / "out.jsonl")
    w, ls, b = summary.tally(str(watch)), summary.tally(str(listing)), summary.tally(str(bare))
    assert w.records == len(lines) + 2 and quarantined == []
    assert w.skipped["object of kind 'ConfigMap' (not kept by kmevents)"] == 1
    assert w.skipped["watch ERROR (Status 410: the watch ended there)"] == 1
    # a List's items are records of their own (never a relist: what it omits is not deleted)
    n_items = len(json.loads(listing.read_text())["items"])
    assert ls.records == n_items and ls.with_events == n_items
    assert b.records == 2 and any("without a watch event type" in n for n in w.notes)
    streams = {e["source"]["stream_id"] for e in events}
    assert {"pods.watch.json:pods", "pods_relist.json:pods"} <= streams
    assert summary.totals().accepted == len(events)


def test_recordio_streams_are_told_apart_and_a_cut_capture_keeps_its_records(tmp_path: Path) -> None:
    op = tmp_path / "operator.rio"
    whole = (SAMPLES / "mesos/operator_subscribe.recordio").read_bytes()
    op.write_bytes(whole + encode(b'{"type":"HEARTBEAT"}')[:-4])  # the capture was stopped mid-record
    sched = tmp_path / "scheduler.rio"
    sched.write_bytes((SAMPLES / "mesos/scheduler_events.recordio").read_bytes())
    summary, events, quarantined = dry("recordio", [op, sched], tmp_path / "out.jsonl")
    kinds = {e["source"]["kind"] for e in events}
    assert kinds == {"mesos.operator", "mesos.scheduler"}
    o = summary.tally(str(op))
    assert o.quarantined == 1 and o.records == len(records("mesos/operator_subscribe.recordio")) + 1
    (q,) = quarantined
    assert "ends inside a record" in q["reason"] and q["origin"] == f"{op}@{len(whole)}"
    assert any("operator stream (detected)" in n for n in o.notes)


def test_a_stream_that_cannot_be_told_apart_asks_for_the_flag(tmp_path: Path) -> None:
    p = tmp_path / "heartbeats.rio"
    p.write_bytes(encode(b'{"type":"HEARTBEAT"}') * 3)
    with pytest.raises(UsageError, match="--stream"):
        dry("recordio", [p], tmp_path / "out.jsonl")
    summary, _, _ = dry("recordio", [p], tmp_path / "out.jsonl", stream="operator")
    assert summary.tally(str(p)).records == 3


def test_the_output_and_the_quarantine_file_cannot_be_the_same(tmp_path: Path) -> None:
    s = settings()
    out = tmp_path / "x.jsonl"
    with pytest.raises(UsageError, match="same file"):
        asyncio.run(run_import("k8s-audit", [str(SAMPLES / "k8s/audit_events.json")], s,
                               sink=DryRunSink(s, out, out)))


def test_the_cli_lists_the_same_import_kinds_as_the_importer() -> None:
    from kmevents.commands import import_
    from kmevents.sources.importer import IMPORT_KINDS

    assert import_.KINDS == IMPORT_KINDS
    assert set(import_.KIND_HELP) == set(IMPORT_KINDS)


def test_no_offers_leaves_offers_to_the_scheduler_stream(tmp_path: Path) -> None:
    case = Path(__file__).resolve().parents[2] / "corpus" / "real" / "mesos-state" / "v0.19-offers-and-a-finished-task"
    dumps = sorted(p for p in case.iterdir() if p.name != "expected.txt")
    _, with_offers, _ = dry("mesos-state", dumps, tmp_path / "a.jsonl")
    _, without, _ = dry("mesos-state", dumps, tmp_path / "b.jsonl", no_offers=True)
    assert any(e["type"].startswith("offer.") for e in with_offers)
    assert not any(e["type"].startswith("offer.") for e in without)
