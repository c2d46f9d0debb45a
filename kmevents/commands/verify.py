"""``kmevents verify``: etcd against the fold of the log; the hash chain, snapshots and anchors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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

A fold from the start (--full, or the first run) of a long log is split over
processes, one per core (--jobs), at the worker's full snapshots: each piece
folds from the stored snapshot where it starts, and the result counts only if
every such snapshot was found equal to the fold of the piece before it (and
the chain there to the log's); otherwise the whole log is folded again in one
process. Each piece runs in a child process (with glibc's huge pages: fewer
page faults); the last also compares etcd while the others still fold.
Memory: each child holds one state of the cluster.

Exit codes: 0 clean (reducer annotations are listed with counts but do not
fail unless --strict), 1 drift or a broken chain (or, with --strict,
annotations or an older derivation), 2 usage or environment error.

--repair folds the cluster's log to its checkpoint and shows what a rebuild
would change; it writes nothing (a preview). --repair --yes stages the rebuild
under a fresh generation prefix and switches readers to it; a switch that
fails removes what it staged. --yes refuses while a live worker owns the
partition (a member of the processors' consumer group with that partition
assigned, asked through Kafka's admin API) unless --force-fenced, which first
moves the checkpoint so the live worker's next transaction fails and it gives
the partition up.

--discard deletes the cluster's generations readers do not use: copies staged
by earlier versions' previews or interrupted repairs, and the generation a
switch left behind (the preview lists them).

--all-clusters verifies every cluster with a checkpoint (no --cluster needed).

--versions also checks what `kmevents history` reads besides the log: the
entity-versions records (the worker stores one per block of ~1,000 events, and
parts of the open block) and the touched-entity index's blocks (which blocks
changed which entities; grouped ones included). It folds the log once more from
its start, captures each block as the worker does and compares: a record that
differs, or a block whose hashes lack an entity or correlation id its events
changed (a history would miss those events), is drift (exit 1). About 1.9x a
plain fold of the log: opt-in. It also reads the log for what it says of each
agent id's host and compares the workers' host directory, which `search`
names agents from (a difference says the value to put).

examples:
  kmevents verify --cluster prod
  kmevents verify --all-clusters --export-anchor anchors.json
  kmevents verify --cluster prod --anchor anchors.json --strict
  kmevents verify --source incident.kmarch
  kmevents verify --cluster prod --full --format json
  kmevents verify --cluster prod --versions         also history's versions records
  kmevents verify --cluster C --repair              preview: what a rebuild changes, nothing written
  kmevents verify --cluster C --repair --yes        rebuild and switch readers
  kmevents verify --cluster C --discard             delete generations nobody reads
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
    p.add_argument("--repair", action="store_true",
                   help="show what a rebuild would change (writes nothing); with --yes rebuild and switch")
    p.add_argument("--yes", action="store_true",
                   help="with --repair: stage the rebuild under a fresh generation and switch readers to it")
    p.add_argument("--discard", action="store_true",
                   help="delete the cluster's generations readers do not use (staged copies, superseded ones)")
    p.add_argument("--force-fenced", action="store_true",
                   help="with --repair: fence a live worker (move the checkpoint) instead of refusing")
    p.add_argument("--group", default=None, help="the processors' consumer group (default kmevents-derive)")
    add_source_flags(p, snapshots=False)
    p.add_argument("--no-snapshots", action="store_true", help="do not check snapshots")
    p.add_argument("--full", action="store_true",
                   help="fold the whole log from its start (default: fold from the snapshot the last clean verify "
                        "checked equal to its own fold; the hash chain is followed from the start either way)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="processes for a fold from the start (default 0: one per core, up to 4, one per "
                        "150,000 offsets of the log; 1: this process only)")
    p.add_argument("--versions", action="store_true",
                   help="also fold the log once more and check the entity-versions records history reads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._common import check_output
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.errors import UsageError
    from kmevents.replay.verify import anchor_document, read_anchor, verify, verify_offline

    if args.jobs < 0:
        raise UsageError(f"--jobs {args.jobs}: give a number of processes (1 or more), or 0 for one per core")
    if (args.yes or args.force_fenced) and not args.repair:
        raise UsageError("--yes and --force-fenced go with --repair")
    if args.force_fenced and not args.yes:
        raise UsageError("--force-fenced goes with --repair --yes (a preview writes nothing, so fences nothing)")
    if args.discard and (args.repair or args.all_clusters):
        raise UsageError("--discard is on its own: one cluster's unused generations (see --repair's preview)")
    if args.versions and (args.all_clusters or args.repair or args.discard):
        raise UsageError("--versions checks one cluster's records: give --cluster (not --all-clusters, --repair "
                         "or --discard)")
    if args.all_clusters and (args.cluster or args.source):
        raise UsageError("--all-clusters verifies every cluster of the events topic: --cluster and --source "
                         "do not go with it")
    anchors = read_anchor(Path(args.anchor).read_bytes()) if args.anchor else None
    if args.export_anchor:
        check_output(args.export_anchor, "--export-anchor")

    async def main() -> int:
        if args.repair:
            return await _repair(args)
        if args.discard:
            return await _discard(args)
        if args.all_clusters:
            from kmevents.commands._common import settings_from

            only_archives = False
            report = await verify(settings_from(args), None, topic=args.topic, anchors=anchors,
                                  check_snapshots=not args.no_snapshots, full=args.full, jobs=args.jobs)
        else:
            async with open_source(args, want_snapshots=False) as o:
                only_archives = not o.uses_kafka
                if only_archives:
                    report = await verify_offline(o.source, o.cluster, anchors,
                                                  check_snapshots=not args.no_snapshots)
                else:
                    custom = o.source if (args.source and len(args.source) > 1) or args.topic else None
                    report = await verify(o.settings, [o.cluster], source=custom, anchors=anchors,
                                          check_snapshots=not args.no_snapshots, full=args.full, jobs=args.jobs)
                    if args.versions:
                        await _check_versions(o, report, progress=not args.no_progress)
        if args.export_anchor:
            Path(args.export_anchor).write_bytes(anchor_document(report.heads))
        problems = bool(report.drift) or (args.strict and (bool(report.annotations) or bool(report.older_reducer)))
        if args.format == "json":
            emit_json({**report.as_dict(), "offline": only_archives, "exit": 1 if problems else 0})
        else:
            _print(report, only_archives)
        return 1 if problems else 0

    return run_async(main)


async def _check_versions(o: Any, report: Any, *, progress: bool) -> None:
    """``--versions``: history's versions records against a fold of the log (replay/verify_versions.py)."""
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.replay import verify_hosts, verify_versions
    from kmevents.replay.verify import Finding

    async with etcd_adapter.client(o.settings.etcd) as c:
        got = await verify_versions.check(o.settings, o.source, o.cluster, c, progress=progress)
        directory = await verify_hosts.check(o.settings, o.source, o.cluster, c, progress=progress)
    report.versions = got.as_dict()
    report.host_directory = directory.as_dict()
    for key, detail, fix in directory.differ:
        report.findings.append(Finding("versions", o.cluster, key, f"{detail}: a search names this agent so; {fix}"))
    for key, detail in got.differ:
        if key.startswith("touched/"):
            fix = ("a history would miss those events; delete the block's key (etcd <prefix>/<generation>/_touched/"
                   f"{o.cluster}/<first>, or the entry of the group holding it under _touched_groups/{o.cluster}/): "
                   "history then folds that range")
        else:
            fix = (f"a history would show this; delete the record's entry (etcd <prefix>/<generation>/_versions/"
                   f"{o.cluster}/<first>; history then folds the block), then `kmevents snapshots backfill "
                   f"--cluster {o.cluster}` builds it again from the log")
        report.findings.append(Finding("versions", o.cluster, key, f"{detail}: {fix}"))


