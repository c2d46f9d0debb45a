"""One runner for every benchmark: ``python -m bench.run [NAME ...] [--quick]``.

Each ``bench/bench_<name>.py`` module exposes ``run(quick: bool) -> list[dict]``.
Every result dict holds:

    name            what was measured ("strict validate+encode")
    figure, unit    the measured value (e.g. 41234.0, "events/s")
    baseline        what the same-run reference is ("orjson.loads of the same bytes")
    baseline_figure the reference measured in the same run, same unit
    ratio           figure / baseline_figure
    aim             the issue's bar, as text ("≥ 30k events/s per core")
    met             True / False / None (None: no bar)
    notes           free text (sizes, counts, peak memory, ...)

Results are printed as a table and written to ``bench/results/<name>.json``
with the machine and date, so BENCHMARKS.md can quote them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(available())}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or available()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = False
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}", flush=True)
        results = mod.run(quick=args.quick)
        for r in results:
            ratio = r.get("ratio")
            print(f"  {r['name']}: {r['figure']:,.1f} {r['unit']}"
                  + (f"  | baseline {r['baseline']}: {r['baseline_figure']:,.1f}  ratio {ratio:.2f}"
                     if r.get("baseline_figure") else "")
                  + (f"  | aim {r['aim']}: {'met' if r.get('met') else 'NOT met'}" if r.get("aim") else ""),
                  flush=True)
            if r.get("notes"):
                print(f"    {r['notes']}")
        record = {
            "benchmark": name,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "machine": machine(),
            "results": results,
        }
        (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
