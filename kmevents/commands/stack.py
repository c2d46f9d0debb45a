"""``kmevents stack up | down | status | logs``: the local Kafka + etcd."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kmevents.commands._common import add_format_flag, emit_json

if TYPE_CHECKING:
    from kmevents.settings import Settings

HELP = """\
Run a real local stack on 127.0.0.1: Apache Kafka (KRaft, one node, jars
fetched once with Maven into a cache, or KAFKA_HOME) and etcd (Debian's
etcd-server 3.4, or ETCD_BIN), with the project's topics created.

  kmevents stack up              start (idempotent); returns when both answer
  kmevents stack status --format json
  kmevents stack logs kafka -n 100
  kmevents stack down            stop by PID; data is kept
  kmevents stack down --wipe     stop and delete the data

Ports and folders: --home, --kafka-port, --etcd-port, or KMEVENTS_STACK__*.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="start, stop, inspect the local Kafka + etcd",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--home", type=Path, help="folder for data, logs, PID files (default ~/.kmevents/stack)")
        sp.add_argument("--kafka-port", type=int, help="Kafka client port (default 9092)")
        sp.add_argument("--etcd-port", type=int, help="etcd client port (default 2379)")

    up = ssub.add_parser("up", help="start Kafka and etcd and create the topics")
    common(up)
    add_format_flag(up, ("text", "json"))
    up.set_defaults(func=cmd_up)
    down = ssub.add_parser("down", help="stop what `up` started")
    common(down)
    down.add_argument("--wipe", action="store_true", help="also delete Kafka's and etcd's data, their logs and PID files, and the Faust "
                           "worker's local state (other files in --home stay)")
    down.set_defaults(func=cmd_down)
    st = ssub.add_parser("status", help="health of each component; exit 1 if unhealthy")
    common(st)
    add_format_flag(st, ("text", "json"))
    st.set_defaults(func=cmd_status)
    lg = ssub.add_parser("logs", help="the last lines of a component's log")
    common(lg)
    lg.add_argument("component", choices=("kafka", "etcd"))
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.set_defaults(func=cmd_logs)


def _settings(args: argparse.Namespace) -> Settings:
    from kmevents.settings import load
    from kmevents.stack.manager import with_remembered_ports

    return with_remembered_ports(load({
        "stack.home": args.home,
        "stack.kafka_port": args.kafka_port,
        "stack.kafka_controller_port": args.kafka_port + 1 if args.kafka_port else None,
        "stack.etcd_port": args.etcd_port,
        "stack.etcd_peer_port": args.etcd_port + 1 if args.etcd_port else None,
    }))


def _stack(args: argparse.Namespace):
    from kmevents.stack import Stack

    return Stack(_settings(args))


def cmd_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    t0 = time.monotonic()
    text = args.format == "text"
    statuses = stack.up(progress=(lambda m: print(f"  {m} ...", file=sys.stderr)) if text else None)
    took = time.monotonic() - t0
    for w in stack.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not text:
        emit_json({s.name: s.as_dict() for s in statuses} | {"seconds": round(took, 1),
                                                             "home": str(stack.home)})
    else:
        for s in statuses:
            print(f"{s.name:6} {'healthy' if s.healthy else 'UNHEALTHY':9} {s.address:24} pid {s.pid}")
            print(f"       {s.detail}")
        print(f"stack up in {took:.1f}s; stop it with `kmevents stack down`")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stopped = stack.down(wipe=args.wipe)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}" + ("; data wiped" if args.wipe else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    statuses = _stack(args).status()
    if args.format == "json":
        emit_json({s.name: s.as_dict() for s in statuses})
    else:
        for s in statuses:
            print(f"{s.name:6} {'healthy' if s.healthy else 'UNHEALTHY':9} {s.address:24} pid {s.pid}")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_logs(args: argparse.Namespace) -> int:
    print(_stack(args).logs(args.component, args.lines))
    return 0
