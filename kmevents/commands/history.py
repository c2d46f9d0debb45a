"""``kmevents history``: every event that touched an entity, with its causal chain."""

from __future__ import annotations

import argparse

from kmevents.commands._common import emit_json
from kmevents.errors import UsageError

HELP = """\
Every event that touched an entity, in log order, with the resulting state,
the reducer's annotations, the actor, both times and the ingest lag, and how
long each condition lasted. The causal chain is followed: `history pod/NS/NAME`
includes its task's offer, launch and status updates (k8sm's pod<->task
mapping and correlation ids), `history task/ID` includes its pod and offer.

  kmevents history --cluster C task/pod.1234
  kmevents history --cluster C pod/kube-system/kube-dns-v8-x1
  kmevents history --cluster C agent/<agent id>
  kmevents history --cluster C pod -l app=mysql        (a label selector: several)
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("history", help="one entity's causal history (events, states, durations)",
                       description=HELP + "\n" + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("entity", metavar="KIND/ID | KIND", help="e.g. task/pod.1234, pod/ns/name, or a kind with -l")
    p.add_argument("-l", "--selector", help="label selector for KIND (app=mysql, tier in (db,cache), !canary)")
    add_source_flags(p, snapshots=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents import selectors
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.reducer import KINDS
    from kmevents.replay import history

    kind, _, id = args.entity.partition("/")
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint=f"one of {', '.join(KINDS)}")
    sel = selectors.parse(args.selector) if args.selector else None
    if not id and sel is None:
        raise UsageError("give KIND/ID, or KIND with -l SELECTOR")

    async def main() -> int:
        async with open_source(args, want_snapshots=False) as o:
            rel = await history.related(o.source, o.cluster, kind, [id] if id else [], sel,
                                        progress=not args.no_progress)
            entries = await history.collect(o.source, o.cluster, rel, progress=not args.no_progress)
        targets = sorted(f"{k}/{i}" for k, i in rel.targets)
        if args.format == "json":
            emit_json({"cluster": o.cluster, "targets": targets, "related": sorted(f"{k}/{i}" for k, i in rel.keys),
                       "events": entries})
            return 0 if entries else 1
        print(f"history of {', '.join(targets) or args.entity} in {o.cluster}: {len(entries)} events "
              f"(related: {', '.join(sorted(f'{k}/{i}' for k, i in rel.keys - rel.targets)) or 'none'})")
        for e in entries:
            actor = e["actor"] or {}
            print(f"@{e['offset']} {e['occurred_at']} (recorded {e['recorded_at']}, lag {e['ingest_lag_seconds']}s) "
                  f"{e['type']} by {actor.get('kind', '?')}:{actor.get('name', '?')}"
                  + (f"  [{e['reason']}]" if e["reason"] else ""))
            for name, r in e["results"].items():
                lasted = (f"lasted {r['lasted_seconds']}s" if r.get("lasted_seconds") is not None
                          else f"still, {r.get('held_for_seconds_by_end')}s by the end" if r.get("still_at_end")
                          else "")
                print(f"    -> {name}: {r['condition']} {lasted}")
            for a in e["annotations"]:
                print(f"    !! {a['kind']}: {a['message']}")
        if not entries:
            print("no event touched it (check the id, or the kind)")
        return 0 if entries else 1

    return run_async(main)
