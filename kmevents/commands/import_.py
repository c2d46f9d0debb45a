"""``kmevents import KIND FILE...``: captured source data through the live sources' pipeline."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from kmevents.commands._common import add_connection_flags
from kmevents.commands._feed import DRY_RUN_HELP, add_output_flags, open_run, print_summary

#: ``kmevents.sources.importer.IMPORT_KINDS`` (a unit test keeps them equal).
KINDS = ("k8s-audit", "mesos-state", "k8s-watch", "recordio")

HELP = f"""\
Import captures of a real cluster: the same parsers, checks, redaction and
partition pinning as `kmevents follow`, reading files instead of a live source.
FILE may be a directory (its files, by name), and gzip-compressed; a capture
made with `curl -i` keeps its HTTP headers, which are read (a master's Date).
Run `kmevents import KIND --help` for each kind's input and examples.

examples:
  kmevents import k8s-audit --cluster prod /var/log/kube-apiserver/audit.log
  kmevents import mesos-state --cluster prod state-*.json --dry-run -o checked.jsonl

{DRY_RUN_HELP}
"""

KIND_HELP = {
    "k8s-audit": ("Kubernetes audit logs", """\
Audit logs as the API server writes them (--audit-log-path: one audit.k8s.io
Event per line, rotated files too) or EventList documents (the webhook
backend's). Each Event is one record.

examples:
  kmevents import k8s-audit /var/log/kubernetes/audit.log --dry-run -o audit.jsonl
  kmevents import k8s-audit audit-logs/ --cluster prod
"""),
    "mesos-state": ("/master/state or /state.json dumps", """\
One or more dumps of a Mesos master's /master/state (or /master/state.json,
/state.json of masters before 0.25), or a directory of periodic dumps. They
are taken in capture-time order and diffed one against the next, exactly
like `kmevents follow mesos-state`. A dump's capture time is its HTTP Date
header when the capture kept it (curl -i: the master's clock, and the events
say clock "master"), else --captured-at, else a time in the file's name
(state-1436367900.json, state-20150708T150500Z.json, read as UTC), else the
file's modification time (clock "adapter"). A file that is not a master's
state (an error answer) is quarantined; the state of a master that was not
leading (empty lists) is skipped.

examples:
  */5 * * * * curl -si http://master:5050/master/state > /dumps/state-$(date +%s).json
  kmevents import mesos-state /dumps/ --cluster prod --dry-run -o state.jsonl
  kmevents import mesos-state state.json --captured-at 2015-07-08T15:05:00Z
"""),
    "k8s-watch": ("Kubernetes watch captures and lists", """\
WatchEvent lines ({"type": "ADDED", "object": {...}}: curl '...?watch=1',
kubectl get -w -o json --output-watch-events), List documents (kubectl get -o
json: read as a relist, so what is missing from it is deleted), or bare objects
(kubectl get -w -o json without --output-watch-events: read as ADDED, then
MODIFIED; that output cannot show a deletion). Kinds kmevents keeps: Pod, Node,
ReplicationController, Service, Endpoints, Namespace, Event; others are skipped
and counted.

examples:
  kubectl get pods -A -w -o json --output-watch-events > pods.watch.json
  kmevents import k8s-watch pods.list.json pods.watch.json --dry-run -o pods.jsonl
"""),
    "recordio": ("a captured Mesos operator or scheduler stream", """\
A RecordIO-framed event stream as the master sent it: the operator API's
SUBSCRIBE (curl -N -H 'Content-Type: application/json' -d '{"type":"SUBSCRIBE"}'
http://master:5050/api/v1 > operator.rio) or a scheduler's subscription. Which
one is found from its first records, or say it with --stream. A capture cut in
the middle of a record keeps the records before it; the cut one is quarantined.

examples:
  kmevents import recordio operator.rio --dry-run -o operator.jsonl
  kmevents import recordio scheduler.rio --stream scheduler --framework-info fwinfo.json
"""),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import captured audit logs, state dumps, watches and streams",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    for kind in KINDS:
        short, text = KIND_HELP[kind]
        k = kinds.add_parser(kind, help=short, description=f"{text}\n{DRY_RUN_HELP}",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        k.add_argument("files", nargs="+", metavar="FILE", help="files or directories")
        k.add_argument("--cluster", default=None, help="cluster name (default: settings)")
        k.add_argument("--captured-at", metavar="TIME",
                       help="when the capture was taken, for files that do not say (ISO 8601 with a zone, "
                            "or epoch milliseconds); default: the file's name or modification time")
        if kind == "recordio":
            k.add_argument("--stream", choices=("operator", "scheduler"), help="default: found from the capture")
            k.add_argument("--framework-info", metavar="FILE",
                           help="scheduler: the FrameworkInfo JSON the framework subscribed with")
        if kind == "k8s-watch":
            k.add_argument("--resource", help="resource of objects that do not carry a kind (pods, nodes, ...)")
        if kind == "mesos-state":
            k.add_argument("--no-offers", action="store_true",
                           help="do not report outstanding offers (a scheduler stream of the same time reports them)")
        k.add_argument("--batch", type=int, default=1000, help="events per batch (default 1000)")
        add_output_flags(k)
        add_connection_flags(k)
        k.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    import orjson

    from kmevents.errors import UsageError
    from kmevents.sources.importer import run_import
    from kmevents.timespec import parse_time

    settings, sink = open_run(args)
    captured_at = parse_time(args.captured_at).micros / 1e6 if args.captured_at else None
    options: dict[str, Any] = {}
    if getattr(args, "stream", None):
        options["stream"] = args.stream
    if getattr(args, "resource", None):
        options["resource"] = args.resource
    if getattr(args, "no_offers", False):
        options["no_offers"] = True
    if getattr(args, "framework_info", None):
        try:
            options["framework_info"] = orjson.loads(Path(args.framework_info).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise UsageError(f"cannot read --framework-info {args.framework_info}: {exc}",
                             hint="give the FrameworkInfo (v1 JSON) the scheduler subscribed with") from None
    summary = asyncio.run(run_import(args.import_kind, args.files, settings, sink=sink, batch_size=args.batch,
                                     captured_at=captured_at, **options))
    return print_summary(summary, args)
