"""Run a command and say its peak RSS, measured from a small launcher process.

    python -m bench._peak OUT_FILE CMD ARG...

A child started by a large benchmark process reports at least that process's peak
RSS as its own (Linux keeps the high-water mark across exec, and Python starts
children with vfork where it can), so a child's ``ru_maxrss`` read by the benchmark
is the benchmark's. This launcher is small: the figure it writes to OUT_FILE
(``{"peak_rss_mib": ..., "tree_peak_rss_mib": ..., "returncode": ...}``) is the command's
own. ``tree_peak_rss_mib``: the largest sum of the RSS of the command and every process it
started, sampled every 0.2 s (a command that splits its work over processes, like
``verify --jobs``, holds that much at once). The command's stdin, stdout and stderr are the
launcher's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _tree_rss_kib(root: int) -> int:
    """The RSS of ``root`` and all its descendants now (KiB), from /proc."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                st = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in st.splitlines() if ":" in line)
        pid = int(d)
        kids.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(kids.get(pid, ()))
    return total


def main(argv: list[str]) -> int:
    out, cmd = Path(argv[0]), argv[1:]
    proc = subprocess.Popen(cmd)
    tree = 0
    while proc.poll() is None:
        tree = max(tree, _tree_rss_kib(proc.pid))
        time.sleep(0.2)
    rc = proc.returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out.write_text(json.dumps({"peak_rss_mib": round(peak, 1), "tree_peak_rss_mib": round(max(tree / 1024, peak), 1),
                               "returncode": rc}))
    return rc


def wrap(cmd: list[str], out: Path) -> list[str]:
    """``cmd`` run through this launcher, writing its figures to ``out``."""
    return [sys.executable, "-m", "bench._peak", str(out), *cmd]


def peak_of(out: Path) -> float:
    return float(json.loads(out.read_text())["peak_rss_mib"])


def tree_peak_of(out: Path) -> float:
    return float(json.loads(out.read_text()).get("tree_peak_rss_mib", 0.0))


def run_kmevents(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """``kmevents ARGV`` in a child with ``env`` on top of this process's: its wall seconds,
    its own peak RSS (MiB) and its stdout. Raises RuntimeError with its stderr's tail when it
    fails."""
    wall, peak, _, out = run_kmevents_tree(argv, env)
    return wall, peak, out


def _run(argv: list[str], env: dict[str, str], fig: Path, stdout: Any) -> tuple[float, bytes]:
    """``kmevents ARGV`` in a child measured into ``fig``, its stdout to ``stdout``: its wall seconds
    and stdout (empty when it went elsewhere). Raises RuntimeError with its stderr's tail when it fails."""
    t = time.perf_counter()
    proc = subprocess.run(wrap([sys.executable, "-m", "kmevents.cli", *argv], fig), env={**os.environ, **env},
                          stdout=stdout, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"kmevents {' '.join(argv)} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-1500:]}")
    return wall, proc.stdout or b""


def run_kmevents_tree(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """:func:`run_kmevents` with the peak of its whole process tree's RSS (MiB) too."""
    with tempfile.TemporaryDirectory() as d:
        fig = Path(d) / "peak.json"
        wall, out = _run(argv, env, fig, subprocess.PIPE)
        return wall, peak_of(fig), tree_peak_of(fig), out.decode()


def run_kmevents_to_file(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """:func:`run_kmevents` with its stdout written to a file, not held here (a listing of a large
    state is hundreds of MB): wall seconds, its own peak RSS (MiB), the bytes it wrote."""
    with tempfile.TemporaryDirectory() as d:
        fig, out = Path(d) / "peak.json", Path(d) / "stdout"
        with out.open("wb") as f:
            wall, _ = _run(argv, env, fig, f)
        return wall, peak_of(fig), out.stat().st_size


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
