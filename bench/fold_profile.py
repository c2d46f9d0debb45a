"""Where the fold's time goes, per event type: ``python -m bench.fold_profile [N] [--log FILE]``.

Folds N events (default 300,000) of the fold bench's log (``bench_fold.log_bytes``)
or of a JSON-lines file (``kmevents simulate -o FILE``) the way the bench
does (``orjson.loads`` then ``apply``, inside ``few_collections``) and charges
each call's CPU time (``time.thread_time_ns``, one clock read subtracted) to
the event's type. ``apply`` includes the envelope work (dedupe, annotations)
and releasing the previous event. Prints a table sorted by count; the clock
reads make the total ~20 % slower than the bench, so read the shares, not the rates.

``--packed`` adds what the packed tables (kmevents/reducer/packed.py) cost inside ``apply``,
per kind: re-encoding the entities a pack finds hot, and decoding an entity on its first
read since the last pack (their functions wrapped and timed, which adds a little).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
from typing import Any

import orjson


def _time_packed(tables: dict[str, Any], clock: Any) -> tuple[Counter[str], Counter[str], Any]:
    """Wrap packed.py's pack and _decode (as apply reaches them) to charge their CPU time to
    the table's kind; returns (nanoseconds, calls) by "pack <kind>" / "decode <kind>" and an undo."""
    from kmevents.reducer import packed

    mod = importlib.import_module("kmevents.reducer.apply")  # the module: the package's ``apply`` is the function

    ns: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    kind_of = {id(t): k for k, t in tables.items()}
    pack, decode = packed.pack, packed.PackedTable._decode

    def timed_pack(table: Any) -> int:
        a = clock()
        n = pack(table)
        ns["pack " + kind_of.get(id(table), "?")] += clock() - a
        calls["pack " + kind_of.get(id(table), "?")] += n
        return n

    def timed_decode(self: Any, v: bytes) -> Any:
        a = clock()
        out = decode(self, v)
        ns["decode " + kind_of.get(id(self), "?")] += clock() - a
        calls["decode " + kind_of.get(id(self), "?")] += 1
        return out

    pack_tables = mod.pack_tables

    def timed_tables(ts: dict[str, Any]) -> None:
        for kind in packed.PACKED_KINDS:
            timed_pack(ts[kind])

    mod.pack_tables = timed_tables
    packed.PackedTable._decode = timed_decode  # type: ignore[method-assign]

    def undo() -> None:
        mod.pack_tables = pack_tables
        packed.PackedTable._decode = decode  # type: ignore[method-assign]

    return ns, calls, undo


def profile(lines: list[bytes], *, packed: bool = False) -> str:
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
    if packed:
        p_ns, p_calls, undo = _time_packed(st._tables, clock)
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
    if packed:
        undo()
    n = len(lines)
    all_apply = sum(t_apply.values())
    out = [f"{n:,} events; per event: orjson.loads {sum(t_loads.values()) / n / 1e3:.2f} µs, "
           f"apply {all_apply / n / 1e3:.2f} µs (clock read {read:.0f} ns subtracted)",
           f"{'type':32} {'count':>8} {'share':>6} {'bytes':>6} {'loads µs':>9} {'apply µs':>9} {'of apply':>9}"]
    for typ, c in n_of.most_common():
        out.append(f"{typ:32} {c:8,} {c / n:6.1%} {size[typ] / c:6.0f} {t_loads[typ] / c / 1e3:9.2f} "
                   f"{t_apply[typ] / c / 1e3:9.2f} {t_apply[typ] / all_apply:9.1%}")
    if packed:
        out.append(f"packed tables: {sum(p_ns.values()) / n / 1e3:.2f} µs per event of the log, "
                   f"{sum(p_ns.values()) / all_apply:.1%} of apply")
        for part, t in p_ns.most_common():
            out.append(f"  {part:30} {p_calls[part]:8,} x {t / max(p_calls[part], 1) / 1e3:6.2f} µs "
                       f"= {t / n / 1e3:5.2f} µs per event")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 300_000
    if "--log" in argv:
        with open(argv[argv.index("--log") + 1], "rb") as f:
            lines = f.read().splitlines()[:n]
    else:
        from bench.bench_fold import log_bytes

        lines = log_bytes(n)
    print(profile(lines, packed="--packed" in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
