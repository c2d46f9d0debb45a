"""The large-profile log the benches share: generated once, then reused.

    from bench.large_log import large_log
    log = large_log()              # 1.5M events of `kmevents simulate --profile large`
    log.path                       # a JSON-lines file, the bytes `simulate -o` writes
    log.bootstrap_events           # the attach (~322,000 events); the churn follows
    log.meta                       # its recipe, size, and what writing it cost

    python -m bench.large_log                 # write it if needed; print its recipe and cost
    python -m bench.large_log --shape         # and what it holds: agents, running pod tasks,
                                              # task ends, events/s of source time
    python -m bench.large_log --fold          # and fold it once (kmevents.reducer.fold):
                                              # annotations by kind, seconds, peak RSS
    python -m bench.large_log --scale 0.02 --events 30000 --shape   # the same shape, small

Where: ``$KMEVENTS_BENCH_CACHE``, else ``~/.cache/kmevents/bench``. A file is reused
only when its recipe matches: cluster, seed, events, scale, and a digest of the
simulator's source (``kmevents/simulate/`` and the event-id recipe), so a change to
what the simulator emits writes a new file. It is written by ``kmevents simulate``
in a child process (the child's peak RSS is the generation's), under a temporary
name renamed into place once complete; its sidecar ``.json`` keeps the figures
(and, once measured, its shape and fold).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "large"
EVENTS = 1_500_000
SOURCES = ("kmevents/simulate", "kmevents/contract/ids.py")
"""What the log's bytes depend on: a change here writes a new file."""


@dataclass(frozen=True)
class LargeLog:
    path: Path
    meta: dict[str, Any]

    @property
    def bootstrap_events(self) -> int:
        """Events of the attach, at the head of the file."""
        return int(self.meta["bootstrap_events"])

    @property
    def events(self) -> int:
        return int(self.meta["recipe"]["events"])


def cache_dir() -> Path:
    where = os.environ.get("KMEVENTS_BENCH_CACHE")
    return Path(where) if where else Path.home() / ".cache" / "kmevents" / "bench"


def source_digest() -> str:
    """sha256 of the simulator's source files (paths and bytes, in a fixed order)."""
    h = hashlib.sha256()
    for rel in SOURCES:
        base = ROOT / rel
        files = sorted(base.rglob("*.py")) if base.is_dir() else [base]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def recipe(events: int, scale: float, seed: int, cluster: str, profile: str = "large") -> dict[str, Any]:
    return {"cluster": cluster, "seed": seed, "events": events, "profile": profile,
            "scale": scale, "source": source_digest()}


def large_log(events: int = EVENTS, *, scale: float = 1.0, seed: int = 1,
              cluster: str = CLUSTER, profile: str = "large") -> LargeLog:
    """The log of that recipe: the cached file, or a new one written now (a minute at 1.5M).
    ``profile``: the simulator's (``default``: its own scale, for the aims "at the simulator's
    scale"; ``large``: the real cluster's)."""
    rec = recipe(events, scale, seed, cluster, profile)
    key = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:12]
    d = cache_dir()
    name = cluster if profile == "large" else f"{cluster}-{profile}"
    path = d / f"{name}-{events}-x{scale:g}-s{seed}-{key}.jsonl"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") == rec and path.stat().st_size == meta.get("bytes"):
            return LargeLog(path, meta)
    d.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    argv = [sys.executable, "-m", "kmevents.cli", "simulate", "--cluster", cluster,
            "--seed", str(seed), "--events", str(events), "--profile", profile,
            "--scale", repr(scale), "-o", str(tmp), "--format", "json", "--quiet"]
    try:
        summary, cost = _child(argv)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {
        "recipe": rec,
        "bytes": path.stat().st_size,
        "bootstrap_events": summary["bootstrap_events"],
        "agents": summary["agents"], "pods": summary["pods"], "rate": summary["rate"],
        "by_type": summary["by_type"],
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "generate": {**cost, "events_per_second_wall": round(events / cost["wall_seconds"]),
                     "events_per_second_cpu": round(events / cost["cpu_seconds"])},
    }
    _save(meta_path, meta)
    return LargeLog(path, meta)


def _child(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``argv``; its JSON on stdout, and its wall and CPU seconds and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        wall = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - wall
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({proc.returncode}): "
                               f"{err.read().decode(errors='replace')[-2000:]}")
        result = json.loads(out.read())
    return result, {"wall_seconds": round(wall, 2),
                    "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                    "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def _save(meta_path: Path, meta: dict[str, Any]) -> None:
    tmp = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)


def shape(log: LargeLog) -> dict[str, Any]:
    """What the log holds (``kmevents.simulate.shape``), read from the file; kept in the sidecar."""
    if "shape" not in log.meta:
        from kmevents.simulate.shape import Shape

        counted = Shape(bootstrap=log.bootstrap_events)
        with open(log.path, "rb") as fh:
            for line in fh:
                counted.add(orjson.loads(line))
        report = counted.report()
        report.pop("by_type")
        log.meta["shape"] = report
        _save(log.path.with_suffix(".json"), log.meta)
    return dict(log.meta["shape"])


_FOLD = """
import json, sys, time
from collections import Counter
from kmevents.reducer import fold
started = time.perf_counter()
with open(sys.argv[1], "rb") as fh:
    state, annotations = fold(fh, cluster=sys.argv[2])
seconds = time.perf_counter() - started
kinds = Counter(f"{a['kind']} {a['event_type']}" for a in annotations)
print(json.dumps({"fold_seconds": round(seconds, 2), "annotations": dict(kinds.most_common()),
                  "tasks": sum(1 for _ in state.entities("task")),
                  "pods": sum(1 for _ in state.entities("pod"))}))
"""


def fold_once(log: LargeLog) -> dict[str, Any]:
    """Fold the whole log in a child process: annotations by kind, seconds, peak RSS; kept."""
    if "fold" not in log.meta:
        result, cost = _child([sys.executable, "-c", _FOLD, str(log.path),
                               log.meta["recipe"]["cluster"]])
        log.meta["fold"] = {**result, "peak_rss_mib": cost["peak_rss_mib"],
                            "events_per_second": round(log.events / result["fold_seconds"])}
        _save(log.path.with_suffix(".json"), log.meta)
    return dict(log.meta["fold"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_log", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shape", action="store_true", help="count what the log holds")
    parser.add_argument("--fold", action="store_true", help="fold it once and count annotations")
    args = parser.parse_args(argv)
    log = large_log(args.events, scale=args.scale, seed=args.seed)
    if args.shape:
        shape(log)
    if args.fold:
        fold_once(log)
    print(json.dumps({"path": str(log.path), **{k: v for k, v in log.meta.items()
                                                if k != "by_type"}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
