"""`kmevents import ... --dry-run` on every file of the real-shape corpus explains every record
(issue 16, "Done when"): records in = records that gave events + skipped + quarantined, and
nothing unexplained; what ingest would write passes its checks (nothing refused)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REAL = Path(__file__).resolve().parents[2] / "corpus" / "real"


def _cases() -> list[tuple[str, list[Path], list[str]]]:
    out: list[tuple[str, list[Path], list[str]]] = []
    for f in sorted((REAL / "k8s-audit").iterdir()):
        out.append(("k8s-audit", [f], []))
    for f in sorted((REAL / "k8s-watch").iterdir()):
        out.append(("k8s-watch", [f], []))
    for d in sorted((REAL / "mesos-state").iterdir()):
        out.append(("mesos-state", sorted(p for p in d.iterdir() if p.name != "expected.txt"), []))
    for stream in ("operator", "scheduler"):
        for d in sorted((REAL / f"mesos-{stream}").iterdir()):
            rio = sorted(d.glob("*.recordio"))
            extra = ["--stream", stream]
            info = d / "framework_info.json"
            if stream == "scheduler" and info.exists():
                extra += ["--framework-info", str(info)]
            out.append(("recordio", rio, extra))
    return out


CASES = _cases()


@pytest.mark.parametrize("kind, files, extra", CASES,
                         ids=[f"{k}:{fs[0].parent.name if k != 'k8s-audit' and k != 'k8s-watch' else fs[0].name}"
                              for k, fs, _ in CASES])
def test_a_dry_run_import_of_a_corpus_file_explains_every_record(kind: str, files: list[Path], extra: list[str],
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    r = subprocess.run([sys.executable, "-m", "kmevents.cli", "import", kind, *map(str, files), *extra,
                        "--dry-run", "-o", str(out), "--cluster", "corpus", "--format", "json"],
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode in (0, 1), r.stderr[-2000:]
    doc = orjson.loads(r.stdout)
    for name, t in doc["sources"].items():
        assert t["unexplained"] == 0, (name, t)
        assert t["in"] == t["records_with_events"] + t["skipped"] + t["quarantined"], (name, t)
        assert t["refused"] == 0, (name, t["refusals"])
    written = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    assert len(written) == doc["total"]["out"]
