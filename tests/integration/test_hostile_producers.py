"""The producer half of the hostile corpus (tests/corpus/hostile/events.json) through
`kmevents validate`, `kmevents ingest` and `POST /v1/events`, on real Kafka + etcd (issue 14).

Every hostile line is refused with its line number (or index) and a reason, every valid
neighbour is written, nothing prints a traceback and the API never answers 500.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from kmevents.settings import Settings
from tests.hostile import producer_lines
from tests.integration.test_ingest import read_all
from tests.integration.test_ingest_api import Server, _with_tokens


def _file(s: Settings, tmp: Path) -> tuple[Path, list[int], list[int]]:
    lines = producer_lines(s.cluster)
    p = tmp / "hostile.jsonl"
    p.write_bytes(b"\n".join(entry.line for entry in lines) + b"\n")
    valid = [i + 1 for i, e in enumerate(lines) if e.valid]
    hostile = [i + 1 for i, e in enumerate(lines) if not e.valid]
    return p, valid, hostile


def _cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": s.kafka.bootstrap, "KMEVENTS_ETCD__ENDPOINT": s.etcd.endpoint,
           "KMEVENTS_KAFKA__EVENTS_TOPIC": s.kafka.events_topic, "KMEVENTS_ETCD__PREFIX": s.etcd.prefix}
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_validate_refuses_each_hostile_line_by_number_and_passes_the_valid_ones(isolated: Settings,
                                                                                 tmp_path: Path) -> None:
    path, valid, hostile = _file(isolated, tmp_path)
    out = _cli(isolated, "validate", str(path), "--format", "json")
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 1, out.stderr[-2000:]
    (report,) = orjson.loads(out.stdout)["files"]
    assert sorted({p["line"] for p in report["errors"]}) == hostile, report["errors"][:5]
    assert report["valid"] == len(valid)


def test_ingest_writes_exactly_the_valid_lines_and_refuses_the_rest_by_number(isolated: Settings,
                                                                              tmp_path: Path) -> None:
    path, valid, hostile = _file(isolated, tmp_path)
    out = _cli(isolated, "ingest", str(path), "--format", "json")
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 1, out.stderr[-2000:]
    doc = orjson.loads(out.stdout)
    assert (doc["accepted"], doc["refused"]) == (len(valid), len(hostile))
    assert sorted({r["line"] for r in doc["refusals"]}) == hostile
    written = [orjson.loads(r.value) for r in asyncio.run(read_all(isolated))]
    assert sorted(e["source"]["seq"] for e in written) == sorted(valid), "the valid lines' seq equal their numbers"


def test_post_as_ndjson_gets_207_with_every_valid_event_written_and_no_500(isolated: Settings) -> None:
    s = _with_tokens(isolated)
    lines = producer_lines(s.cluster)
    with Server(s) as url:
        r = httpx.post(f"{url}/v1/events", content=b"\n".join(e.line for e in lines),
                       headers={"Authorization": "Bearer ingest-token", "Content-Type": "application/x-ndjson"},
                       timeout=120)
        assert r.status_code in (207, 413), r.text[:1000]
        if r.status_code == 413:  # the body as a whole is over the request limit: send it line by line
            codes = []
            for e in lines:
                one = httpx.post(f"{url}/v1/events", content=e.line,
                                 headers={"Authorization": "Bearer ingest-token",
                                          "Content-Type": "application/x-ndjson"}, timeout=60)
                codes.append(one.status_code)
            assert all(c < 500 for c in codes), codes
            assert [c == 200 for c in codes] == [e.valid for e in lines], codes
        else:
            data = r.json()
            assert data["accepted"] == sum(e.valid for e in lines)
    written = [orjson.loads(x.value) for x in asyncio.run(read_all(s))]
    assert len(written) == sum(e.valid for e in lines)
