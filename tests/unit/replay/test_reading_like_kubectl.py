"""Reading like kubectl on archives, no server anywhere (issue 18): `get`, `search`'s subjects
and did-you-mean, `history`'s names, durations, windows and progress, the kind vocabulary."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
import yaml
from kmevents.replay import archive
from kmevents.replay.records import LogRecord

from kmevents import kinds
from kmevents.cli import main
from kmevents.errors import UsageError
from kmevents.simulate import generate
from kmevents.timespec import micros_of

CLUSTER = "laptop"


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("arc") / "laptop.kmarch"
    recs = [LogRecord(i, micros_of(ev["occurred_at"]) // 1000 + 50, CLUSTER.encode(),
                      orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(generate(CLUSTER, 9, 4000, agents=6))]
    archive.write(p, recs, cluster=CLUSTER, partition=1, topic="kmevents.events", covers_from=0)
    return p


@pytest.fixture(autouse=True)
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens here: reading an archive must not need a server
    monkeypatch.setenv("KMEVENTS_KAFKA__BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("KMEVENTS_ETCD__ENDPOINT", "http://127.0.0.1:9")


def km(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def state_json(capsys: pytest.CaptureFixture[str], arc: Path) -> dict:
    rc, out, err = km(capsys, "state", "--source", str(arc), "--format", "json", "--no-progress")
    assert rc == 0, err
    return orjson.loads(out)["state"]


# --- the kind vocabulary ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [("pods", "pod"), ("pod", "pod"), ("po", "pod"), ("Pods", "pod"),
                                            ("svc", "service"), ("replicationcontrollers", "rc"), ("rc", "rc"),
                                            ("ns", "namespace"), ("no", "node"), ("inverse_offers", "inverse_offer"),
                                            ("inverseoffers", "inverse_offer"), ("agents", "agent")])
def test_kinds_are_read_by_plural_singular_and_short_names(text: str, kind: str) -> None:
    assert kinds.resolve(text) == kind


def test_an_unknown_kind_is_refused_with_the_nearest_name_and_the_valid_ones() -> None:
    with pytest.raises(UsageError) as info:
        kinds.resolve("pdos")
    assert "did you mean pod" in info.value.message and "rc" in info.value.message


# --- get ---------------------------------------------------------------------------------

def test_get_pods_prints_a_kubectl_table_of_the_pods_there_are(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    rc, out, err = km(capsys, "get", "pods", "--source", str(arc))
    assert rc == 0, err
    head, *rows = out.splitlines()
    assert head.split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    alive = [p for p in st["pod"].values() if p.get("deleted") is None]
    assert len(rows) == len(alive) > 0  # deleted pods stay in the state for history, not in the list
    assert "replayed latest" in err  # where the answer comes from, on stderr


def test_get_all_lists_deleted_pods_with_their_condition(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    rc, out, _ = km(capsys, "get", "po", "--all", "--source", str(arc), "--no-headers")
    assert rc == 0
    assert len(out.splitlines()) == len(st["pod"])
    assert any(line.split()[3] == "Deleted" for line in out.splitlines())


def test_get_wide_adds_columns_and_never_prints_python_dicts(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, narrow, _ = km(capsys, "get", "pods", "--source", str(arc))
    rc, wide, _ = km(capsys, "get", "pods", "--source", str(arc), "-o", "wide")
    assert rc == 0
    assert wide.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE",
                                            "TASK", "LABELS"]
    assert "app=" in wide  # labels as k=v
    for text in (narrow, wide):
        assert "{'" not in text and "['" not in text


def test_get_json_carries_the_condition_and_agrees_with_the_table(arc: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = km(capsys, "get", "pods", "--all", "--source", str(arc), "-o", "json")
    assert rc == 0
    doc = orjson.loads(out)
    assert doc["kind"] == "pods" and doc["source"] == "replay" and doc["position"]["covered_to_offset"] == 3999
    deleted_running = [p for p in doc["items"] if p["deleted"] is not None and p["phase"] == "Running"]
    assert deleted_running and all(p["condition"] == "Deleted" for p in deleted_running)
    assert sum(p["condition"] == "Running" for p in doc["items"]) == sum(
        p["phase"] == "Running" and p["deleted"] is None and p["evicted"] is None for p in doc["items"])


def test_get_decodes_each_entity_once_and_deleted_pods_only_when_asked(
        arc: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """get is fed the entities one at a time and keeps only what it prints: each pod it shows is
    decoded once, and the deleted pods (kept for history) are passed over without decoding them
    unless --all asks for them (BENCHMARKS.md: `get pods` at the large profile held 144k pods
    decoded, ~1 GB)."""
    from kmevents.reducer import packed

    st = state_json(capsys, arc)
    alive = sum(p.get("deleted") is None for p in st["pod"].values())
    assert 0 < alive < len(st["pod"])
    decoded: list[int] = []
    real = packed.value_of

    def counting(table: object, id: str) -> object:
        v = real(table, id)
        if isinstance(v, dict) and "uid" in v and "phase" in v:  # a pod
            decoded.append(1)
        return v

    monkeypatch.setattr(packed, "value_of", counting)
    monkeypatch.setattr("kmevents.reducer.state.value_of", counting)
    rc, out, _ = km(capsys, "get", "pods", "--source", str(arc), "--no-headers")
    assert rc == 0 and len(out.splitlines()) == alive
    assert len(decoded) == alive
    decoded.clear()
    rc, out, _ = km(capsys, "get", "pods", "--all", "--source", str(arc), "--no-headers")
    assert rc == 0 and len(out.splitlines()) == len(decoded) == len(st["pod"])


def test_get_json_is_the_document_emit_json_writes(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o json writes its items one at a time (JsonStream), byte for byte the document emit_json
    wrote of all of them, and in the table's order of entities for --sort-by."""
    from kmevents.commands._common import emit_json

    rc, out, _ = km(capsys, "get", "tasks", "--source", str(arc), "-o", "json", "--sort-by", "since")
    assert rc == 0
    doc = orjson.loads(out)
    emit_json(doc)
    assert capsys.readouterr().out == out
    since = [t["since"] for t in doc["items"]]
    assert since == sorted(since) and doc["count"] == len(doc["items"]) > 1
    rc, table, _ = km(capsys, "get", "tasks", "--source", str(arc), "--sort-by", "since", "--no-headers")
    assert [line.split()[0] for line in table.splitlines()] == [t["task_id"] for t in doc["items"]]


