"""Reading capture files (``documents``), the live clients' failure accounting (``Failures``),
and the v3 leader key's first read."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.errors import SourceFailed
from kmevents.sources._retry import Failures
from kmevents.sources.k8sm import LeaderParser
from kmevents.sources.kubernetes import documents
from tests.unit.sources._helpers import CLUSTER, fixed_now

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)
objects = st.dictionaries(st.text(min_size=1, max_size=6), json_values, min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(objects, max_size=6), st.sampled_from(["lines", "pretty"]))
def test_documents_reads_json_lines_and_concatenated_pretty_json_alike(docs: list[dict], style: str) -> None:
    text = "".join((json.dumps(d) if style == "lines" else json.dumps(d, indent=4)) + "\n" for d in docs)
    got = list(documents(text.encode()))
    assert [d for _, _, d in got] == docs
    assert [seq for seq, _, _ in got] == list(range(len(docs)))
    assert all(json.loads(raw) == d for _, raw, d in got)


def test_a_damaged_document_is_returned_as_an_error_and_reading_resumes_at_the_next_object() -> None:
    text = ('{"kind": "Pod",\n    "metadata": {"name": "a"\n'         # cut: the rest never written
            '{\n    "kind": "Pod",\n    "metadata": {"name": "b"}\n}\n'
            'kind: Pod\nmetadata:\n  name: c\n')                        # YAML
    got = list(documents(text.encode()))
    assert [type(d).__name__ for _, _, d in got] == ["ValueError", "dict", "ValueError"]
    assert got[0][1] == b'{"kind": "Pod",\n    "metadata": {"name": "a"\n'
    assert got[1][2]["metadata"] == {"name": "b"}
    assert "YAML" in str(got[2][2]) and got[2][1].startswith(b"kind: Pod")


def response_error(status: int) -> httpx.HTTPStatusError:
    req = httpx.Request("GET", "http://127.0.0.1:1/api/v1/pods")
    return httpx.HTTPStatusError("x", request=req, response=httpx.Response(status, request=req))


def test_expected_errors_are_retried_forever_and_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    f = Failures("k8s watch pods", max_unexpected=1)
    with caplog.at_level(logging.DEBUG, logger="kmevents.sources"):
        for _ in range(50):
            f.failed(httpx.ConnectError("refused"))
            f.failed(response_error(503))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "ConnectError" in warnings[0] and "HTTPStatusError 503" in warnings[1]
    assert f.counts == {"ConnectError": 50, "HTTPStatusError 503": 50} and f.in_a_row == 0


def test_unexpected_errors_end_in_source_failed_unless_records_come_in_between() -> None:
    f = Failures("k8s watch pods", max_unexpected=2)
    f.failed(response_error(403))
    f.failed(KeyError("items"))
    f.progress()  # a record delivered: the run starts over
    f.failed(response_error(403))
    f.failed(response_error(403))
    with pytest.raises(SourceFailed, match="3 unexpected failures in a row, the last HTTPStatusError 403") as err:
        f.failed(response_error(403))
    assert isinstance(err.value.__cause__, httpx.HTTPStatusError) and err.value.exit_code == 1


def test_the_first_read_of_a_v3_key_starts_its_stream_where_it_is_without_a_gap() -> None:
    p = LeaderParser(CLUSTER, "/k8sm/leader", now=fixed_now)
    first = p.feed(b"k8sm-scheduler-1", version=7, create_revision=40, read=True)
    assert [(e["type"], e["source"]["seq"]) for e in first] == [("scheduler.leader_elected", 6)]
    # a write the watch then skips is still a gap
    later = p.feed(b"k8sm-scheduler-2", version=9, create_revision=40)
    assert [e["type"] for e in later] == ["source.gap", "scheduler.leader_elected"]
