"""Nothing reads or writes a whole large state in one piece (issue 17): `search` prints hits as
they are found, `state --format json` writes entity by entity (and `--kinds` limits it), and
`state` prints a summary, not every entity. On archives, with no server anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kmevents.replay import render
from kmevents.replay.engine import Target, replay
from kmevents.replay.sources import ArchiveSource

from kmevents.cli import main
from kmevents.commands._common import emit_json
from kmevents.commands._output import StreamTable, table
from kmevents.commands.search import print_table, write_json
from tests.unit.replay import test_reading_like_kubectl as reading

# the 4000-event archive of the reading commands' tests, read with no server anywhere
CLUSTER = reading.CLUSTER
arc = reading.arc
no_servers = reading.no_servers


def km(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*argv, "--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


class Chunks:
    """A write function that keeps each piece written (to see what was out when)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def __call__(self, b: bytes) -> None:
        self.parts.append(b)

    @property
    def text(self) -> bytes:
        return b"".join(self.parts)


def _hit(i: int) -> dict[str, Any]:
    return {"offset": i, "object": f"pod/ns/p-{i}", "event": {"type": "pod.evicted", "payload": {"n": [i, "é"]}}}


def _doc(hits: list[dict[str, Any]]) -> bytes:
    w = Chunks()
    with render.JsonStream(w) as js:
        js.value("cluster", "c")
        js.open("events", "[")
        for h in hits:
            js.value(None, h)
        js.close()
        js.value("count", len(hits))
    return w.text


# --- the JSON writer -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 300])
def test_a_streamed_document_is_one_valid_json_document_with_every_hit(n: int) -> None:
    hits = [_hit(i) for i in range(n)]
    raw = _doc(hits)
    assert json.loads(raw) == {"cluster": "c", "events": hits, "count": n}
    assert raw.endswith(b"}\n") and (n == 0 or "é".encode() in raw)


def test_an_empty_array_is_written_as_emit_json_writes_it(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    w = Chunks()
    with render.JsonStream(w) as js:
        js.open("events", "[")
        js.close()
        js.open("state", "{")
        js.close()
    emit_json({"events": [], "state": {}})
    assert w.text == capsysbinary.readouterr().out


def test_each_hit_is_written_when_it_is_given_not_at_the_end() -> None:
    w = Chunks()
    with render.JsonStream(w) as js:
        js.open("events", "[")
        js.value(None, _hit(1))
        assert b'"pod/ns/p-1"' in w.text
        before = len(w.text)
        js.value(None, _hit(2))
        assert b'"pod/ns/p-2"' in w.text[before:]
        js.close()


def test_an_integer_beyond_64_bits_in_one_member_falls_back_to_the_standard_library() -> None:
    w = Chunks()
    with render.JsonStream(w) as js:
        js.value("big", {"n": 2**70})
    assert json.loads(w.text) == {"big": {"n": 2**70}}


def test_a_text_only_stdout_gets_the_same_document() -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), render.JsonStream() as js:
        js.value("k", [1, "é"])
    assert json.loads(buf.getvalue()) == {"k": [1, "é"]} and buf.getvalue().endswith("}\n")


def test_an_error_mid_document_leaves_it_unclosed_rather_than_looking_complete() -> None:
    w = Chunks()
    with pytest.raises(RuntimeError), render.JsonStream(w) as js:
        js.open("events", "[")
        js.value(None, _hit(1))
        raise RuntimeError("the source went away")
    with pytest.raises(json.JSONDecodeError):
        json.loads(w.text)


# --- state: entity by entity, --kinds, the summary -------------------------------------------

@pytest.fixture(scope="module")
def folded(arc: Path) -> Any:
    return asyncio.run(replay(ArchiveSource(arc), CLUSTER, Target.parse(), progress=False))


