"""``kmevents search``: events across time that match filters."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

HELP = """\
Events of a cluster that match every filter given, in log order, one row each
with what it is about, like `kubectl get events`: OBJECT (pod/NS/NAME,
task/ID, agent/HOST ...), REASON, MESSAGE and ACTOR.

--from/--to take offset:N or a TIME; --since 15m is --from now-15m. TIMEs
are source times (occurred_at) unless --known (log time). Inclusive. With
--to TIME the scan ends where the workers' touched-entity index says no
later record happened by TIME (late arrivals included), not at the log's end;
with --from TIME (or --since) it begins at the first index block that may
hold an event at or after TIME, and the workers' host directory says which
host each agent id had before it (archives alone, or --no-index: the whole
log is read).
--type takes event types or globs (task.*); an unknown type is refused
with the nearest one. --agent takes an agent id or a host name (a host name
also finds the events that name only its agent id, e.g. agent.removed);
--label a label selector on the labels the event carries (app=mysql).

Hits are printed as they are found, however many (memory stays flat): the
table's column widths are set by its first 50 rows; --format json is one
document, {"cluster", "events": [...], "count"}, with "count" written last.

examples:
  kmevents search --cluster prod --type master.elected
  kmevents search --cluster prod --type 'task.*' --agent agent-17.prod --since 2h
  kmevents search --cluster prod --type pod.evicted --from 'yesterday 14:00' --to 'yesterday 15:00' --tz local
  kmevents search --cluster prod -l app=mysql -o wide
  kmevents search --cluster prod --type agent.removed --format json | jq '.events[].object'
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._output import add_output_flag
    from kmevents.commands._source import SOURCE_HELP, add_source_flags
    from kmevents.timespec import TIME_HELP

    p = sub.add_parser("search", help="events across time that match filters",
                       description=HELP + "\n" + TIME_HELP + ".\n\n" + SOURCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", action="append", help="event type or glob (repeatable)")
    p.add_argument("--namespace", "-n", help="Kubernetes namespace")
    p.add_argument("--agent", help="Mesos agent id or host name")
    p.add_argument("--label", "-l", help="label selector")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--from", dest="from_", metavar="POINT", help="offset:N or TIME (inclusive)")
    when.add_argument("--since", metavar="DURATION", help="the last DURATION (15m, 2h, 1d): --from now-DURATION")
    p.add_argument("--to", metavar="POINT", help="offset:N or TIME (inclusive)")
    p.add_argument("--known", action="store_true", help="TIMEs are log (recorded) times")
    p.add_argument("--limit", type=int, default=None, help="stop after N matches")
    p.add_argument("--no-index", action="store_true",
                   help="scan the range from the log's first record, without the workers' touched-entity index and "
                        "host directory (the same hits, slower: a check of them)")
    add_output_flag(p, ("table", "wide", "json"))
    add_source_flags(p, snapshots=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents import selectors
    from kmevents.commands._output import output_of
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.replay import search
    from kmevents.timespec import Point, parse_point, since

    search.check_types(args.type)
    start = Point(time=since(args.since)) if args.since else parse_point(args.from_) if args.from_ else None
    f = search.Filters(types=args.type, namespace=args.namespace, agent=args.agent,
                       selector=selectors.parse(args.label) if args.label else None,
                       start=start, end=parse_point(args.to) if args.to else None, known=args.known)
    out = output_of(args)

    async def main() -> int:
        async with open_source(args) as o:  # (the snapshot store: its touched index bounds a range of times)
            found = search.hits(o.source, f, limit=args.limit, index=None if args.no_index else o.snapshots,
                                cluster=o.cluster)
            if out == "json":
                await write_json(o.cluster, found)
                return 0
            n = await print_table(found, wide=out == "wide", types=args.type)
        print(f"{n} event(s)")
        return 0

    return run_async(main)


async def write_json(cluster: str, found: AsyncIterator[dict[str, Any]]) -> int:
    """``{"cluster", "events": [...], "count"}``, each hit written as it is found; ``count``
    comes last, once known (the same members as ever; only their order changed)."""
    from kmevents.replay.render import JsonStream

    n = 0
    with JsonStream() as js:
        js.value("cluster", cluster)
        js.open("events", "[")
        async for h in found:
            js.value(None, h)
            n += 1
        js.close()
        js.value("count", n)
    return n


async def print_table(found: AsyncIterator[dict[str, Any]], *, wide: bool, types: list[str] | None = None) -> int:
    """The hits as rows, printed as they come (widths from the first page; TYPE as wide as the
    longest event type ``types`` can match); how many."""
    import fnmatch

    from kmevents.commands._output import StreamTable, cell
    from kmevents.contract import EVENT_TYPES
    from kmevents.timespec import show_time

    headers = ["offset", "time", "type", "object", "reason", "message", "actor"]
    if wide:
        headers += ["recorded", "lag", "correlation"]
    can = [x for x in EVENT_TYPES if not types or any(fnmatch.fnmatchcase(x, g) for g in types)]
    t = StreamTable(headers, min_widths={"type": max(map(len, can), default=0)})
    async for h in found:
        ev = h["event"]
        actor = ev.get("actor") or {}
        who = f"{actor.get('kind')}/{actor.get('name')}" if isinstance(actor, dict) and actor.get("name") else None
        row = [h["offset"], show_time(h["occurred_at"]), ev.get("type"), h.get("object"), h.get("reason"),
               cell(h.get("message"), limit=None if wide else 60), who]
        if wide:
            lag = h.get("ingest_lag_seconds")
            row += [show_time(h["recorded_at"]), None if lag is None else f"{lag:+.3f}s", ev.get("correlation_id")]
        t.add(row)
    t.finish()
    return t.rows
