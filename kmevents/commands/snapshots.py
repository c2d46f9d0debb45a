"""``kmevents snapshots``: the stored snapshots of a cluster, thinning the old ones, and building
the entity-versions records history reads where the worker stored none (replay/versions_backfill.py)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = """\
The worker stores a full snapshot of each cluster every 20,000 events and a delta
every 4,000 (`kmevents process --snapshot-every/--delta-every`). Point-in-time
reads, history and verify start from them. At a large cluster a full snapshot is
tens of MB, so the snapshots topic grows faster than the log itself.

  list    the cluster's snapshots: offset, kind, bytes as stored and loaded
  prune   keep the newest --keep-recent full snapshots with their deltas, and
          before them one full snapshot per --thin-every offsets, no deltas (a
          read there folds at most that many records from it); the snapshot of
          the last clean verify is kept too. The others' index entries are
          removed from etcd and their chunks tombstoned in the snapshots topic,
          which frees the bytes when Kafka compacts it (cleanup.policy=compact,
          as kmevents creates it; prune says when the topic has another policy).
          --dry-run shows the plan and removes nothing.

Reads that started before a prune and meet a removed snapshot start from the
one before it: slower, never wrong.

  backfill  build the entity-versions records `kmevents history` reads, for the
          blocks of ~1,000 events the worker stored none for: a worker run with
          --no-versions (a fifth to a third of its CPU saved), a block a restart
          re-folded, a write that failed, a record verify --versions said to
          delete. Each is folded from the newest stored state before it and
          captured as the worker does; `verify --versions` checks them. Without
          a record history folds the block from a stored state (~0.5-1 s per
          snapshot interval at a large cluster) instead of reading ~0.2 MB.
          The newest --skip-newest blocks (default 3) are left to the worker,
          which stores a block's record just after closing it: give 0 when it
          runs with --no-versions. --follow keeps building as blocks close
          (a process beside `kmevents process --no-versions`; with --format
          json a JSON line per pass that built records, then the totals when
          stopped; --metrics-port P serves its /metrics, /healthz and /readyz:
          records built, failed passes, blocks waiting, the last good pass's
          time); --dry-run lists the blocks without a record, builds nothing.

examples:
  kmevents snapshots list --cluster prod
  kmevents snapshots prune --cluster prod --dry-run
  kmevents snapshots prune --cluster prod --keep-recent 48 --thin-every 200000
  kmevents snapshots prune --all-clusters --format json
  kmevents snapshots backfill --cluster prod --dry-run
  kmevents snapshots backfill --cluster prod --skip-newest 0 --follow
  kmevents snapshots backfill --all-clusters --skip-newest 0 --follow --metrics-port 6067
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._common import add_connection_flags, add_format_flag
    from kmevents.store.snapshot_retention import KEEP_RECENT, THIN_EVERY
    from kmevents.store.versions import PENDING_BLOCKS as SKIP_NEWEST

    p = sub.add_parser("snapshots", help="list the stored snapshots; thin the old ones (prune); build history's "
                       "missing versions records (backfill)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("list", "the cluster's stored snapshots"),
                       ("prune", "remove old snapshots beyond what the retention keeps"),
                       ("backfill", "build the versions records history reads where the worker stored none")):
        q = ss.add_parser(name, help=text, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--cluster", help="cluster name (default KMEVENTS_CLUSTER)")
        q.add_argument("--all-clusters", action="store_true", help="every cluster with a checkpoint")
        q.add_argument("--generation", default=None,
                       help="which derivation's snapshots, by its generation name (default: the one the processors "
                            "write now, r<reducer version>)")
        if name == "prune":
            q.add_argument("--keep-recent", type=int, default=KEEP_RECENT, metavar="N",
                           help=f"full snapshots kept with their deltas, newest first (default {KEEP_RECENT})")
            q.add_argument("--thin-every", type=int, default=THIN_EVERY, metavar="OFFSETS",
                           help=f"before those, one full snapshot per this many offsets (default {THIN_EVERY:,})")
            q.add_argument("--dry-run", action="store_true", help="show what would be removed; remove nothing")
        if name == "backfill":
            q.add_argument("--skip-newest", type=int, default=SKIP_NEWEST, metavar="N",
                           help=f"leave the newest N closed blocks to the worker (default {SKIP_NEWEST}; 0 when the "
                                "worker runs with --no-versions)")
            q.add_argument("--follow", action="store_true",
                           help="keep building as the worker closes blocks, until interrupted (Ctrl-C, SIGTERM)")
            q.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                           help="with --follow: how often to look for new blocks (default 5)")
            q.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                           help="with --follow: serve /metrics (records built, passes, failures, blocks waiting, the "
                                "last good pass's time per cluster), /healthz and /readyz on 127.0.0.1:PORT "
                                "(default 0: none)")
            q.add_argument("--dry-run", action="store_true", help="list the blocks without a record; build nothing")
            q.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_format_flag(q)
        add_connection_flags(q)
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._common import emit_json, settings_from
    from kmevents.commands._source import run as run_async
    from kmevents.errors import UsageError

    if args.action == "prune" and (args.keep_recent < 1 or args.thin_every < 1):
        raise UsageError("--keep-recent and --thin-every must be at least 1",
                         hint="the newest full snapshot is what the worker restores from: it is always kept")
    if args.action == "backfill":
        if args.skip_newest < 0 or args.interval <= 0:
            raise UsageError("--skip-newest must be 0 or more and --interval more than 0")
        if args.follow and args.dry_run:
            raise UsageError("--follow builds as blocks close; --dry-run builds nothing: give one of them")
        if args.metrics_port and not args.follow:
            raise UsageError("--metrics-port serves a follower's metrics: give it with --follow")
        if not 0 <= args.metrics_port <= 65535:
            raise UsageError(f"--metrics-port {args.metrics_port}: a port is 0 (none) to 65535")
        from kmevents.commands.snapshots_backfill import run as backfill

        return backfill(args)
    settings = settings_from(args)
    doc = run_async(lambda: _work(settings, args))
    if args.format == "json":
        emit_json(doc)
    else:
        _print(doc, args.action)
    return 0


