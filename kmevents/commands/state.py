"""``kmevents state``: one cluster's state at a time or offset, replayed from the log."""

from __future__ import annotations

import argparse
from typing import Any

from kmevents.commands._common import emit_json

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
at or before the point, so a query costs bounded work.

examples:
  kmevents state --cluster prod
  kmevents state --cluster prod --at 'yesterday 14:05' --tz local
  kmevents state --cluster prod --known-at -15m --format json | jq .position
  kmevents state --source incident.kmarch --offset 41200

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
                        "default: read to the end of the log")
    add_source_flags(p)
    p.set_defaults(func=run)


def target_from(args: argparse.Namespace) -> Any:
    from kmevents.replay.engine import Target

    return Target.parse(at=args.at, known_at=args.known_at, offset=args.offset,
                        max_lag=getattr(args, "max_lag", None))


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.replay import render
    from kmevents.replay.engine import replay

    target = target_from(args)

    async def main() -> int:
        async with open_source(args) as o:
            r = await replay(o.source, o.cluster, target, snapshots=o.snapshots,
                             progress=not args.no_progress)
        if args.format == "json":
            emit_json({"position": r.position(), "state": render.state_json(r.state)})
        else:
            print("\n".join(render.position_lines(r.position())))
            print()
            print(render.state_summary(r.state))
            if r.annotations:
                print()
                print("reducer annotations: " + ", ".join(f"{k} {v}" for k, v in sorted(r.annotations.items())))
        return 0

    return run_async(main)
