"""Simulator throughput: canonical JSON lines written to a file, and its memory at scale.

Figures:

1. the default cluster (50 agents, ~500 pods): ``iter_lines`` written to a
   temporary file in 4096-line chunks, as ``kmevents simulate -o FILE`` does.
   Baseline, in the same run: writing the same number of pre-made identical
   lines (one typical line, repeated) the same way, i.e. the cost of the file
   alone. The figure is events per second of *CPU time* of this process
   (``time.process_time``): the benchmark machine is shared, and wall-clock time
   measures the neighbours; the wall-clock rate is in the notes.
2. constant memory: peak RSS of the default cluster for N and for 4N events
   (child processes); the figure is the ratio, aim <= 1.2.
3. a 10,000-agent cluster (~100k pods), generated to ``/dev/null`` in a child
   process (``kmevents simulate``), with the child's peak RSS in the notes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import Any

from kmevents.simulate import iter_lines

CHUNK = 4096


def _write(lines: Iterable[bytes], path: str) -> int:
    n = 0
    buf: list[bytes] = []
    with open(path, "wb") as fh:
        for line in lines:
            buf.append(line)
            if len(buf) >= CHUNK:
                fh.write(b"".join(buf))
                n += len(buf)
                buf.clear()
        if buf:
            fh.write(b"".join(buf))
            n += len(buf)
    return n


def _timed(lines: Iterable[bytes], path: str) -> tuple[int, float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = _write(lines, path)
    return n, time.process_time() - cpu, time.perf_counter() - wall, os.path.getsize(path)


def _child(argv: list[str]) -> tuple[dict[str, Any], float, float, int]:
    """Run ``kmevents simulate`` in a child; return its summary, CPU s, wall s, peak RSS (KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kmevents.cli", "simulate", *argv,
                           "--format", "json", "--quiet"],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout), cpu, wall, after.ru_maxrss


def run(quick: bool) -> list[dict[str, Any]]:
    n = 100_000 if quick else 1_000_000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kmevents-bench-sim-") as tmp:
        path = os.path.join(tmp, "sim.jsonl")
        best: tuple[int, float, float, int] | None = None
        for _ in range(1 if not quick else 2):
            got = _timed(iter_lines("bench", 1, n), path)
            if best is None or got[1] < best[1]:
                best = got
        assert best is not None
        count, cpu, wall, size = best
        with open(path, "rb") as fh:
            sample = [fh.readline() for _ in range(2000)]
        typical = sorted(sample, key=len)[len(sample) // 2]
        base = min((_timed((typical for _ in range(count)), path) for _ in range(2)),
                   key=lambda r: r[1])
        figure = count / cpu
        base_figure = base[0] / base[1]
        results.append({
            "name": "simulate -> file (50 agents, ~500 pods)",
            "figure": figure,
            "unit": "events/s (CPU time)",
            "baseline": "writing the same number of one pre-made typical line",
            "baseline_figure": base_figure,
            "ratio": figure / base_figure,
            "aim": ">= 100k events/s written to a file",
            "met": figure >= 100_000,
            "notes": (f"{count:,} events, {size / count:.0f} bytes/event mean, "
                      f"wall-clock {count / wall:,.0f} events/s on a shared machine "
                      f"(load {os.getloadavg()[0]:.1f}); one core"),
        })

    small, large = (100_000, 400_000) if quick else (250_000, 1_000_000)
    rss_small = _child(["--cluster", "bench-mem", "--events", str(small), "-o", os.devnull])[3]
    rss_large = _child(["--cluster", "bench-mem", "--events", str(large), "-o", os.devnull])[3]
    # ru_maxrss of children is the max over all children so far: measure these before the
    # 10k-agent child, small before large, so that only a growth would show.
    ratio = rss_large / rss_small
    results.append({
        "name": "peak RSS, 4x the events (default cluster)",
        "figure": ratio,
        "unit": "x",
        "baseline": None, "baseline_figure": None, "ratio": None,
        "aim": "<= 1.2 (constant memory in N)",
        "met": ratio <= 1.2,
        "notes": f"{small:,} events: {rss_small / 1024:.0f} MiB max so far; {large:,}: {rss_large / 1024:.0f} MiB",
    })
    big_n = 200_000 if quick else 2_000_000
    summary, cpu, wall, rss = _child(["--cluster", "bench-big", "--events", str(big_n),
                                      "--agents", "10000", "-o", os.devnull])
    results.append({
        "name": "simulate 10,000 agents (~100k pods) -> /dev/null",
        "figure": summary["events"] / cpu,
        "unit": "events/s (CPU time)",
        "baseline": None, "baseline_figure": None, "ratio": None,
        "aim": None,
        "met": None,
        "notes": (f"{summary['events']:,} events in a child process (bootstrap of 10k agents and "
                  f"~100k pods included), peak RSS {rss / 1024:.0f} MiB, "
                  f"wall-clock {summary['events'] / wall:,.0f} events/s"),
    })

    return results
