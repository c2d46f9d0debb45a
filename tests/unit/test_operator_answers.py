"""Issue 18: a mistake gets a clear error or a right answer, never an empty result and exit 0.

Run on archives alone with unreachable servers, as an operator with a laptop would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from kmevents.replay import archive
from kmevents.replay.records import LogRecord

from kmevents import chain
from kmevents.simulate import generate
from kmevents.timespec import micros_of

CLUSTER = "laptop"
EVENTS = 4000


def _records() -> list[LogRecord]:
    return [LogRecord(i, micros_of(ev["occurred_at"]) // 1000 + 50, CLUSTER.encode(),
                      orjson.dumps(ev, option=orjson.OPT_SORT_KEYS))
            for i, ev in enumerate(generate(CLUSTER, 9, EVENTS, agents=6))]


@pytest.fixture(scope="module")
def recs() -> list[LogRecord]:
    return _records()


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory, recs: list[LogRecord]) -> Path:
    p = tmp_path_factory.mktemp("arc") / "laptop.kmarch"
    archive.write(p, recs, cluster=CLUSTER, partition=1, topic="kmevents.events", covers_from=0)
    return p


@pytest.fixture(scope="module")
def mid(tmp_path_factory: pytest.TempPathFactory, recs: list[LogRecord]) -> Path:
    """The second half of the log, with its chain head, and no snapshot (the API's ``/archive?from=2000``)."""
    head = chain.GENESIS
    for r in recs[:2000]:
        head = chain.link(head, r.key, r.value)
    p = tmp_path_factory.mktemp("mid") / "laptop-2000.kmarch"
    archive.write(p, recs[2000:], cluster=CLUSTER, partition=1, topic="kmevents.events", covers_from=2000,
                  chain_head_start=head)
    return p


def km(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Nothing listens on these: any attempt to reach a server fails.
    env = {**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": "127.0.0.1:9", "KMEVENTS_ETCD__ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=180, cwd=cwd)


# --- diff --------------------------------------------------------------------------------------


def test_diff_refuses_an_unknown_kind_listing_the_valid_ones_before_any_replay(arc: Path) -> None:
    r = km("diff", "--source", str(arc), "--from", "offset:100", "--to", "offset:3000", "--kind", "pdos")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "unknown kind 'pdos'" in r.stderr and "did you mean pods?" in r.stderr
    assert "pod, rc, role, service, task" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("spelling", ["pods", "pod", "po", "Pods"])
def test_diff_takes_a_kind_in_the_plural_singular_or_kubectl_short_form(arc: Path, spelling: str) -> None:
    r = km("diff", "--source", str(arc), "--from", "offset:100", "--to", "offset:3000", "--kind", spelling,
           "--format", "json")
    assert r.returncode == 0, r.stderr
    d = orjson.loads(r.stdout)
    assert set(d["counts"]) == {"pod"} and d["counts"]["pod"]["added"] > 0


def test_diff_table_says_how_many_more_and_prints_values_as_json(arc: Path) -> None:
    r = km("diff", "--source", str(arc), "--from", "offset:1000", "--to", "offset:3999", "--kind", "task",
           "--limit", "3", "--max-fields", "2")
    assert r.returncode == 0, r.stderr
    d = orjson.loads(km("diff", "--source", str(arc), "--from", "offset:1000", "--to", "offset:3999", "--kind",
                        "task", "--format", "json").stdout)
    added, changed = d["counts"]["task"]["added"], d["counts"]["task"]["changed"]
    assert added > 3 and changed > 3
    lines = r.stdout.splitlines()
    assert f"+ ... {added - 3:,} more task entities (--limit 0 lists all)" in lines
    assert f"~ ... {changed - 3:,} more changed task entities (--limit 0 lists all)" in lines
    assert any(ln.startswith("    ... ") and ln.endswith("more fields (--max-fields 0 shows all)") for ln in lines)
    values = [ln for ln in lines if ln.startswith("    ") and " -> " in ln]
    assert values and not any("None" in v or "'" in v for v in values), values[:5]
    assert any('"TASK_' in v for v in values), values[:5]
    everything = km("diff", "--source", str(arc), "--from", "offset:1000", "--to", "offset:3999", "--kind", "task",
                    "--limit", "0", "--max-fields", "0").stdout
    assert "more" not in everything and everything.count("\n+ task/") == added


def test_diff_json_carries_each_entitys_condition_so_a_deleted_pod_is_not_running(arc: Path) -> None:
    d = orjson.loads(km("diff", "--source", str(arc), "--from", "offset:0", "--to", "offset:3999", "--kind", "pod",
                        "--format", "json").stdout)
    pods = d["added"]["pod"].values()
    assert all("condition" in p for p in pods)
    assert any(p.get("deleted") and p.get("phase") == "Running" and p["condition"] == "Deleted" for p in pods)


# --- state -------------------------------------------------------------------------------------


def test_state_json_gives_every_entity_its_condition(arc: Path) -> None:
    j = orjson.loads(km("state", "--source", str(arc), "--format", "json").stdout)
    for kind, ents in j["state"].items():
        assert all("condition" in v for v in ents.values()), kind
    pods = list(j["state"]["pod"].values())
    deleted_running = [p for p in pods if p.get("deleted") and p.get("phase") == "Running"]
    assert deleted_running and all(p["condition"] == "Deleted" for p in deleted_running)
    assert j["position"]["complete"] is True


def test_state_before_the_logs_first_event_says_where_the_log_starts(arc: Path, recs: list[LogRecord]) -> None:
    first = orjson.loads(recs[0].value)["occurred_at"]
    r = km("state", "--source", str(arc), "--at", "2020-01-01T00:00:00Z")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "None since None" not in r.stdout and r.stdout == ""
    assert "nothing in the log of laptop" in r.stderr and "had happened at 2020-01-01T00:00:00" in r.stderr
    assert f"its earliest event occurred at {first}" in r.stderr, r.stderr
    r = km("state", "--source", str(arc), "--known-at", "2020-01-01T00:00:00Z")
    assert r.returncode == 1 and "starts after the point (known at 2020-01-01" in r.stderr, r.stderr
    assert "first record is offset 0" in r.stderr


def test_state_of_an_archive_starting_mid_log_without_a_snapshot_is_flagged_and_exits_1(
        arc: Path, mid: Path) -> None:
    r = km("state", "--source", str(mid))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "WARNING: INCOMPLETE STATE: the log read starts mid-chain at offset 2000" in r.stdout
    assert "--partial" in r.stderr
    ok = km("state", "--source", str(mid), "--partial", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    pos = orjson.loads(ok.stdout)["position"]
    assert pos["complete"] is False and "mid-chain" in pos["incomplete"]
    # the whole log (archive from the start) is complete, with or without the second half
    both = km("state", "--source", str(arc), str(mid), "--format", "json")
    assert both.returncode == 0 and orjson.loads(both.stdout)["position"]["complete"] is True


def test_diff_over_an_incomplete_state_exits_1_unless_partial(mid: Path) -> None:
    args = ("diff", "--source", str(mid), "--from", "offset:2500", "--to", "offset:3000")
    r = km(*args)
    assert r.returncode == 1 and "incomplete state at --from" in r.stderr, r.stderr
    assert km(*args, "--partial").returncode == 0


# --- the kind vocabulary -----------------------------------------------------------------------


def test_every_kind_resolves_from_its_singular_plural_and_api_path() -> None:
    from kmevents.api.filters import KIND_PATHS
    from kmevents.kinds import PLURALS, resolve, resolve_all
    from kmevents.reducer import KINDS

    assert set(PLURALS) == set(KINDS)
    for kind in KINDS:
        assert resolve(kind) == resolve(PLURALS[kind]) == resolve(kind.upper()) == kind
    for path, kind in KIND_PATHS.items():  # the API's spellings are the same words
        assert resolve(path) == kind and PLURALS[kind] == path
    assert [resolve(s) for s in ("po", "rc", "svc", "ns", "no", "replicationcontroller", "inverse-offers")] == [
        "pod", "rc", "service", "namespace", "node", "rc", "inverse_offer"]
    assert resolve_all(["pods,po", "svc"]) == ["pod", "service"] and resolve_all(None) is None


def test_an_unknown_kind_is_a_usage_error_naming_the_valid_ones() -> None:
    from kmevents.errors import UsageError
    from kmevents.kinds import resolve

    with pytest.raises(UsageError) as e:
        resolve("deployments")
    assert e.value.exit_code == 2 and "unknown kind 'deployments'" in e.value.message
    assert "agent, cluster, executor" in e.value.message


# --- archive export windows --------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed_capture(tmp_path_factory: pytest.TempPathFactory, recs: list[LogRecord]) -> Path:
    """A capture imported long after it happened: every record logged in 2027, events from 2026."""
    p = tmp_path_factory.mktemp("cap") / "capture.kmarch"
    late = [LogRecord(r.offset, 1_800_000_000_000 + r.offset, r.key, r.value) for r in recs]
    archive.write(p, late, cluster=CLUSTER, partition=1, topic="kmevents.events", covers_from=0)
    return p


def test_archive_export_reads_an_incident_window_in_source_time_and_says_what_it_selected(
        replayed_capture: Path, recs: list[LogRecord], tmp_path: Path) -> None:
    occ = [orjson.loads(r.value)["occurred_at"] for r in recs]
    t1, t2 = occ[1000], occ[2000]
    inside = [i for i, o in enumerate(occ) if t1 <= o <= t2]
    out = tmp_path / "incident.kmarch"
    r = km("archive", "export", "--source", str(replayed_capture), "--from", t1, "--to", t2, "-o", str(out),
           "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"selected events that happened {t1} .. {t2}: offsets {inside[0]}..{inside[-1]} of 0..{EVENTS - 1}" \
        in r.stderr, r.stderr
    h = archive.read_header(out)
    assert (h["covers_from"], h["covers_to"]) == (inside[0], inside[-1]) and h["count"] == inside[-1] - inside[0] + 1
    # the same TIMEs as log times select nothing here (all was logged in 2027): an error, not an empty archive
    empty = km("archive", "export", "--source", str(replayed_capture), "--from", t1, "--to", t2, "--known",
               "-o", str(tmp_path / "empty.kmarch"))
    assert empty.returncode == 2, empty.stdout + empty.stderr
    assert "nothing selected" in empty.stderr and "holds offsets 0..3999" in empty.stderr
    assert not (tmp_path / "empty.kmarch").exists()


def test_archive_export_to_a_missing_folder_fails_before_reading_anything(arc: Path, tmp_path: Path) -> None:
    r = km("archive", "export", "--source", str(arc), "-o", str(tmp_path / "no" / "such" / "x.kmarch"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr, r.stderr


# --- one line, exit 2 for the environment, -v for the traceback --------------------------------


def _one_line(r: subprocess.CompletedProcess[str], command: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"kmevents {command}: "), r.stderr
    assert "Traceback" not in r.stderr and "AioRpcError" not in r.stderr
    return lines[0]


def test_a_missing_anchor_or_archive_file_is_one_line_and_exit_2(arc: Path, tmp_path: Path) -> None:
    r = km("verify", "--source", str(arc), "--anchor", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "cannot open " in _one_line(r, "verify") and "No such file" in r.stderr
    r = km("archive", "import", str(tmp_path / "nope.kmarch"), "--topic", "copy")
    assert r.returncode == 2 and "no such archive" in _one_line(r, "archive")
    r = km("ingest", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 2 and "cannot read" in _one_line(r, "ingest")


def test_report_to_a_missing_folder_fails_at_once_not_after_the_replay(arc: Path) -> None:
    r = km("report", "--source", str(arc), "-o", "no/such/dir/r.html")
    assert r.returncode == 2 and "the folder no/such/dir does not exist" in _one_line(r, "report")
    assert "replaying" not in r.stderr and r.stdout == ""


def test_reading_commands_with_the_stack_down_say_so_in_one_line_and_v_adds_the_traceback() -> None:
    r = km("state", "--cluster", "nowhere")
    line = _one_line(r, "state")
    assert r.returncode == 2 and "cannot read the partition map from etcd at http://127.0.0.1:9" in line
    assert "UNAVAILABLE" in line and "hint: start the stack" in line
    v = km("-v", "state", "--cluster", "nowhere")
    assert v.returncode == 2 and "Traceback (most recent call last)" in v.stderr
    assert v.stderr.rstrip().splitlines()[-1] == line  # the same one line ends it
    after = km("state", "--cluster", "nowhere", "-v")  # -v after the command works too
    assert after.returncode == 2 and "Traceback" in after.stderr


def test_daemons_with_the_stack_down_name_what_does_not_answer_in_one_line() -> None:
    r = km("process", "--engine", "plain", "--metrics-port", "0")
    assert r.returncode == 2, r.stderr
    assert "Kafka at 127.0.0.1:9 and etcd at http://127.0.0.1:9 do not answer" in r.stderr
    assert "Traceback" not in r.stderr and "starting the derivation worker" in r.stderr
    r = km("process", "--metrics-port", "0")  # the Faust engine: checked before Faust starts
    assert r.returncode == 2 and "do not answer" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = km("monitor", "--cluster", "x", "--once")
    assert r.returncode == 2 and "do not answer" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = km("ingest", "-")
    assert r.returncode == 2 and "Kafka at 127.0.0.1:9 is unavailable" in _one_line(r, "ingest")


def test_an_unforeseen_error_is_one_line_exit_3_naming_it_a_bug() -> None:
    from kmevents.cli import INTERNAL_ERROR, failure

    code, line = failure(ZeroDivisionError("division by zero"))
    assert (code, line) == (INTERNAL_ERROR, "internal error: ZeroDivisionError: division by zero")
    code, line = failure(FileNotFoundError(2, "No such file or directory", "/x/y"))
    assert (code, line) == (2, "cannot open /x/y: No such file or directory (hint: check the path)")


def test_every_command_i_answer_for_has_an_example_in_its_help() -> None:
    for argv in (["diff"], ["state"], ["verify"], ["archive"], ["ingest"], ["process"], ["api"], ["monitor"]):
        out = km(*argv, "--help").stdout
        assert "examples:" in out and f"kmevents {argv[0]} " in out.split("examples:", 1)[1], argv
