"""Where the fold's time goes, per event type: ``python -m bench.fold_profile [N] [--log FILE]``.

Folds N events (default 300,000) of the fold bench's log (``bench_fold.log_bytes``)
or of a JSON-lines file (``kmevents simulate -o FILE``) the way the bench
does (``orjson.loads`` then ``apply``, inside ``few_collections``) and charges
each call's CPU time (``time.thread_time_ns``, one clock read subtracted) to
the event's type. ``apply`` includes the envelope work (dedupe, annotations)
and releasing the previous event. Prints a table sorted by count; the clock
reads make the total ~20 % slower than the bench, so read the shares, not the rates.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import orjson


def profile(lines: list[bytes]) -> str:
    from kmevents.reducer import ClusterState, apply, few_collections

    clock = time.thread_time_ns
    t0 = clock()
    for _ in range(100_000):
        clock()
    read = (clock() - t0) / 100_000
    st = ClusterState.empty(orjson.loads(lines[0])["cluster"])
    loads = orjson.loads
    n_of: Counter[str] = Counter()
    size: Counter[str] = Counter()
    t_loads: Counter[str] = Counter()
    t_apply: Counter[str] = Counter()
    with few_collections():
        for i, b in enumerate(lines):
            a = clock()
            ev = loads(b)
            m = clock()
            apply(st, ev, partition=0, offset=i)
            z = clock()
            typ = ev["type"]
            n_of[typ] += 1
            size[typ] += len(b)
            t_loads[typ] += m - a - read
            t_apply[typ] += z - m - read
    n = len(lines)
    all_apply = sum(t_apply.values())
    out = [f"{n:,} events; per event: orjson.loads {sum(t_loads.values()) / n / 1e3:.2f} µs, "
           f"apply {all_apply / n / 1e3:.2f} µs (clock read {read:.0f} ns subtracted)",
           f"{'type':32} {'count':>8} {'share':>6} {'bytes':>6} {'loads µs':>9} {'apply µs':>9} {'of apply':>9}"]
    for typ, c in n_of.most_common():
        out.append(f"{typ:32} {c:8,} {c / n:6.1%} {size[typ] / c:6.0f} {t_loads[typ] / c / 1e3:9.2f} "
                   f"{t_apply[typ] / c / 1e3:9.2f} {t_apply[typ] / all_apply:9.1%}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 300_000
    if "--log" in argv:
        with open(argv[argv.index("--log") + 1], "rb") as f:
            lines = f.read().splitlines()[:n]
    else:
        from bench.bench_fold import log_bytes

        lines = log_bytes(n)
    print(profile(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