def test_get_yaml_and_name_outputs(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = km(capsys, "get", "agents", "--source", str(arc), "-o", "yaml")
    assert rc == 0
    doc = yaml.safe_load(out)
    assert doc["kind"] == "agents" and {a["condition"] for a in doc["items"]} <= {"active", "removed", "draining",
                                                                                   "deactivated"}
    rc, out, _ = km(capsys, "get", "svc", "--source", str(arc), "-o", "name")
    assert rc == 0 and out.splitlines() and all(line.startswith("service/") for line in out.splitlines())


def test_get_one_entity_by_name_prints_the_object_itself(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    pod = next(p for p in st["pod"].values() if p.get("deleted") is None)
    rc, out, _ = km(capsys, "get", "pod", pod["name"], "--source", str(arc), "-o", "json")
    assert rc == 0
    got = orjson.loads(out)
    assert got["id"] == pod["id"] and got["kind"] == "pod" and got["condition"]


def test_get_a_name_that_is_not_there_exits_1_saying_so(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = km(capsys, "get", "pods", "no-such-pod", "--source", str(arc))
    assert rc == 1 and 'pods "no-such-pod" not found' in err


def test_get_kind_and_names_after_source_are_not_taken_for_archives(arc: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "get", "--source", str(arc), "agents")
    assert rc == 0, err
    assert out.splitlines()[0].split()[:2] == ["NAME", "STATUS"]


def test_get_an_unknown_kind_exits_2_with_the_nearest(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = km(capsys, "get", "pdos", "--source", str(arc))
    assert rc == 2 and "did you mean pod" in err


def test_get_tasks_on_an_agent_named_by_its_host(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    aid, agent = next((i, a) for i, a in st["agent"].items()
                      if any(t.get("agent_id") == i for t in st["task"].values()))
    expected = sum(t.get("agent_id") == aid for t in st["task"].values())
    rc, out, _ = km(capsys, "get", "tasks", "--agent", agent["hostname"], "--source", str(arc), "--no-headers")
    assert rc == 0
    assert len(out.splitlines()) == expected
    assert all(agent["hostname"] in line for line in out.splitlines())


def test_get_field_selector_and_an_unknown_field(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    lost = [t for t in st["task"].values() if t["state"] == "TASK_LOST"]
    rc, out, _ = km(capsys, "get", "tasks", "--field-selector", "state=TASK_LOST", "--source", str(arc),
                    "-o", "name")
    assert rc == 0 and len(out.splitlines()) == len(lost) > 0
    rc, _, err = km(capsys, "get", "tasks", "--field-selector", "stat=TASK_LOST", "--source", str(arc))
    assert rc == 2 and "no task has a field 'stat'" in err  # not an empty answer


def test_get_at_a_point_lists_what_was_there_then(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, early, _ = km(capsys, "get", "pods", "--offset", "300", "--source", str(arc), "-o", "json")
    rc2, late, _ = km(capsys, "get", "pods", "--offset", "3999", "--source", str(arc), "-o", "json")
    assert rc == rc2 == 0
    a, b = orjson.loads(early), orjson.loads(late)
    assert a["position"]["covered_to_offset"] == 300 and len(a["items"]) < len(b["items"])


# --- search ------------------------------------------------------------------------------

def test_search_rows_name_the_object_and_the_reason(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = km(capsys, "search", "--type", "agent.removed", "--source", str(arc))
    assert rc == 0
    head, *rows = out.splitlines()
    assert head.split() == ["OFFSET", "TIME", "TYPE", "OBJECT", "REASON", "MESSAGE", "ACTOR"]
    # agent.removed names only the agent id: the table shows the host it was on
    assert rows[0].split()[3].startswith("agent/agent-") and rows[0].split()[3].endswith(".local")
    rc, out, _ = km(capsys, "search", "--type", "task.status_updated", "--limit", "50", "--source", str(arc),
                    "--format", "json")
    ev = orjson.loads(out)["events"][0]
    assert ev["object"].startswith("task/") and ev["reason"].startswith("TASK_")


def test_search_type_with_a_typo_is_refused_with_did_you_mean(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = km(capsys, "search", "--type", "master.elcted", "--source", str(arc))
    assert rc == 2 and out == ""
    assert "unknown event type 'master.elcted'; did you mean 'master.elected'?" in err
    rc, _, err = km(capsys, "search", "--type", "mastr.*", "--source", str(arc))
    assert rc == 2 and "matches no event type; did you mean 'master.*'?" in err


def test_search_by_host_name_finds_events_that_name_only_the_agent_id(arc: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = km(capsys, "search", "--type", "agent.removed", "--source", str(arc), "--format", "json")
    removed = orjson.loads(out)["events"][0]
    host = removed["object"].removeprefix("agent/")
    rc, out, _ = km(capsys, "search", "--agent", host, "--type", "agent.*", "--source", str(arc), "--format", "json")
    assert rc == 0
    assert removed["offset"] in [e["offset"] for e in orjson.loads(out)["events"]]


# --- history -----------------------------------------------------------------------------

def test_history_of_an_agent_by_host_name(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    aid, agent = next((i, a) for i, a in st["agent"].items() if a["status"] == "removed")
    rc, out, err = km(capsys, "history", f"agent/{agent['hostname']}", "--source", str(arc), "--format", "json",
                      "--no-progress")
    assert rc == 0, err
    h = orjson.loads(out)
    assert h["targets"] == [f"agent/{aid}"]
    assert "agent.removed" in [e["type"] for e in h["events"]]


def test_history_durations_are_humanised_and_windows_and_types_choose_events(
        arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    agent = next(a for a in st["agent"].values() if a["status"] == "removed")
    rc, out, _ = km(capsys, "history", f"agents/{agent['hostname']}", "--type", "agent.*", "--source", str(arc),
                    "--no-progress")
    assert rc == 0
    assert "of" in out.splitlines()[0] and "events shown" in out.splitlines()[0]
    assert all(line.split()[2].startswith("agent.") for line in out.splitlines() if line.startswith("@"))
    assert "active for " in out and "s\n" in out and "lasted_seconds" not in out
    import re

    assert re.search(r"active for (\d+m)?\d+s", out)
    _, out, _ = km(capsys, "history", f"agent/{agent['hostname']}", "--source", str(arc), "--format", "json",
                   "--no-progress")
    every = [(e["offset"], e["occurred_at"]) for e in orjson.loads(out)["events"]]
    lo, hi = every[1], every[-2]
    rc, out, _ = km(capsys, "history", f"agent/{agent['hostname']}", "--source", str(arc), "--from",
                    f"offset:{lo[0]}", "--to", hi[1], "--format", "json", "--no-progress")
    assert rc == 0
    assert [e["offset"] for e in orjson.loads(out)["events"]] == [o for o, t in every if o >= lo[0] and t <= hi[1]]


def test_history_takes_kind_id_after_the_options(arc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = state_json(capsys, arc)
    pod = next(p for p in st["pod"].values() if p.get("task_id"))
    rc, out, err = km(capsys, "history", "--source", str(arc), f"pod/{pod['id']}", "--format", "json",
                      "--no-progress")
    assert rc == 0, err
    assert orjson.loads(out)["targets"] == [f"pod/{pod['id']}"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_history_shows_a_progress_bar_on_a_terminal(arc: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The replay's bar appeared only from 200,000 records: a 100k-event history ran silent."""
    st = state_json(capsys, arc)
    agent = next(iter(st["agent"].values()))
    import kmevents.replay.history as history

    monkeypatch.setattr(history, "PROGRESS_FROM", 1000)
    term = _Terminal()
    with capsys.disabled():
        monkeypatch.setattr("sys.stderr", term)
        monkeypatch.setattr("sys.stdout", io.StringIO())
        rc = main(["history", f"agent/{agent['hostname']}", "--source", str(arc), "--format", "json"])
    assert rc == 0
    assert "history 1/2: finding links" in term.getvalue() and "history 2/2: collecting" in term.getvalue()
