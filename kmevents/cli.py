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
import os
import re
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
    "clusters",
    "get",
    "state",
    "diff",
    "history",
    "search",
    "verify",
    "archive",
    "api",
    "monitor",
    "report",
    "config",
    "completion",
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
    parser.add_argument("--context", dest="context_global", metavar="NAME",
                        help="the config file's context to use (kmevents config get-contexts)")
    parser.add_argument("--tz", dest="tz_global", metavar="ZONE",
                        help="read and show times in ZONE (Europe/Paris, local, +02:00); default KMEVENTS_TZ, "
                             "else UTC")
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


#: A relative TIME that argparse would take for a flag: ``-15m``, ``-1h30m``.
_NEGATIVE_TIME = re.compile(r"^-(?:\d+(?:\.\d+)?[smhdw])+$")


def join_relative_times(argv: Sequence[str]) -> list[str]:
    """``--at -15m`` -> ``--at=-15m``: argparse reads ``-15m`` as an unknown flag. Such a
    token is never a flag of kmevents, so joining it to the option before it is safe."""
    out: list[str] = []
    for tok in argv:
        if _NEGATIVE_TIME.match(tok) and out and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_relative_times(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from kmevents import config, timespec

    context = config.choose(getattr(args, "context", None) or args.context_global)
    zone = None
    try:
        zone = timespec.use_zone(getattr(args, "tz", None) or args.tz_global or os.environ.get("KMEVENTS_TZ")
                                 or None)
        return int(args.func(args) or 0)
    except KmeventsError as exc:
        print(f"kmevents {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"kmevents {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kmevents get pods | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush fails no more
        return 141  # as a process killed by SIGPIPE
    finally:
        if zone is not None:
            timespec.reset_zone(zone)
        config.unchoose(context)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
