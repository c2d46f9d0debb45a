"""``kmevents follow KIND --url URL --cluster C``: follow a live source into ingest.

KIND is ``mesos-operator``, ``mesos-state``, ``k8s`` or ``k8sm``
(``kmevents.sources.run_source``). Runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio

from kmevents.commands._common import add_connection_flags, settings_from

#: ``kmevents.sources.runner.KINDS``, spelled out so that building the CLI's parser does not
#: import the sources and their HTTP client (~0.5 s on every command); a unit test keeps them equal.
KINDS = ("mesos-operator", "mesos-state", "k8s", "k8sm")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("follow", help="follow a live Mesos/Kubernetes/k8sm source into ingest",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--url", required=True, help="master, API server, or etcd endpoint")
    p.add_argument("--cluster", default=None, help="cluster name (default: settings)")
    p.add_argument("--key", default=None,
                   help="k8sm: the leader key in etcd (default /mesos/k8sm/framework/Kubernetes/leader)")
    p.add_argument("--etcd-api", choices=("v2", "v3"), default="v2",
                   help="k8sm: the etcd API the leader key is written through (k8sm writes v2)")
    p.add_argument("--token", default=None, help="k8s: bearer token")
    p.add_argument("--interval", type=float, default=5.0, help="mesos-state: seconds between polls")
    add_connection_flags(p)
    p.set_defaults(func=cmd_follow)


def cmd_follow(args: argparse.Namespace) -> int:
    from kmevents.sources import run_source

    settings = settings_from(args)
    options = {k: v for k, v in (("key", args.key), ("token", args.token), ("etcd_api", args.etcd_api))
               if v is not None}
    try:
        stats = asyncio.run(run_source(args.kind, settings, args.url, interval=args.interval, **options))
    except KeyboardInterrupt:
        return 0
    print(f"accepted {stats.accepted:,} events; refused {stats.refused:,}")
    for e in stats.errors:
        print(f"  {e}")
    return 1 if stats.refused else 0
