"""``kmevents verify``: etcd against the fold of the log; the hash chain, snapshots and anchors."""

from __future__ import annotations

import argparse
from pathlib import Path

from kmevents.commands._common import emit_json

HELP = """\
Compare what etcd holds for a cluster with the fold of its log, key by key, at
the checkpoint's offset (keys written ahead of the checkpoint by an event in
flight are recognised, not called drift); check the hash chain against the
checkpoint, every snapshot (its chain head must equal the log's chain at its
offset, its bytes must load and equal the fold there), archives (--source)
and anchors (--anchor). State derived by an older reducer version is
reported as such, not as drift.

A clean run records the newest snapshot it found equal to its own fold; the
next run follows the hash chain from the start (no decoding) but folds only
from that snapshot on. --full folds the whole log again.

Exit codes: 0 clean (reducer annotations are listed with counts but do not
fail unless --strict), 1 drift or a broken chain (or, with --strict,
annotations or an older derivation), 2 usage or environment error.

--repair rebuilds the cluster under a fresh generation prefix and shows what
would change; only --yes switches readers to it. It refuses while a live
worker owns the partition (a member of the processors' consumer group with
that partition assigned, asked through Kafka's admin API) unless
--force-fenced, which first moves the checkpoint so the live worker's next
transaction fails and it gives the partition up.

examples:
  kmevents verify --cluster prod
  kmevents verify --all-clusters --export-anchor anchors.json
  kmevents verify --cluster prod --anchor anchors.json --strict
  kmevents verify --source incident.kmarch
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("verify", help="compare etcd with the log; check the hash chain, snapshots and anchors",
                       description=HELP + "\n" + SOURCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--all-clusters", action="store_true", help="every cluster with a checkpoint")
    p.add_argument("--anchor", metavar="FILE", help="check the log's chain heads against this anchor file")
    p.add_argument("--export-anchor", metavar="FILE",
                   help="write the log's current chain heads (cluster, partition, offset, head, time)")
    p.add_argument("--strict", action="store_true", help="exit 1 on reducer annotations and older derivations too")
    p.add_argument("--repair", action="store_true", help="rebuild under a fresh generation and show the change")
    p.add_argument("--yes", action="store_true", help="with --repair: switch readers to the rebuilt generation")
    p.add_argument("--force-fenced", action="store_true",
                   help="with --repair: fence a live worker (move the checkpoint) instead of refusing")
    p.add_argument("--group", default=None, help="the processors' consumer group (default kmevents-derive)")
    add_source_flags(p, snapshots=False)
    p.add_argument("--no-snapshots", action="store_true", help="do not check snapshots")
    p.add_argument("--full", action="store_true",
                   help="fold the whole log from its start (default: fold from the snapshot the last clean verify "
                        "checked equal to its own fold; the hash chain is followed from the start either way)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.errors import UsageError
    from kmevents.replay.verify import anchor_document, read_anchor, verify, verify_offline

    if (args.yes or args.force_fenced) and not args.repair:
        raise UsageError("--yes and --force-fenced go with --repair")
    anchors = read_anchor(Path(args.anchor).read_bytes()) if args.anchor else None

    async def main() -> int:
        if args.repair:
            return await _repair(args)
        async with open_source(args, want_snapshots=False) as o:
            only_archives = not o.uses_kafka
            if only_archives:
                report = await verify_offline(o.source, o.cluster, anchors,
                                              check_snapshots=not args.no_snapshots)
            else:
                custom = o.source if (args.source and len(args.source) > 1) or args.topic else None
                clusters = None if args.all_clusters else [o.cluster]
                report = await verify(o.settings, clusters, source=custom, anchors=anchors,
                                      check_snapshots=not args.no_snapshots, full=args.full)
        if args.export_anchor:
            Path(args.export_anchor).write_bytes(anchor_document(report.heads))
        problems = bool(report.drift) or (args.strict and (bool(report.annotations) or bool(report.older_reducer)))
        if args.format == "json":
            emit_json({**report.as_dict(), "offline": only_archives, "exit": 1 if problems else 0})
        else:
            _print(report, only_archives)
        return 1 if problems else 0

    return run_async(main)


def _print(report: object, offline: bool) -> None:
    r = report  # Report
    scope = "archives only (chain and anchors; no etcd)" if offline else "etcd against the log"
    print(f"verify: {scope}")
    for cl, off in r.resumed_from.items():  # type: ignore[attr-defined]
        print(f"  {cl}: " + (f"folded from the snapshot at offset {off}, verified equal to the log by an earlier run "
                             "(the chain followed from the start; --full folds everything)" if off is not None
                             else "folded from the start of the log"))
    for note in r.notes:  # type: ignore[attr-defined]
        print(f"  NOTE {note}")
    print(f"  records read {r.records}, keys checked {r.checked_keys}, snapshots {r.snapshots_checked}, "  # type: ignore[attr-defined]
          f"anchors {r.anchors_checked}, checkpoints {r.checkpoints}")  # type: ignore[attr-defined]
    for h in r.heads:  # type: ignore[attr-defined]
        print(f"  chain head {h['cluster']} p{h['partition']} @{h['offset']} ({h['time']}): {h['head']}")
    for f in r.older_reducer:  # type: ignore[attr-defined]
        print(f"  NOTE {f.cluster}: {f.detail}")
    ahead = [f for f in r.findings if f.kind == "ahead"]  # type: ignore[attr-defined]
    if ahead:
        print(f"  {len(ahead)} key(s) written ahead of the checkpoint by the event in flight (not drift)")
    if r.unfolded:  # type: ignore[attr-defined]
        print("  records the fold could not use (the workers dead-letter them): "
              + ", ".join(f"{k} {v}" for k, v in sorted(r.unfolded.items())))  # type: ignore[attr-defined]
    if r.annotations:  # type: ignore[attr-defined]
        print("  reducer annotations: " + ", ".join(f"{k} {v}" for k, v in sorted(r.annotations.items())))  # type: ignore[attr-defined]
    if r.drift:  # type: ignore[attr-defined]
        print(f"DRIFT: {len(r.drift)} problem(s)")  # type: ignore[attr-defined]
        for f in r.drift[:200]:  # type: ignore[attr-defined]
            print(f"  {f.kind:9} {f.cluster} {f.key}  {f.detail}")
    else:
        print("clean: etcd, snapshots and the chain agree with the log" if not offline
              else "clean: the archives' chain holds")


async def _repair(args: argparse.Namespace) -> int:
    from kmevents.commands._common import settings_from
    from kmevents.processors.worker import GROUP_ID
    from kmevents.replay import repair

    settings = settings_from(args)
    plan = await repair.plan_and_stage(settings, settings.cluster, group_id=args.group or GROUP_ID,
                                       force_fenced=args.force_fenced)
    if args.yes:
        await repair.switch(settings, plan)
    if args.format == "json":
        emit_json(plan.as_dict())
        return 0
    print(f"rebuilt {plan.cluster} (partition {plan.partition}) at checkpoint offset {plan.checkpoint.offset} "
          f"under generation {plan.new_generation}: {plan.staged} keys staged")
    if plan.fenced:
        print(f"fenced the partition's checkpoint (live owners: {', '.join(plan.owners) or 'none'})")
    counts = plan.diff.counts()
    if not counts:
        print(f"no change against generation {plan.old_generation}")
    for kind, c in counts.items():
        print(f"  {kind:14} +{c['added']} -{c['removed']} ~{c['changed']}")
    for kind, ids in plan.diff.changed.items():
        for id, changes in list(ids.items())[:20]:
            for ch in changes[:5]:
                print(f"    {kind}/{id} {ch.path}: {ch.before!r} -> {ch.after!r}")
    print(f"switched readers to {plan.new_generation}" if plan.switched
          else "readers NOT switched (add --yes to switch)")
    return 0
