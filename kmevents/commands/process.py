"""``kmevents process``: run a derivation worker (log -> etcd, exactly-once effect)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from kmevents.commands._common import add_connection_flags, settings_from, setup_logging
from kmevents.errors import KmeventsError

if TYPE_CHECKING:  # the worker is imported when the command runs: the parser must build cheaply
    from kmevents.processors.worker import DeriveWorker

HELP = """\
Run one derivation worker. It joins the consumer group, takes partitions of
the events topic, loads each partition's checkpoint (and state, from the
newest snapshot plus the log) from etcd, and folds new events into etcd with
an exactly-once effect. Start several for more partitions; Kafka's group
rebalancing spreads the partitions over them.

SIGTERM or Ctrl-C finishes the current batch, commits it, and leaves.
Metrics (Prometheus) and health are served on 127.0.0.1 only.

At start it checks that Kafka and etcd answer (else one line naming which,
exit 2), then logs what it does: the worker's id, group, topic, Kafka, etcd
and metrics address; each partition taken (its checkpoint, the clusters it
restored) and given up. KMEVENTS_LOG_FORMAT=json for JSON lines.

examples:
  kmevents process                       the Faust app hosting the worker (web on 127.0.0.1:6066)
  kmevents process --engine plain --metrics-port 9108
  kmevents process --instance-id worker-1 --session-timeout 6
  kmevents process --no-versions         no entity versions per block (history folds each block it needs;
                                         `kmevents snapshots backfill --follow` can build them beside it)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="run the processor workers (log -> etcd)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("faust", "plain"), default="faust",
                   help="faust: hosted in the Faust app (default); plain: the bare asyncio loop")
    p.add_argument("--group", default="kmevents-derive", help="consumer group id")
    p.add_argument("--instance-id", default=None, metavar="ID",
                   help="static group membership: a worker restarted with the same ID (e.g. its slot in a "
                        "supervisor) gets its partitions back at once instead of after the session timeout; "
                        "ids must be unique within the group")
    p.add_argument("--session-timeout", type=float, default=None, metavar="S",
                   help="seconds the group waits for a silent (killed) worker before moving its partitions "
                        "(default 10; the broker's floor is group.min.session.timeout.ms, 6 s by default)")
    # Defaults stay the worker's own (None here: importing the worker would slow every
    # command's start); the help states them and a unit test keeps the two equal.
    p.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                   help="snapshot a cluster every N events (default 20,000)")
    p.add_argument("--snapshot-seconds", type=float, default=None, metavar="M",
                   help="...or every M seconds when it changed (default 300)")
    p.add_argument("--delta-every", type=int, default=None, metavar="N",
                   help="between snapshots, store what changed since the last one every N events of a "
                        "cluster, so a point-in-time read folds at most N events (default 4,000; 0: none)")
    p.add_argument("--snapshots-in-process", action="store_true",
                   help="encode snapshots in the worker itself, pausing the fold, instead of a forked child "
                        "(the default where the platform can fork; the worker also switches by itself after "
                        "two children in a row fail)")
    p.add_argument("--deltas-in-child", action="store_true",
                   help="encode the deltas between full snapshots in forked children too (by default the "
                        "worker encodes a delta itself, in ~0.1-0.3 s at the large profile, cheaper than a "
                        "fork's copy-on-write; a child wins only on an otherwise idle core)")
    p.add_argument("--full-snapshots-in-child", action="store_true",
                   help="encode each full snapshot whole in a forked child (the way before); by default the "
                        "worker builds it itself from the last one's sections and the entities changed since, "
                        "and compresses it in a thread while it folds on")
    p.add_argument("--prune-snapshots", nargs="?", const="24:100000", default=None, metavar="KEEP:EVERY",
                   help="after each full snapshot, thin the cluster's older ones as `kmevents snapshots prune` "
                        "does: keep the newest KEEP full snapshots with their deltas and before them one per "
                        "EVERY offsets (without a value: 24:100000). Off by default: every snapshot is kept")
    p.add_argument("--no-versions", action="store_true",
                   help="do not store the entity versions of each block of the touched-entity index (by default "
                        "the worker stores, per block of 1,000 events, each changed entity's value after each event, "
                        "~0.2 MB compressed at the large profile, in the snapshots topic with an etcd entry under "
                        "_versions/; `kmevents history` reads them instead of folding the block from a snapshot). "
                        "They are the worker's largest cost: ~31-36 of its ~111-118 us of CPU an event at the "
                        "default profile, so without them it derives ~1.4x as fast (`python -m bench.run "
                        "derive_split`); "
                        "history then folds each block it needs, unless `kmevents snapshots backfill --follow "
                        "--skip-newest 0` builds the records beside the worker")
    p.add_argument("--metrics-port", type=int, default=6066,
                   help="port on 127.0.0.1 for /metrics and /healthz (0: off; default 6066)")
    add_connection_flags(p)
    p.set_defaults(func=cmd_process)


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The worker's keyword arguments given on the command line (the rest keep the worker's defaults)."""
    given = {"snapshot_every_events": args.snapshot_every, "snapshot_every_seconds": args.snapshot_seconds,
             "delta_every_events": args.delta_every,
             "snapshots_in_child": False if args.snapshots_in_process else None,
             "deltas_in_child": True if args.deltas_in_child else None,
             "full_snapshots_in_child": True if args.full_snapshots_in_child else None,
             "snapshot_retention": None if args.prune_snapshots is None else _retention(args.prune_snapshots),
             "session_timeout_ms": None if args.session_timeout is None else int(args.session_timeout * 1000),
             "versions": False if args.no_versions else None}
    return {k: v for k, v in given.items() if v is not None}


def _retention(text: str) -> tuple[int, int]:
    from kmevents.errors import UsageError

    keep, _, every = text.partition(":")
    if not (keep.isdigit() and every.isdigit() and int(keep) >= 1 and int(every) >= 1):
        raise UsageError(f"--prune-snapshots {text!r}: give KEEP:EVERY, two whole numbers of at least 1",
                         hint="e.g. --prune-snapshots 24:100000 (the newest 24 full snapshots, then one per "
                              "100,000 offsets)")
    return int(keep), int(every)


def cmd_process(args: argparse.Namespace) -> int:
    from kmevents.commands._common import require_backends
    from kmevents.processors.worker import DeriveWorker

    settings = settings_from(args)
    setup_logging(settings)
    worker = DeriveWorker(settings, group_id=args.group, instance_id=args.instance_id,
                          **worker_options(args))  # no I/O until started
    log = logging.getLogger("kmevents.process")
    log.info("starting the derivation worker", extra={
        "engine": args.engine, "worker": worker.worker_id, "group": args.group, "instance_id": args.instance_id,
        "topic": settings.kafka.events_topic, "kafka": settings.kafka.bootstrap, "etcd": settings.etcd.endpoint,
        "prefix": settings.etcd.prefix,
        "metrics": f"http://127.0.0.1:{args.metrics_port}/metrics" if args.metrics_port else "off"})
    require_backends(settings)
    if args.engine == "faust":
        from kmevents.processors.faust_app import run_faust

        return run_faust(settings, worker, metrics_port=args.metrics_port)
    return asyncio.run(_run_plain(worker, args.metrics_port))


async def _run_plain(worker: DeriveWorker, metrics_port: int) -> int:
    from kmevents.processors import metrics

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop_requested.set)
    await worker.start()
    server = metrics.serve(worker, metrics_port) if metrics_port else None
    logging.getLogger("kmevents.process").info("worker running: waiting for partitions", extra={"worker": worker.worker_id})
    try:
        await worker.run()
    except Exception as exc:  # noqa: BLE001 - logged, and the exit code (1, either engine) tells the supervisor
        if isinstance(exc, KmeventsError):  # a known cause (etcd's alarm, a damaged batch): what to do
            logging.getLogger("kmevents.process").error("worker stopped; exiting", extra={
                "error": exc.message, "hint": exc.hint})
        else:
            logging.getLogger("kmevents.process").exception("worker failed; exiting")
        return 1
    finally:
        await worker.stop()
        if server is not None:
            server.shutdown()
    return 0
