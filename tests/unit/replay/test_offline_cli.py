"""The reading commands on archives alone, with no server anywhere (unreachable endpoints)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from kmevents.replay import archive
from kmevents.replay.records import LogRecord

from kmevents.simulate import generate
from kmevents.timespec import micros_of

CLUSTER = "laptop"


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("arc") / "laptop.kmarch"
    recs = []
    for i, ev in enumerate(generate(CLUSTER, 9, 4000, agents=6)):
        recs.append(LogRecord(i, micros_of(ev["occurred_at"]) // 1000 + 50, CLUSTER.encode(),
                              orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)))
    archive.write(p, recs, cluster=CLUSTER, partition=1, topic="kmevents.events", covers_from=0)
    return p


def km(*argv: str) -> subprocess.CompletedProcess[str]:
    # Nothing listens on these: any attempt to reach a server would fail the command.
    env = {**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": "127.0.0.1:9", "KMEVENTS_ETCD__ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "kmevents.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def test_state_from_an_archive_shows_both_times_and_the_lag(arc: Path) -> None:
    r = km("state", "--source", str(arc), "--offset", "2500")
    assert r.returncode == 0, r.stderr
    assert "occurred_at 2026-" in r.stdout and "recorded_at 2026-" in r.stdout and re.search(r"ingest lag \+0\.0[45]\d", r.stdout)
    assert "leading master:" in r.stdout
    j = orjson.loads(km("state", "--source", str(arc), "--format", "json").stdout)
    assert j["position"]["last_event"]["offset"] == 3999 and j["state"]["agent"]


def test_diff_between_two_offsets_lists_field_changes(arc: Path) -> None:
    r = km("diff", "--source", str(arc), "--from", "offset:1000", "--to", "offset:3000", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = orjson.loads(r.stdout)
    assert d["counts"]["task"]["added"] > 0
    some = next(iter(d["changed"]["task"].values()))
    assert {"path", "before", "after"} <= set(some[0])


def test_history_of_a_pod_follows_its_task_from_offer_to_status(arc: Path) -> None:
    j = orjson.loads(km("state", "--source", str(arc), "--format", "json").stdout)
    pod = next(p for p in j["state"]["pod"].values() if p.get("task_id") and p.get("offer_id"))
    r = km("history", f"pod/{pod['id']}", "--source", str(arc), "--format", "json")
    assert r.returncode == 0, r.stderr
    h = orjson.loads(r.stdout)
    types = [e["type"] for e in h["events"]]
    assert types[0] == "offer.offered" or "offer.offered" in types
    assert "task.launched" in types and "pod.scheduled" in types and "task.status_updated" in types
    # the pod names k8sm's task id; the task entity is <framework_id>/<task_id> (issue 16)
    assert any(r.startswith("task/") and r.endswith(f"/{pod['task_id']}") for r in h["related"]), h["related"]
    offs = [e["offset"] for e in h["events"]]
    assert offs == sorted(offs)


def test_history_says_a_deleted_pod_is_deleted_not_its_last_phase(arc: Path) -> None:
    j = orjson.loads(km("state", "--source", str(arc), "--format", "json").stdout)
    pod = next(p for p in j["state"]["pod"].values() if p.get("deleted") and p.get("phase") == "Running")
    h = orjson.loads(km("history", f"pod/{pod['id']}", "--source", str(arc), "--format", "json").stdout)
    last = [e for e in h["events"] if f"pod/{pod['id']}" in e["results"]][-1]
    assert last["type"] == "pod.deleted" and last["results"][f"pod/{pod['id']}"]["condition"] == "Deleted"


def test_condition_words() -> None:
    from kmevents.reducer.conditions import condition

    assert condition(None) == "removed"
    assert condition({"state": "TASK_LOST"}) == "TASK_LOST"
    assert condition({"phase": "Running", "evicted": None, "deleted": None}) == "Running"
    assert condition({"phase": "Running", "evicted": {"reason": "node_pressure"}, "deleted": None}) == "Evicted"
    assert condition({"phase": "Running", "evicted": {"reason": "x"}, "deleted": {"reason": "y"}}) == "Deleted"
    assert condition({"ready": False}) == "NotReady"


def test_history_with_a_label_selector_selects_several_pods(arc: Path) -> None:
    j = orjson.loads(km("state", "--source", str(arc), "--format", "json").stdout)
    app = next(p["labels"]["app"] for p in j["state"]["pod"].values() if (p.get("labels") or {}).get("app"))
    h = orjson.loads(km("history", "pod", "-l", f"app={app}", "--source", str(arc), "--format", "json").stdout)
    assert len(h["targets"]) >= 2


def test_search_by_type_glob_and_offset_range(arc: Path) -> None:
    r = km("search", "--source", str(arc), "--type", "pod.*", "--from", "offset:100", "--to", "offset:900",
           "--format", "json")
    assert r.returncode == 0, r.stderr
    hits = orjson.loads(r.stdout)["events"]
    assert hits and all(h["event"]["type"].startswith("pod.") and 100 <= h["offset"] <= 900 for h in hits)


def test_verify_offline_is_clean_then_finds_a_changed_record(arc: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    ok = km("verify", "--source", str(arc), "--export-anchor", str(anchor))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    recs = [r for b in archive.iter_batches(arc) for r in b]
    h = archive.read_header(arc)
    recs[10].value = recs[10].value.replace(b'"cluster":"laptop"', b'"cluster":"laptop" ')
    bad = tmp_path / "bad.kmarch"
    archive.write(bad, recs, cluster=CLUSTER, partition=1, topic="x", covers_from=0)
    # keep the original header's end head: the archive now claims a chain its records do not give
    data = bad.read_bytes()
    hb = archive.read_header(bad)
    hb["chain_head_end"] = h["chain_head_end"]
    new_h = orjson.dumps(hb, option=orjson.OPT_SORT_KEYS)
    old_len = int.from_bytes(data[9:13], "big")
    bad.write_bytes(archive.MAGIC + len(new_h).to_bytes(4, "big") + new_h + data[13 + old_len:])
    r = km("verify", "--source", str(bad), "--anchor", str(anchor), "--format", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    kinds = {f["kind"] for f in orjson.loads(r.stdout)["drift"]}
    assert kinds == {"chain", "anchor"}


def test_usage_errors_exit_2(arc: Path) -> None:
    assert km("state", "--source", str(arc), "--at", "tomorrow").returncode == 2
    assert km("state", "--source", "/nonexistent.kmarch").returncode == 2
    assert km("history", "nonsense/x", "--source", str(arc)).returncode == 2


# -- the settings of an archive-only read: deferred, still checked (commands/_common.settings_from) --

def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment with no KMEVENTS_* variable and no config file, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KMEVENTS_")}
    return {**env, "KMEVENTS_CONFIG": str(tmp_path / "no-config.toml"), **extra}


_PROBE = ("import sys; from kmevents.cli import main; code = main(sys.argv[1:]); "
          "print('pydantic loaded' if 'pydantic' in sys.modules else 'no pydantic', file=sys.stderr); "
          "sys.exit(code)")


def test_an_archive_read_with_no_settings_given_loads_no_pydantic(arc: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", _PROBE, "state", "--source", str(arc), "--no-progress"],
                       env=_bare_env(tmp_path, KMEVENTS_TZ="UTC"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "last event applied" in r.stdout and "no pydantic" in r.stderr


@pytest.mark.parametrize(("extra", "code", "says"), [
    ({"KMEVENTS_ETCD__ENDPOINT": "etcd:2379"}, 2, "bad setting KMEVENTS_ETCD__ENDPOINT: etcd endpoint needs a scheme"),
    ({"kmevents_kafka__partitions": "six"}, 2, "bad setting kmevents_kafka__partitions: Input should be a valid integer"),
    ({"KMEVENTS_CONTEXT": "prod"}, 2, "context 'prod' (from KMEVENTS_CONTEXT) is not in"),
])
def test_a_bad_setting_is_still_refused_before_an_archive_is_read(arc: Path, tmp_path: Path, extra: dict[str, str],
                                                                 code: int, says: str) -> None:
    r = subprocess.run([sys.executable, "-m", "kmevents.cli", "state", "--source", str(arc), "--no-progress"],
                       env=_bare_env(tmp_path, **extra), capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (code, "") and says in r.stderr, r.stderr


def test_a_bad_config_file_is_still_refused_before_an_archive_is_read(arc: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('current-context = "lab"\n[contexts.lab]\ncluster = "x"\n[contexts.lab.kafak]\nbootstrap = "k:1"\n')
    r = subprocess.run([sys.executable, "-m", "kmevents.cli", "state", "--source", str(arc), "--no-progress"],
                       env={**_bare_env(tmp_path), "KMEVENTS_CONFIG": str(cfg)}, capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stdout) == (2, "") and "unknown setting 'kafak'; did you mean 'kafka'?" in r.stderr, r.stderr
