"""``kmevents diff``: what changed in a cluster between two points of its log."""

from __future__ import annotations

import argparse

from kmevents.commands._common import emit_json

HELP = """\
Entities added, removed and changed (field by field) between two points.
A POINT is offset:N (an offset in the cluster's partition) or a TIME:
ISO 8601 with a zone, epoch milliseconds, or relative (-15m, -2h, -1d).
A TIME means source time (occurred_at <= TIME, like `state --at`); with
--known it means log time (what the log had recorded by then, like
`state --known-at`). Both points replay from the newest snapshot before them.

examples:
  kmevents diff --cluster prod --from 'yesterday 14:00' --to 'yesterday 14:10'
  kmevents diff --cluster prod --from offset:41000 --to offset:42000 --kind pod --format json
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("diff", help="entities added, removed and changed between two points",
                       description=HELP + "\n" + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="from_", required=True, metavar="POINT", help="offset:N or TIME")
    p.add_argument("--to", required=True, metavar="POINT", help="offset:N or TIME")
    p.add_argument("--known", action="store_true", help="TIMEs are log (recorded) times, not source times")
    p.add_argument("--kind", action="append", help="only these kinds (repeatable)")
    p.add_argument("--limit", type=int, default=50, help="entities listed per kind and change (table format)")
    add_source_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.replay.diffing import copy_tables, diff_tables
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.render import position_lines

    a = Target.of_point(args.from_, known=args.known, param="--from")
    b = Target.of_point(args.to, known=args.known, param="--to")

    async def main() -> int:
        async with open_source(args) as o:
            ra = await replay(o.source, o.cluster, a, snapshots=o.snapshots,
                              progress=not args.no_progress, label="replaying --from")
            ta = copy_tables(ra.state)
            del ra.state
            rb = await replay(o.source, o.cluster, b, snapshots=o.snapshots,
                              progress=not args.no_progress, label="replaying --to")
            tb = copy_tables(rb.state)
        if args.kind:
            ta = {k: v for k, v in ta.items() if k in args.kind}
            tb = {k: v for k, v in tb.items() if k in args.kind}
        d = diff_tables(ta, tb)
        if args.format == "json":
            emit_json({"from": ra.position(), "to": rb.position(), **d.as_dict()})
            return 0
        print("FROM " + "\n     ".join(position_lines(ra.position())))
        print("TO   " + "\n     ".join(position_lines(rb.position())))
        print()
        if d.empty:
            print("no change")
            return 0
        for kind, c in d.counts().items():
            print(f"{kind:14} +{c['added']:<6} -{c['removed']:<6} ~{c['changed']}")
        for kind, ents in d.added.items():
            for id in list(ents)[: args.limit]:
                print(f"+ {kind}/{id}")
        for kind, ents in d.removed.items():
            for id in list(ents)[: args.limit]:
                print(f"- {kind}/{id}")
        for kind, ents in d.changed.items():
            for id, changes in list(ents.items())[: args.limit]:
                print(f"~ {kind}/{id}")
                for ch in changes[:10]:
                    print(f"    {ch.path}: {ch.before!r} -> {ch.after!r}")
        return 0

    return run_async(main)
