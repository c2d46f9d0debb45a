"""``kmevents search``: events across time that match filters."""

from __future__ import annotations

import argparse

from kmevents.commands._common import emit_json

HELP = """\
Events of a cluster that match every filter given, in log order. --from/--to
take offset:N or a TIME (ISO 8601 with a zone, epoch ms, -15m/-2h/-1d);
TIMEs are source times (occurred_at) unless --known (log time). Inclusive.
--type accepts globs (task.*); --agent an agent id or host name;
--label a label selector on the labels the event carries (app=mysql).
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("search", help="events across time that match filters",
                       description=HELP + "\n" + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", action="append", help="event type or glob (repeatable)")
    p.add_argument("--namespace", help="Kubernetes namespace")
    p.add_argument("--agent", help="Mesos agent id or host name")
    p.add_argument("--label", "-l", help="label selector")
    p.add_argument("--from", dest="from_", metavar="POINT", help="offset:N or TIME (inclusive)")
    p.add_argument("--to", metavar="POINT", help="offset:N or TIME (inclusive)")
    p.add_argument("--known", action="store_true", help="TIMEs are log (recorded) times")
    p.add_argument("--limit", type=int, default=None, help="stop after N matches")
    add_source_flags(p, snapshots=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents import selectors
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.replay import search
    from kmevents.timespec import parse_point

    f = search.Filters(types=args.type, namespace=args.namespace, agent=args.agent,
                       selector=selectors.parse(args.label) if args.label else None,
                       start=parse_point(args.from_) if args.from_ else None,
                       end=parse_point(args.to) if args.to else None, known=args.known)

    async def main() -> int:
        async with open_source(args, want_snapshots=False) as o:
            hits = await search.search(o.source, f, limit=args.limit)
        if args.format == "json":
            emit_json({"cluster": o.cluster, "count": len(hits), "events": hits})
            return 0
        for h in hits:
            ev = h["event"]
            actor = ev.get("actor") or {}
            print(f"@{h['offset']} {h['occurred_at']} (recorded {h['recorded_at']}, lag {h['ingest_lag_seconds']}s) "
                  f"{ev.get('type')} by {actor.get('kind', '?')}:{actor.get('name', '?')} "
                  f"corr={ev.get('correlation_id')}")
        print(f"{len(hits)} event(s)")
        return 0

    return run_async(main)
