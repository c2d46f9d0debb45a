"""``kmevents follow KIND --url URL``: follow a live source into ingest (or a file, with --dry-run)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from kmevents.commands._common import add_connection_flags
from kmevents.commands._feed import DRY_RUN_HELP, add_output_flags, open_run, print_summary

#: ``kmevents.sources.runner.KINDS``, spelled out so that building the CLI's parser does not
#: import the sources and their HTTP client (~0.5 s on every command); a unit test keeps them equal.
KINDS = ("mesos-operator", "mesos-state", "k8s", "k8sm")

HELP = f"""\
Follow a live source and ingest what it emits, until interrupted (Ctrl-C or
SIGTERM ends it cleanly and prints the summary; a second Ctrl-C does not wait).

KIND is
  mesos-operator  a Mesos master's operator event stream (v1 API, SUBSCRIBE), --url = master
  mesos-state     a Mesos master's /master/state, polled every --interval seconds, --url = master
  k8s             a Kubernetes API server's watches (pods, nodes, services, ...), --url = API server
  k8sm            k8sm's leader key in etcd (--key), --url = etcd endpoint

A stream that ends on an error its client does not expect is restarted after a
backoff (and the run will exit 1: the error is in the summary); after
--max-restarts failures in a row the command ends (exit 1).

{DRY_RUN_HELP}

examples:
  kmevents follow mesos-operator --url http://master.example:5050 --cluster prod
  kmevents follow k8s --url https://apiserver.example:6443 --token "$TOKEN" --dry-run -o k8s.jsonl
  kmevents follow mesos-state --url http://master.example:5050 --interval 10 --format json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("follow", help="follow a live Mesos/Kubernetes/k8sm source into ingest",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--url", required=True, help="master, API server, or etcd endpoint")
    p.add_argument("--cluster", default=None, help="cluster name (default: settings)")
    p.add_argument("--key", default=None,
                   help="k8sm: the leader key in etcd (default /mesos/k8sm/framework/Kubernetes/leader)")
    p.add_argument("--etcd-api", choices=("v2", "v3"), default="v2",
                   help="k8sm: the etcd API the leader key is written through (k8sm writes v2)")
    p.add_argument("--token", default=None, help="k8s: bearer token")
    p.add_argument("--resources", default=None, metavar="R,R...",
                   help="k8s: the resources to watch (default pods,nodes,replicationcontrollers,services,"
                        "endpoints,namespaces,events)")
    p.add_argument("--interval", type=float, default=5.0, help="mesos-state: seconds between polls")
    p.add_argument("--no-offers", action="store_true",
                   help="mesos-state: do not report outstanding offers (the framework's scheduler stream "
                        "is posted and reports them; both would report each offer twice)")
    p.add_argument("--max-restarts", type=int, default=5,
                   help="unexpected stream failures in a row before the command ends (default 5)")
    add_output_flags(p)
    add_connection_flags(p)
    p.set_defaults(func=cmd_follow)


def cmd_follow(args: argparse.Namespace) -> int:
    from kmevents.sources import run_source

    settings, sink = open_run(args)
    options: dict[str, Any] = {k: v for k, v in (("key", args.key), ("token", args.token),
                                                 ("etcd_api", args.etcd_api)) if v is not None}
    if args.no_offers:
        options["no_offers"] = True
    if args.resources:
        options["resources"] = [r.strip() for r in args.resources.split(",") if r.strip()]

    async def main() -> object:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(name: str) -> None:
            if stop.is_set() and task is not None:
                task.cancel()  # the second one: do not wait for the last batch
                return
            print(f"kmevents follow: {name}: stopping after the last batch (again to stop now)", file=sys.stderr)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            return await run_source(args.kind, settings, args.url, interval=args.interval, stop=stop, sink=sink,
                                    max_restarts=args.max_restarts, **options)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        summary = asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    return print_summary(summary, args)
