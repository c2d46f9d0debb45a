"""The one entry point: ``kmevents COMMAND``.

Each command lives in its own module under ``kmevents/commands/`` and exposes
``register(subparsers)``; the module adds its parser and sets ``func`` to a
callable ``func(args) -> int``. Modules are imported lazily so that
``kmevents --help`` stays fast and a command's heavy imports load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from kmevents.errors import KmeventsError

#: Command modules, in the order ``--help`` lists them. A module that does not
#: exist yet is skipped, so a partial checkout still runs.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "stack",
    "simulate",
    "validate",
    "ingest",
    "follow",
    "import_",
    "process",
    "state",
    "diff",
    "history",
    "search",
    "verify",
    "archive",
    "api",
    "monitor",
    "report",
)

DESCRIPTION = """\
kmevents keeps the durable, replayable memory of a Kubernetes-on-Mesos cluster.
Cluster events go to Kafka, processors fold them into current state in etcd,
and the reading commands rebuild or audit the state at any point in time.

Start with `kmevents demo`: it brings up a local Kafka + etcd and runs the
whole pipeline. Exit codes: 0 success, 1 the check found a problem,
2 usage or environment error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmevents",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        modname = f"kmevents.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub)
    return parser


def _version() -> str:
    from kmevents import __version__

    return f"kmevents {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KmeventsError as exc:
        print(f"kmevents {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"kmevents {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
