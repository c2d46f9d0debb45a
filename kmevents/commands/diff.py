"""``kmevents diff``: what changed in a cluster between two points of its log."""

from __future__ import annotations

import argparse
import sys

from kmevents.commands._common import emit_json

HELP = """\
Entities added, removed and changed (field by field) between two points.
A POINT is offset:N (an offset in the cluster's partition) or a TIME:
ISO 8601 with a zone, epoch milliseconds, or relative (-15m, -2h, -1d).
A TIME means source time (occurred_at <= TIME, like `state --at`); with
--known it means log time (what the log had recorded by then, like
`state --known-at`). Both points replay from the newest snapshot before them.

--kind takes a kind in the singular or plural, or kubectl's short name (pod,
pods, po; rc, replicationcontrollers; svc; ns; no); an unknown kind is an
error that lists the valid ones. The table lists --limit entities per kind and
change and --max-fields fields per entity, saying how many more there are;
values print as JSON. --format json carries everything, each entity with its
computed `condition` (a deleted pod is Deleted, whatever its last phase).
A point that cannot be folded completely (see `kmevents state --help`) is
flagged INCOMPLETE and exits 1 unless --partial.

examples:
  kmevents diff --cluster prod --from 'yesterday 14:00' --to 'yesterday 14:10'
  kmevents diff --cluster prod --from offset:41000 --to offset:42000 --kind pod --format json
  kmevents diff --cluster C --from offset:40000 --to offset:41000 --limit 0
  kmevents diff --cluster C --from -2h --to -1h --known --format json | jq .counts
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("diff", help="entities added, removed and changed between two points",
                       description=HELP + "\n" + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="from_", required=True, metavar="POINT", help="offset:N or TIME")
    p.add_argument("--to", required=True, metavar="POINT", help="offset:N or TIME")
    p.add_argument("--known", action="store_true", help="TIMEs are log (recorded) times, not source times")
    p.add_argument("--kind", action="append", metavar="KIND",
                   help="only these kinds (repeatable, or comma-separated): pod/pods/po, task, agent, rc, svc ...")
    p.add_argument("--limit", type=int, default=50,
                   help="entities listed per kind and change (table format; default 50, 0: all)")
    p.add_argument("--max-fields", type=int, default=10,
                   help="changed fields listed per entity (table format; default 10, 0: all)")
    p.add_argument("--partial", action="store_true",
                   help="accept states that cannot be complete (archives that start mid-log without a snapshot, "
                        "gaps): exit 0, the warning stays")
    add_source_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.kinds import resolve_all
    from kmevents.replay.diffing import diff_states
    from kmevents.replay.engine import Target, replay
    from kmevents.replay.render import diff_lines, position_lines

    kinds = resolve_all(args.kind)  # an unknown kind fails here, before any replay
    a = Target.of_point(args.from_, known=args.known, param="--from")
    b = Target.of_point(args.to, known=args.known, param="--to")

    async def main() -> int:
        async with open_source(args) as o:
            ra = await replay(o.source, o.cluster, a, snapshots=o.snapshots,
                              progress=not args.no_progress, label="replaying --from")
            rb = await replay(o.source, o.cluster, b, snapshots=o.snapshots,
                              progress=not args.no_progress, label="replaying --to")
        # both states held, compared entity by entity; only what differs is decoded
        d = diff_states(ra.state, rb.state, kinds or None)
        incomplete = [f"{name}: {r.incomplete}" for name, r in (("--from", ra), ("--to", rb)) if r.incomplete]
        if args.format == "json":
            emit_json({"from": ra.position(), "to": rb.position(), **d.as_dict()})
        else:
            print("FROM " + "\n     ".join(position_lines(ra.position())))
            print("TO   " + "\n     ".join(position_lines(rb.position())))
            print()
            if d.empty:
                print("no change" + (f" to {', '.join(kinds)}" if kinds else ""))
            else:
                print("\n".join(diff_lines(d, limit=args.limit, field_limit=args.max_fields)))
        if incomplete and not args.partial:
            print("kmevents diff: incomplete state at " + "; ".join(incomplete)
                  + "; add --partial to accept it (exit 0)", file=sys.stderr)
            return 1
        return 0

    return run_async(main)
