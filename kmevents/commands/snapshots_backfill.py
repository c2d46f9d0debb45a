"""``kmevents snapshots backfill``: the versions records history reads, built where the worker
stored none (the work is replay/versions_backfill.py's; this opens the logs, writes, follows)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

log = logging.getLogger("kmevents.commands.snapshots_backfill")

#: A follower whose passes over a cluster keep failing (Kafka or etcd not answering) for this long
#: exits 2 saying so, for its supervisor to start again (as the worker does after its 120 s).
FAIL_FOR_SECONDS = 120.0


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._common import emit_json, settings_from
    from kmevents.commands._source import run as run_async

    settings = settings_from(args)
    doc = run_async(lambda: _work(settings, args))
    if args.follow:  # each pass that built something was written as it ended; then the totals
        if args.format == "json":
            _json_line({"stopped": True, **doc})
        else:
            built = sum(r["built"] for r in doc["clusters"])
            print(f"stopped after {doc['passes']} passes: built {built:,} versions records in all", flush=True)
    elif args.format == "json":
        emit_json(doc)
    else:
        if not doc["clusters"]:
            from kmevents.commands._output import note

            note("# no cluster has a worker checkpoint under this etcd prefix: nothing to build (`kmevents clusters` "
                 "lists what the log holds)")
        for row in doc["clusters"]:
            _print(row, dry_run=args.dry_run)
    return 0


def _json_line(obj: Any) -> None:
    """``--follow --format json``: one object a line (JSON lines), flushed."""
    import sys

    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


async def _clusters(settings: Any, args: argparse.Namespace) -> list[str]:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.replay.verify import clusters_of_live_checkpoints

    if not args.all_clusters:
        return [args.cluster or settings.cluster]
    async with etcd_adapter.client(settings.etcd) as c:
        return sorted(await clusters_of_live_checkpoints(c, settings.etcd.prefix))


async def _work(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    from kmevents import layout
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.errors import EnvironmentProblem, KmeventsError
    from kmevents.replay.backfill_metrics import FollowStats
    from kmevents.replay.opening import open_log
    from kmevents.replay.versions_backfill import Backfill
    from kmevents.store.snapshots import SnapshotStore, SnapshotWriter

    gen = args.generation or layout.live_generation()
    clusters = await _clusters(settings, args)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.follow:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
    out: dict[str, Any] = {"generation": gen, "clusters": [], "passes": 0}
    async with contextlib.AsyncExitStack() as stack:
        producer = None
        if not args.dry_run:
            k = settings.kafka
            producer = kafka_adapter.producer(k, max_request_size=k.snapshot_max_message_bytes)
            await producer.start()
            stack.push_async_callback(producer.stop)
        work: dict[str, tuple[Any, Backfill]] = {}

        async def open_cluster(cluster: str) -> None:
            o = await stack.enter_async_context(open_log(settings, cluster=cluster, snapshots=True))
            if o.client is None:
                raise EnvironmentProblem(f"etcd at {settings.etcd.endpoint} does not answer: the touched-entity index "
                                         "and the records' entries are kept there",
                                         hint="start the stack (`kmevents stack up`) or give --etcd")
            store = SnapshotStore(settings, o.client, gen, reader_of=o.snapshot_points)
            store.freeze = False  # (a follower's states are folded on, not kept)
            writer = None if producer is None else SnapshotWriter(settings, producer, o.client)
            work[cluster] = (o, Backfill(settings, cluster, o.client, snapshots=store, writer=writer,
                                         partition=o.source.partition, generation=gen, skip_newest=args.skip_newest))

        for cluster in clusters:
            await open_cluster(cluster)
        #: with --follow: each cluster's passes so far, added up (the totals printed at the end, and
        #: --metrics-port's metrics)
        stats = FollowStats()
        if args.follow and args.metrics_port:
            server = _serve_metrics(args.metrics_port, stats)
            stack.callback(server.shutdown)
            stack.callback(setattr, stats, "running", False)
        while True:
            if args.follow and args.all_clusters and out["passes"]:  # clusters whose worker began since
                for cluster in await _clusters(settings, args):
                    if cluster not in work:
                        await open_cluster(cluster)
            for o, b in list(work.values()):
                refresh = getattr(o.source, "refresh", None)
                if refresh is not None:
                    refresh()
                try:
                    p = await b.run(o.source, dry_run=args.dry_run,
                                    progress=not args.no_progress and not args.follow, stop=stopping.is_set)
                except Exception as exc:
                    if not args.follow or isinstance(exc, KmeventsError):
                        raise
                    # a follower outlives Kafka's and etcd's short outages: its fold is dropped (a failure
                    # mid-fold leaves it half-way) and the next pass starts again from a stored state
                    b.state, b.at = None, -1
                    if stats.failed(b.cluster, str(exc)[:300]) > FAIL_FOR_SECONDS:
                        raise EnvironmentProblem(
                            f"backfill of {b.cluster} has failed for {FAIL_FOR_SECONDS:.0f} s: {exc}",
                            hint="check that Kafka and etcd answer (`kmevents stack status`); started again, "
                                 "the follower builds every block still without a record") from exc
                    log.warning("backfill pass failed; retrying", extra={"cluster": b.cluster,
                                                                         "error": str(exc)[:300]})
                    continue
                row = p.as_dict()
                if args.follow:
                    if p.built and args.format == "json":
                        _json_line({k: v for k, v in row.items() if k != "missing_blocks"})
                    elif p.built:
                        _print(row, dry_run=False, follow=True)
                    stats.passed(p)
                else:
                    out["clusters"].append(row)
            out["passes"] += 1
            if not args.follow or stopping.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), args.interval)
            if stopping.is_set():
                break
        if args.follow:
            out["clusters"] = [c.total.as_dict() for c in stats.clusters.values()]
    return out


def _serve_metrics(port: int, stats: Any) -> Any:
    """The follower's /metrics, /healthz and /readyz on 127.0.0.1:``port`` (replay/backfill_metrics.py)."""
    from kmevents.adapters import metrics_http
    from kmevents.errors import EnvironmentProblem
    from kmevents.replay import backfill_metrics

    try:
        server = metrics_http.serve(port, lambda: backfill_metrics.render(stats),
                                    lambda: backfill_metrics.health(stats), name="kmevents-backfill-metrics")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot serve the follower's metrics on 127.0.0.1:{port}: {exc.strerror or exc}",
                                 hint="give another --metrics-port (0: none)") from None
    log.info("follower metrics", extra={"metrics": f"http://127.0.0.1:{server.server_address[1]}/metrics"})
    return server