async def _work(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.errors import UsageError
    from kmevents.replay.verify import clusters_of_live_checkpoints
    from kmevents.store import snapshot_retention
    from kmevents.store.snapshots import index_entries, is_delta

    gen = args.generation or layout.live_generation()
    async with etcd_adapter.client(settings.etcd) as c:
        if args.all_clusters:
            clusters = sorted(await clusters_of_live_checkpoints(c, settings.etcd.prefix))
        else:
            clusters = [args.cluster or settings.cluster]
        out: dict[str, Any] = {"generation": gen, "clusters": []}
        producer = None
        try:
            for cluster in clusters:
                entries = await index_entries(settings, c, cluster, gen)
                if not entries and not args.all_clusters:
                    raise UsageError(f"cluster {cluster!r} has no stored snapshots under generation {gen}",
                                     hint="`kmevents clusters` lists the clusters; the worker stores the first "
                                          "after --snapshot-every events")
                row: dict[str, Any] = {"cluster": cluster}
                if args.action == "list":
                    row["snapshots"] = [{"offset": int(e["offset"]), "kind": "delta" if is_delta(e) else "full",
                                         "base": e.get("base"), "bytes": int(e.get("bytes") or 0),
                                         "stored_bytes": int(e.get("stored_bytes") or 0),
                                         "reducer_version": e.get("reducer_version")} for e in entries]
                    out["clusters"].append(row)
                    continue
                p = await snapshot_retention.plan_for(settings, c, cluster, gen, keep_recent=args.keep_recent,
                                                      thin_every=args.thin_every, entries=entries)
                row.update(p.as_dict())
                row["dry_run"] = bool(args.dry_run)
                if (p.drop or p.unreclaimed) and not args.dry_run:
                    if producer is None:
                        producer = kafka_adapter.producer(settings.kafka)
                        await producer.start()
                    row["result"] = await snapshot_retention.prune(settings, c, producer, p.drop, p.unreclaimed)
                out["clusters"].append(row)
        finally:
            if producer is not None:
                await producer.stop()
    return out


def _print(doc: dict[str, Any], action: str) -> None:
    from kmevents.commands._output import note, table

    def mb(n: int) -> str:
        return f"{n / 1e6:,.1f} MB"

    for row in doc["clusters"]:
        if action == "list":
            snaps = row["snapshots"]
            print(table([[s["offset"], s["kind"], "" if s["base"] is None else s["base"], mb(s["stored_bytes"]),
                          mb(s["bytes"])] for s in snaps],
                        ["OFFSET", "KIND", "BASE", "STORED", "LOADED"]))
            note(f"# {row['cluster']}: {sum(s['kind'] == 'full' for s in snaps)} full snapshots, "
                 f"{sum(s['kind'] == 'delta' for s in snaps)} deltas, "
                 f"{mb(sum(s['stored_bytes'] for s in snaps))} stored")
            continue
        kept, dropped = row["keep"], row["drop"]
        verb = "would remove" if row["dry_run"] else "removed"
        print(f"{row['cluster']}: keep {len(kept)} snapshots ({mb(row['kept_bytes'])}), {verb} {len(dropped)} "
              f"({mb(row['dropped_bytes'])})")
        if row.get("unreclaimed"):
            note(f"# {row['unreclaimed']} snapshots removed by an earlier prune still had chunks without tombstones"
                 + (": sent now" if row.get("result") else ""))
        for bad in row.get("unreadable_unreclaimed") or ():
            note(f"# left alone: {bad['key']} ({bad['error']}); its chunks may still lack tombstones: read it with "
                 f"`etcdctl get {bad['key']}`, then remove it with `etcdctl del {bad['key']}`")
        res = row.get("result")
        if res is None:
            continue
        if res["changed_meanwhile"]:
            note(f"# {len(res['changed_meanwhile'])} entries were rewritten while pruning and were left: "
                 f"{res['changed_meanwhile'][:5]}")
        if res["cleanup_policy"] not in (None, "compact"):
            note(f"# the snapshots topic's cleanup.policy is {res['cleanup_policy']!r}: the removed snapshots' bytes "
                 "stay on disk until it is compacted; set it with kafka-configs.sh --alter --entity-type topics "
                 "--entity-name <snapshots topic> --add-config cleanup.policy=compact")
