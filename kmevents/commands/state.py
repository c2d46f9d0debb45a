"""``kmevents state``: one cluster's state at a time or offset, replayed from the log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = """\
Rebuild one cluster's state by folding its log with the reducer, at a point:

  (default)         the latest record of the log
  --at TIME         SOURCE time: the events whose occurred_at <= TIME, folded in
                    log order (what had happened by then; late events included,
                    events that happened later but were logged earlier left out)
  --known-at TIME   LOG time: what the log had recorded by TIME (log-append
                    time, via Kafka offsets-for-times): what the system knew
  --offset N        every record of the cluster's partition up to offset N

TIME is ISO 8601 with a zone (2026-01-01T00:05:00Z), epoch milliseconds, or
relative to now (-15m, -2h, -1d). Bounds are inclusive. The output always
shows the last event applied with BOTH its times (occurred_at, recorded_at)
and the ingest lag between them. The replay starts from the newest snapshot
at or before the point, so a query costs bounded work. With --at it reads on
past the point for late arrivals only as far as the worker's touched-entity
index says an event may have happened by TIME (without one, to the log's end;
--max-lag bounds it by log time instead).

By default it prints a summary: the point, then per kind how many entities
there are and how many stand in each condition, the leading master and k8sm's
leader. The entities themselves: `kmevents get KIND` (a table), or
--format json, which writes each entity with its computed `condition` (a
deleted pod is Deleted whatever its last phase; jq
'select(.condition=="Running")' counts what the summary counts). It is
written entity by entity as it goes, never built whole in memory; --kinds
limits it to some kinds (pod,task; plurals and short names work: pods, po).

No answer is better than a wrong one:
- a point before the log's first event (nothing had happened, or been
  recorded, yet) is an error that says where the log starts (exit 1);
- a state that cannot be complete (archives that start mid-log without a
  snapshot at or before the point, or sources with gaps) is printed with a
  warning that says why, and exits 1 unless --partial.

examples:
  kmevents state --cluster prod
  kmevents state --cluster prod --at 'yesterday 14:05' --tz local
  kmevents state --source incident.kmarch --offset 41200
  kmevents state --cluster prod --known-at -15m --format json --kinds pods | jq '.state.pod[] | select(.condition=="Running")'
  kmevents state --cluster prod --format json --kinds task,agent > state.json
  kmevents state --source part-40000.kmarch --partial

"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("state", help="a cluster's state at a time or offset (replayed from the log)",
                       description=HELP + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--at", metavar="TIME", help="source time: events that occurred at or before TIME")
    g.add_argument("--known-at", metavar="TIME", help="log time: what the log had recorded by TIME")
    g.add_argument("--offset", type=int, metavar="N", help="offset in the cluster's partition (inclusive)")
    p.add_argument("--max-lag", metavar="DURATION",
                   help="with --at: stop reading where the log time passes TIME + DURATION (e.g. 1h); "
                        "default: as far as the touched-entity index says an event may have happened by "
                        "TIME (without one, to the end of the log)")
    p.add_argument("--kinds", action="append", metavar="KIND[,KIND]",
                   help="only these kinds (pod,task; plural or short names; repeatable): the entities "
                        "--format json writes, the rows of the summary; default all")
    p.add_argument("--partial", action="store_true",
                   help="accept a state that cannot be complete (exit 0; the warning stays)")
    add_source_flags(p)
    p.set_defaults(func=run)


def target_from(args: argparse.Namespace) -> Any:
    from kmevents.replay.engine import Target

    return Target.parse(at=args.at, known_at=args.known_at, offset=args.offset,
                        max_lag=getattr(args, "max_lag", None))


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.errors import CheckFailed
    from kmevents.kinds import resolve_all
    from kmevents.replay import render
    from kmevents.replay.engine import replay

    target = target_from(args)
    kinds = resolve_all(args.kinds)  # an unknown kind is refused before any replay

    async def main() -> int:
        async with open_source(args) as o:
            if o.snapshots is not None:
                o.snapshots.one_point()  # one state read: no base held beside it
            r = await replay(o.source, o.cluster, target, snapshots=o.snapshots,
                             progress=not args.no_progress)
        pos = r.position()
        before = render.before_log_text(pos)
        if before is not None:
            raise CheckFailed(before, hint="give a point at or after the log's start")
        if args.format == "json":
            with render.JsonStream() as js:
                render.write_state_json(js, pos, r.state, kinds)
        else:
            print("\n".join(render.position_lines(pos)))
            print()
            print(render.state_summary(r.state, kinds))
            if r.annotations:
                print()
                print("reducer annotations: " + ", ".join(f"{k} {v}" for k, v in sorted(r.annotations.items())))
        if r.incomplete is not None:
            if args.partial:
                return 0
            print(f"kmevents state: the state is incomplete: {r.incomplete}; add --partial to accept it (exit 0)",
                  file=sys.stderr)
            return 1
        return 0

    return run_async(main)