def _print(row: dict[str, Any], *, dry_run: bool, follow: bool = False) -> None:
    from kmevents.commands._output import note

    name = row["cluster"]
    if row["skipped"]:
        note(f"# {name}: {row['skipped']}")
    if follow:
        print(f"{name}: built {row['built']} versions records ({row['stored_bytes'] / 1e6:,.1f} MB stored) "
              f"in {row['seconds']:.1f} s", flush=True)
        return
    head = (f"{name}: {row['blocks']:,} closed blocks, {row['had_records']:,} with a versions record, "
            f"{row['missing']:,} without")
    if dry_run:
        print(head)
        for first, last in row["missing_blocks"][:20]:
            print(f"  {first}..{last}")
        if row["missing"] > 20:
            print(f"  ... and {row['missing'] - 20:,} more (--format json lists them all)")
    else:
        print(f"{head}; built {row['built']:,} ({row['stored_bytes'] / 1e6:,.1f} MB stored, "
              f"{row['records_folded']:,} records folded, {row['states_loaded']} stored states loaded) "
              f"in {row['seconds']:.1f} s")
    if not row["blocks"]:
        note(f"# {name} has no closed block of the touched-entity index yet: the worker closes one every ~1,000 "
             "events, and history scans the log until then")
    if row["left_to_worker"]:
        note(f"# {row['left_to_worker']} of the newest blocks without a record were left to the worker "
             "(--skip-newest 0 builds them: for a worker run with --no-versions)")
    if row["overlapping"]:
        note(f"# {row['overlapping']} blocks overlap the block before them (a crash between two workers' closes): "
             "history does not use them; passed over")
