"""``kmevents history``: every event that touched an entity, with its causal chain."""

from __future__ import annotations

import argparse
from typing import Any

from kmevents.commands._common import emit_json
from kmevents.errors import UsageError

HELP = """\
Every event that touched an entity, in log order, with the resulting state,
the reducer's annotations, the actor, both times and the ingest lag, and how
long each condition lasted (3m41s). The causal chain is followed: `history
pod/NS/NAME` includes its task's offer, launch and status updates (k8sm's
pod<->task mapping and correlation ids), `history task/ID` includes its pod
and offer.

An entity is KIND/ID or KIND/NAME: agent/HOST (every id the host had),
node/HOST, pod/NS/NAME or pod/NAME (any namespace), task/TASK_ID, framework/NAME.
KIND is plural, singular or short (pods, pod, po). The whole log counts (the
links and how long a condition lasted need it), but with the worker's
touched-entity index only the blocks of it that touched the entity and its links
are read: from the versions record the worker stored for each block (what each
event left each entity it changed), or else folded from the snapshot before the
block (a block with no record; the worker's open block, its last < 1,000 events,
when it touched the entity); without an index (archives, a label
selector, a worker that has not written it yet) the whole log is scanned, with a
progress bar and a line on stderr saying so. --from/--to/--since and --type
choose which of the events are shown. With --format json, "index" says how it
was answered: the blocks read from records, those folded (and of them, those
folded for lack of a record: `kmevents snapshots backfill` builds those), the
states decoded, the groups of old blocks it did not read (the worker's hash ->
groups runs said they hold nothing it looked for) and those it read, how many
times the passes ran again after reading one (a link found late),
and how long it waited for a live worker to index the log's last records (2 s
at most); null when the whole log was scanned.

examples:
  kmevents history --cluster prod task/pod.1234
  kmevents history --cluster prod pod/kube-system/kube-dns-v8-x1
  kmevents history --cluster prod agent/agent-17.prod.local --type 'agent.*' --since 6h
  kmevents history --cluster prod pod -l app=mysql          (a label selector: several)
  kmevents history --source incident.kmarch svc/default/mysql --format json
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._output import add_output_flag
    from kmevents.commands._source import SOURCE_HELP, add_source_flags
    from kmevents.timespec import TIME_HELP

    p = sub.add_parser("history", help="one entity's causal history (events, states, durations)",
                       description=HELP + "\n" + TIME_HELP + ".\n\n" + SOURCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("entity", nargs="?", metavar="KIND/ID | KIND",
                   help="e.g. task/pod.1234, pod/ns/name, agent/HOST, or a kind with -l")
    p.add_argument("-l", "--selector", help="label selector for KIND (app=mysql, tier in (db,cache), !canary)")
    p.add_argument("--type", action="append", help="show only events of this type or glob (repeatable)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--from", dest="from_", metavar="POINT", help="show events from offset:N or TIME on")
    when.add_argument("--since", metavar="DURATION", help="show the last DURATION (15m, 2h): --from now-DURATION")
    p.add_argument("--to", metavar="POINT", help="show events up to offset:N or TIME (inclusive)")
    p.add_argument("--known", action="store_true", help="--from/--to TIMEs are log (recorded) times")
    add_output_flag(p, ("table", "wide", "json"))
    add_source_flags(p, snapshots=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents import kinds, selectors
    from kmevents.commands._output import note, output_of
    from kmevents.commands._positional import reclaim
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.replay import history
    from kmevents.replay.search import check_types

    reclaim(args, "entity")
    if not args.entity:
        raise UsageError("give KIND/ID, or KIND with -l SELECTOR", hint="e.g. kmevents history task/pod.1234")
    head, _, id = args.entity.partition("/")
    kind = kinds.resolve(head)
    sel = selectors.parse(args.selector) if args.selector else None
    if not id and sel is None:
        raise UsageError(f"give {head}/ID, or {head} with -l SELECTOR",
                         hint=f"e.g. kmevents history {head}/<id or name>")
    check_types(args.type)
    window = _window(args)
    out = output_of(args)

    async def main() -> int:
        async with open_source(args) as o:
            show = not args.no_progress
            idx = await history.open_index(o, lazy=True)
            rel, entries = await history.history_of(o.source, o.cluster, kind, [id] if id else [], sel, show, index=idx)
        targets = sorted(f"{k}/{i}" for k, i in rel.targets)
        total = len(entries)
        entries = [e for e in entries if window(e)]
        if out == "json":
            emit_json({"cluster": o.cluster, "targets": targets, "related": sorted(f"{k}/{i}" for k, i in rel.keys),
                       "events": entries, "events_in_history": total,
                       # how it was answered: the blocks of the worker's index read from their versions
                       # records or folded, of the units the log was cut into (null: the whole log scanned)
                       "index": {"units": idx.units, "read": idx.served, "folded": idx.folded,
                                 "folded_without_record": idx.unrecorded, "states_decoded": idx.loads,
                                 # groups of old blocks not read / read because they held what it looked for
                                 # (and the passes run again for that)
                                 "groups_not_read": len(idx.spans.entries) - idx.spans.read if idx.spans else 0,
                                 "groups_read_for_it": idx.spans.read if idx.spans else 0,
                                 "passed_again": idx.again,
                                 "waited_seconds": round(idx.waited, 3)} if idx.serves else None})
            return 0 if total else 1
        shown = f"{len(entries)} of {total} events shown" if len(entries) != total else f"{total} events"
        print(f"history of {', '.join(targets) or args.entity} in {o.cluster}: {shown} "
              f"(related: {', '.join(sorted(f'{k}/{i}' for k, i in rel.keys - rel.targets)) or 'none'})")
        print_entries(entries, wide=out == "wide")
        if not total:
            print("no event touched it (check the id, or the kind)")
        if idx.serves and idx.unrecorded:
            note(f"# {idx.unrecorded} blocks of the worker's index had no versions record and were folded from stored "
                 f"states: `kmevents snapshots backfill --cluster {o.cluster}` builds their records, which later "
                 "histories read instead")
        return 0 if total else 1

    return run_async(main)


def _window(args: argparse.Namespace) -> Any:
    """The entries --from/--to/--since/--type keep (a predicate)."""
    import fnmatch

    from kmevents.timespec import Point, parse_point, since

    lo = Point(time=since(args.since)) if args.since else parse_point(args.from_) if args.from_ else None
    hi = parse_point(args.to) if args.to else None
    field = "recorded_at" if args.known else "occurred_at"

    def inside(e: dict[str, Any]) -> bool:
        if args.type and not any(fnmatch.fnmatchcase(str(e.get("type")), t) for t in args.type):
            return False
        for p, sign in ((lo, 1), (hi, -1)):
            if p is None:
                continue
            if p.offset is not None:
                if (e["offset"] - p.offset) * sign < 0:
                    return False
            elif p.time is not None:
                t = e.get(field)
                if not isinstance(t, str) or (t < p.time.iso if sign > 0 else t > p.time.iso):
                    return False
        return True

    return inside


def print_entries(entries: list[dict[str, Any]], *, wide: bool = False) -> None:
    from kmevents.timespec import humanize_seconds, show_time

    for e in entries:
        actor = e["actor"] or {}
        lag = e.get("ingest_lag_seconds")
        when = show_time(e["occurred_at"])
        if wide:
            when += f" (recorded {show_time(e['recorded_at'])}, lag {'n/a' if lag is None else f'{lag:+.3f}s'})"
        print(f"@{e['offset']} {when} {e['type']} by {actor.get('kind', '?')}/{actor.get('name', '?')}"
              + (f"  [{e['reason']}]" if e["reason"] else ""))
        for name, r in e["results"].items():
            if r.get("lasted_seconds") is not None:
                lasted = f"for {humanize_seconds(r['lasted_seconds'])}"
            elif r.get("still_at_end"):
                held = r.get("held_for_seconds_by_end")
                lasted = "still at the end of the log" + (f", {humanize_seconds(held)} so far" if held else "")
            else:
                lasted = ""
            print(f"    -> {name}: {r['condition']} {lasted}".rstrip())
        for a in e["annotations"]:
            print(f"    !! {a['kind']}: {a['message']}")