def _print(report: object, offline: bool) -> None:
    r = report  # Report
    scope = "archives only (chain and anchors; no etcd)" if offline else "etcd against the log"
    print(f"verify: {scope}")
    for cl, off in r.resumed_from.items():  # type: ignore[attr-defined]
        print(f"  {cl}: " + (f"folded from the snapshot at offset {off}, verified equal to the log by an earlier run "
                             "(the chain followed from the start; --full folds everything)" if off is not None
                             else "folded from the start of the log"
                             + (f", split over {r.segments[cl]} processes at full snapshots"  # type: ignore[attr-defined]
                                if cl in r.segments else "")))  # type: ignore[attr-defined]
    for note in r.notes:  # type: ignore[attr-defined]
        print(f"  NOTE {note}")
    print(f"  records read {r.records}, keys checked {r.checked_keys}, snapshots {r.snapshots_checked}, "  # type: ignore[attr-defined]
          f"anchors {r.anchors_checked}, checkpoints {r.checkpoints}")  # type: ignore[attr-defined]
    v = r.versions  # type: ignore[attr-defined]
    if v is not None:
        print(f"  versions records checked {v['checked']} (open block {v['open_block_checked']}), "
              f"unreadable {v['unreadable']} (history folds those blocks), "
              + (f"blocks without a record {v['without_record']} (history folds them; `kmevents snapshots "
                 "backfill` builds them), " if v["without_record"] else "")
              + f"touched-index blocks checked {v['index_blocks_checked']}"
              + (f"; not checked: {v['skipped']}" if v["skipped"] else ""))
    d = r.host_directory  # type: ignore[attr-defined]
    if d is not None:
        print(f"  host directory: agent ids checked {d['ids_checked']} (up to offset {d['through_offset']})"
              + (f"; not checked: {d['skipped']}" if d["skipped"] else ""))
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
    from kmevents.replay.render import value_text

    settings = settings_from(args)
    group = args.group or GROUP_ID
    if args.yes:
        plan = await repair.repair(settings, settings.cluster, group_id=group, force_fenced=args.force_fenced)
    else:
        plan = await repair.plan(settings, settings.cluster, group_id=group, preview=True)
    unused = [g for g in await repair.staged_generations(settings, settings.cluster) if not g["in_use"]]
    if args.format == "json":
        emit_json({**plan.as_dict(), "preview": not args.yes, "unused_generations": unused})
        return 0
    if args.yes:
        print(f"rebuilt {plan.cluster} (partition {plan.partition}) at checkpoint offset {plan.checkpoint.offset} "
              f"under generation {plan.new_generation}: {plan.staged} keys staged")
    else:
        print(f"preview: folded {plan.cluster} (partition {plan.partition}) to checkpoint offset "
              f"{plan.checkpoint.offset}; nothing was written")
    if plan.fenced:
        print(f"fenced the partition's checkpoint (live owners: {', '.join(plan.owners) or 'none'})")
    elif plan.owners and not args.yes:
        print(f"note: a live worker owns the partition ({', '.join(plan.owners)}): --yes will refuse unless "
              "the workers stop or --force-fenced")
    counts = plan.diff.counts()
    if not counts:
        print(f"no change against generation {plan.old_generation}")
    for kind, c in counts.items():
        print(f"  {kind:14} +{c['added']} -{c['removed']} ~{c['changed']}")
    shown = 0
    for kind, ids in plan.diff.changed.items():
        for id, changes in list(ids.items())[:20]:
            for ch in changes[:5]:
                print(f"    {kind}/{id} {ch.path}: {value_text(ch.before)} -> {value_text(ch.after)}")
            shown += 1
    more = sum(len(ids) for ids in plan.diff.changed.values()) - shown
    if more > 0:
        print(f"    ... {more:,} more changed entities (--format json lists the counts)")
    if args.yes:
        print(f"switched readers to {plan.new_generation}")
    else:
        print("readers NOT switched: --yes rebuilds and switches")
    if unused:
        print(f"{len(unused)} generation(s) of {plan.cluster} nobody reads: "
              + ", ".join(f"{g['generation']} ({g['keys']:,} keys)" for g in unused)
              + f"; `kmevents verify --cluster {plan.cluster} --discard` deletes them")
    return 0


async def _discard(args: argparse.Namespace) -> int:
    from kmevents.commands._common import settings_from
    from kmevents.replay import repair

    settings = settings_from(args)
    gone = await repair.discard(settings, settings.cluster)
    if args.format == "json":
        emit_json({"cluster": settings.cluster, "discarded": gone})
        return 0
    if not gone:
        print(f"{settings.cluster}: every generation in etcd is in use; nothing to discard")
    for g in gone:
        print(f"discarded {settings.cluster}/{g['generation']}: {g['deleted']:,} keys")
    return 0