def test_state_json_streamed_is_byte_for_byte_what_emit_json_wrote(folded: Any,
                                                                   capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    st, pos = folded.state, folded.position()
    w = Chunks()
    with render.JsonStream(w) as js:
        render.write_state_json(js, pos, st)
    whole = {k: {i: render.with_condition(v) for i, v in st.entities(k)} for k in st.kinds}
    emit_json({"position": pos, "state": whole})
    assert w.text == capsysbinary.readouterr().out
    assert len(w.parts) > sum(st.count(k) for k in st.kinds)  # written entity by entity


def test_state_json_kinds_writes_only_those_kinds(folded: Any) -> None:
    w = Chunks()
    with render.JsonStream(w) as js:
        render.write_state_json(js, folded.position(), folded.state, ["task", "pod"])
    doc = json.loads(w.text)
    assert list(doc["state"]) == ["pod", "task"] and len(doc["state"]["pod"]) == folded.state.count("pod")
    assert all("condition" in v for v in doc["state"]["task"].values())


def test_state_json_leaves_no_entity_decoded_in_the_state(arc: Path) -> None:
    """Writing entity by entity holds one entity decoded at a time: a packed table read for the
    writing keeps none of them (``entity_read``); ``entity`` kept each, so the whole state ended
    decoded: 1.36 GB for pods and tasks at the large profile, against 331 MB now (BENCHMARKS.md)."""
    from kmevents.reducer.packed import PackedTable

    r = asyncio.run(replay(ArchiveSource(arc), CLUSTER, Target.parse(), progress=False))
    st = r.state
    packed = [k for k in st.kinds if type(st._tables[k]) is PackedTable and st.count(k)]
    assert "pod" in packed and "task" in packed
    st.take_dirty()
    from kmevents.reducer.packed import pack_tables

    pack_tables(st._tables)
    assert all(st._tables[k].hot_count == 0 for k in packed)
    with render.JsonStream(Chunks()) as js:
        render.write_state_json(js, r.position(), st)
    assert {k: st._tables[k].hot_count for k in packed} == dict.fromkeys(packed, 0)


def test_the_summary_counts_each_kind_by_condition_and_lists_no_entity(folded: Any) -> None:
    st = folded.state
    text = render.state_summary(st)
    pods = render.condition_counts(st, "pod")
    line = next(x for x in text.splitlines() if x.startswith("pod "))
    assert f"{st.count('pod'):,}" in line and all(f"{c} {n:,}" in line for c, n in pods.items())
    assert "leading master:" in text and "k8sm scheduler leader:" in text
    assert text.rstrip().endswith(render.STATE_HINT)
    assert not any(i in text for i, _ in st.entities("task"))  # no task id, not even 20 of them
    assert [x.split()[0] for x in render.state_summary(st, ["pod"]).splitlines()[2:3]] == ["pod"]


def test_state_prints_the_summary_by_default(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "state", "--source", str(arc))
    assert rc == 0, err
    assert "events applied" in out and "by condition" in out and render.STATE_HINT in out
    assert "running tasks" not in out and len(out.splitlines()) < 40


def test_state_format_json_kinds_pod_holds_only_pods(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "state", "--source", str(arc), "--format", "json", "--kinds", "po")
    assert rc == 0, err
    doc = orjson.loads(out)
    assert list(doc["state"]) == ["pod"] and doc["state"]["pod"] and doc["position"]["complete"] is True
    rc, out, _ = km(capsys, "state", "--source", str(arc), "--format", "json")
    assert {"pod", "task", "agent"} <= set(orjson.loads(out)["state"])


def test_state_kinds_with_a_typo_is_refused_before_any_replay(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "state", "--source", str(arc), "--format", "json", "--kinds", "pod,tsks")
    assert rc == 2 and out == "" and "unknown kind 'tsks'" in err and "did you mean tasks" in err


# --- search: printed as found ----------------------------------------------------------------

def _table_hits(n: int) -> list[dict[str, Any]]:
    return [{"offset": i, "occurred_at": "2026-01-01T00:00:00Z", "object": f"pod/ns/p-{i}", "reason": "x" * (i % 7),
             "message": None, "event": {"type": "pod.evicted", "actor": {"kind": "k8s", "name": "kubelet"}}}
            for i in range(n)]


def test_a_stream_table_of_one_page_is_the_table_of_its_rows() -> None:
    rows = [[i, "x" * (i % 5), None] for i in range(7)]
    lines: list[str] = []
    t = StreamTable(["offset", "reason", "actor"], write=lines.append)
    for r in rows:
        t.add(r)
    assert lines == []  # held: the first page decides the widths
    t.finish()
    assert "\n".join(lines) == table(rows, ["offset", "reason", "actor"]) and t.rows == 7


def test_rows_after_the_first_page_are_printed_at_once_in_the_same_columns() -> None:
    lines: list[str] = []
    t = StreamTable(["a", "b", "c"], page=3, write=lines.append)
    for r in (["1", "x", "y"], ["2", "x", "y"], ["3", "x", "y"]):
        t.add(r)
    assert len(lines) == 4  # headers and the page
    t.add(["4", "a-much-longer-cell", "y"])
    t.add(["5", "x", "y"])
    assert len(lines) == 6 and lines[-1] == lines[1].replace("1", "5")  # the columns did not move
    assert lines[-2] == "4   a-much-longer-cell   y"  # a long cell pushes only its own row


def test_search_table_prints_rows_while_the_scan_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    printed: list[str] = []  # what was out before each hit was handed over

    async def rows() -> AsyncIterator[dict]:
        for h in _table_hits(120):
            printed.append(capsys.readouterr().out)
            yield h

    assert asyncio.run(print_table(rows(), wide=False, types=["pod.*"])) == 120
    lines = [len(x.splitlines()) for x in printed]
    assert lines[:50] == [0] * 50 and lines[50] == 51 and lines[51:] == [1] * 69  # a page, then row by row
    text = "".join(printed) + capsys.readouterr().out
    head, *body = text.splitlines()
    assert len(body) == 120 and {ln.index("pod/ns/") for ln in body} == {head.index("OBJECT")}


@pytest.mark.parametrize("n", [0, 1, 75])
def test_search_json_is_one_document_for_0_1_and_many_hits(n: int, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    hits = _table_hits(n)

    async def gen() -> AsyncIterator[dict]:
        for h in hits:
            yield h

    assert asyncio.run(write_json("laptop", gen())) == n
    doc = json.loads(capsysbinary.readouterr().out)
    assert doc == {"cluster": "laptop", "count": n, "events": hits}


def test_search_json_from_an_archive_counts_what_it_lists(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "search", "--source", str(arc), "--type", "task.*", "--format", "json")
    assert rc == 0, err
    doc = orjson.loads(out)
    assert doc["count"] == len(doc["events"]) > 100 and doc["cluster"] == CLUSTER
    rc, out, _ = km(capsys, "search", "--source", str(arc), "--type", "task.*")
    assert out.rstrip().endswith(f"{doc['count']} event(s)") and len(out.splitlines()) == doc["count"] + 2
    rc, out, _ = km(capsys, "search", "--source", str(arc), "--type", "inverse_offer.accepted", "--format", "json")
    assert rc == 0 and orjson.loads(out) == {"cluster": CLUSTER, "count": 0, "events": []}


def test_hits_is_a_stream_the_list_form_collects(arc: Path) -> None:
    from kmevents.replay import search

    async def go() -> tuple[dict, list]:
        it = search.hits(ArchiveSource(arc), search.Filters(types=["task.*"]))
        first = await it.__anext__()
        await it.aclose()
        return first, await search.search(ArchiveSource(arc), search.Filters(types=["task.*"]), limit=3)

    first, three = asyncio.run(go())
    assert first == three[0] and len(three) == 3
