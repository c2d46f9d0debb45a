"""Reading captures: JSON lines and documents, curl -i headers, gzip, RecordIO frames, capture times."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from kmevents.errors import UsageError
from kmevents.sources.captures import (
    Capture,
    capture_time,
    expand,
    http_date,
    json_values,
    read_capture,
    recordio_frames,
    split_headers,
    time_in_name,
)
from kmevents.sources.recordio import encode
from tests.unit.sources._helpers import SAMPLES


def cap(data: bytes, name: str = "capture.json") -> Capture:
    return split_headers(Path(name), data)


def test_json_lines_keep_going_after_a_line_that_is_not_json() -> None:
    data = b'{"a": 1}\n\n{"a": 2, "b\n{"a": 3}\n'
    values = list(json_values(cap(data)))
    assert [(v.obj, v.line, v.error is None) for v in values] == [({"a": 1}, 1, True), (None, 3, False),
                                                                   ({"a": 3}, 4, True)]
    assert values[1].raw == b'{"a": 2, "b' and "not JSON" in (values[1].error or "")


def test_pretty_printed_documents_one_after_another_are_read_with_their_lines() -> None:
    # kubectl get -w -o json: each object indented over several lines, one after another
    docs = [{"kind": "Pod", "metadata": {"name": f"p{i}"}} for i in range(3)]
    data = b"".join(json.dumps(d, indent=4).encode() + b"\n" for d in docs)
    values = list(json_values(cap(data)))
    assert [v.obj for v in values] == docs
    per_doc = json.dumps(docs[0], indent=4).count("\n") + 1
    assert [v.line for v in values] == [1, 1 + per_doc, 1 + 2 * per_doc]
    assert json.loads(values[1].raw) == docs[1]


def test_a_broken_document_ends_the_file_as_one_failed_value_with_the_rest() -> None:
    good = json.dumps({"kind": "Pod"}, indent=2).encode()
    data = good + b"\n{\n  \"kind\": \"Po\n" + good
    values = list(json_values(cap(data)))
    assert values[0].obj == {"kind": "Pod"} and values[1].obj is None
    assert values[1].line == good.count(b"\n") + 2
    assert values[1].raw.startswith(b"{\n  \"kind\"") and values[1].raw.endswith(good)
    assert "the rest of the file cannot be read" in (values[1].error or "")


def test_one_pretty_list_document_is_one_value() -> None:
    data = (SAMPLES / "k8s/pods_relist.json").read_bytes()
    assert b"\n" in data.strip()
    (v,) = list(json_values(cap(data)))
    assert v.obj["kind"] == "PodList" and v.line == 1


def test_curl_i_headers_are_split_off_the_last_block_kept_and_lines_still_count_from_the_file() -> None:
    data = (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: //m2:5050/master/state\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nDate: Wed, 08 Jul 2015 15:05:00 GMT\r\nMesos-Stream-Id: abc\r\n\r\n"
            b'{"a": 1}\n{"a": 2}\n')
    c = cap(data)
    assert c.status == "HTTP/1.1 200 OK" and c.headers == {"date": "Wed, 08 Jul 2015 15:05:00 GMT",
                                                         "mesos-stream-id": "abc"}
    assert c.body == b'{"a": 1}\n{"a": 2}\n'
    assert [v.line for v in json_values(c)] == [8, 9]  # 7 header lines (two blocks) before the body


def test_gzip_captures_are_read_whatever_their_name(tmp_path: Path) -> None:
    p = tmp_path / "audit.log"
    p.write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert [v.obj for v in json_values(read_capture(p))] == [{"a": 1}]
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:40])
    with pytest.raises(UsageError, match="cannot be decompressed"):
        read_capture(cut)


def test_recordio_frames_carry_their_offsets_and_tolerate_blank_lines() -> None:
    a, b = encode(b'{"type":"HEARTBEAT"}'), encode(b'{"type":"SUBSCRIBED"}')
    frames = list(recordio_frames(a + b"\n" + b + b"\n"))
    assert [(f.offset, f.record) for f in frames] == [(0, b'{"type":"HEARTBEAT"}'),
                                                      (len(a) + 1, b'{"type":"SUBSCRIBED"}')]


@pytest.mark.parametrize(("tail", "why"), [
    (encode(b'{"type":"HEARTBEAT"}')[:-5], "ends inside a record"),
    (b"12", "ends inside a length prefix"),
    (b"x12\n{}", "not a number"),
])
def test_a_cut_or_corrupt_recordio_frame_keeps_what_came_before_and_reports_the_rest(tail: bytes, why: str) -> None:
    first = encode(b'{"type":"HEARTBEAT"}')
    frames = list(recordio_frames(first + tail))
    assert frames[0].record == b'{"type":"HEARTBEAT"}'
    assert frames[1].record is None and why in (frames[1].error or "")
    assert frames[1].offset == len(first) and frames[1].raw == tail
    assert len(frames) == 2


@pytest.mark.parametrize(("name", "iso"), [
    ("state-1436367900.json", "2015-07-08T15:05:00"),
    ("state-20150708T150500Z.json", "2015-07-08T15:05:00"),
    ("state.2015-07-08_15-05-00.json", "2015-07-08T15:05:00"),
    ("master-state-2015-07-08T15:05:00.5Z", "2015-07-08T15:05:00.5"),
    ("state-20150708150500.json", "2015-07-08T15:05:00"),
])
def test_times_in_file_names_are_read_as_utc(name: str, iso: str) -> None:
    import datetime as dt

    want = dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()
    assert time_in_name(name) == pytest.approx(want)


@pytest.mark.parametrize("name", ["state.json", "state-1.json", "v0.28.2-state.json", "state-20151308T150500.json"])
def test_names_without_a_time_give_none(name: str) -> None:
    assert time_in_name(name) is None


def test_capture_time_prefers_the_date_header_then_the_flag_then_the_name_then_the_mtime(tmp_path: Path) -> None:
    p = tmp_path / "state-1436367900.json"
    p.write_bytes(b"{}")
    os.utime(p, (1436360000, 1436360000))
    dated = split_headers(p, b"HTTP/1.1 200 OK\r\nDate: Wed, 08 Jul 2015 15:06:00 GMT\r\n\r\n{}")
    assert (capture_time(dated, 1.0).seconds, capture_time(dated).clock) == (1436367960.0, "master")
    plain = split_headers(p, b"{}")
    assert (capture_time(plain, 1436367000.0).seconds, capture_time(plain, 1.0).how) == (1436367000.0, "--captured-at")
    assert (capture_time(plain).seconds, capture_time(plain).how, capture_time(plain).clock) == (
        1436367900.0, "file name", "adapter")
    q = tmp_path / "state.json"
    q.write_bytes(b"{}")
    os.utime(q, (1436360000, 1436360000))
    assert (capture_time(split_headers(q, b"{}")).seconds, capture_time(split_headers(q, b"{}")).how) == (
        1436360000.0, "modification time")


def test_http_dates_are_read_and_a_bad_one_is_none() -> None:
    assert http_date("Wed, 08 Jul 2015 15:05:00 GMT") == 1436367900.0
    assert http_date("yesterday") is None


def test_expand_lists_a_directory_by_name_without_hidden_or_quarantine_files(tmp_path: Path) -> None:
    d = tmp_path / "dumps"
    d.mkdir()
    for n in ("b.json", "a.json", ".partial", "out.jsonl.quarantine.jsonl"):
        (d / n).write_text("{}")
    (d / "sub").mkdir()
    f = tmp_path / "one.json"
    f.write_text("{}")
    assert expand([str(d), str(f)]) == [(str(d), d / "a.json"), (str(d), d / "b.json"), (str(f), f)]
    with pytest.raises(UsageError, match="no such file"):
        expand([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="empty directory"):
        expand([str(tmp_path / "empty")])
