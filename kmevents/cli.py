"""The one entry point: ``kmevents COMMAND``.

Each command lives in its own module under ``kmevents/commands/`` and exposes
``register(subparsers)``; the module adds its parser and sets ``func`` to a
callable ``func(args) -> int``. Modules are imported lazily so that
``kmevents --help`` stays fast and a command's heavy imports load only when it runs.

Whatever a command raises ends as ONE line on stderr, ``kmevents CMD: what (hint: ...)``,
and an exit code (:func:`failure`): a :class:`~kmevents.errors.KmeventsError` its own
(2 usage or environment, 1 a check failed), a file that cannot be opened 2, Kafka or
etcd not answering 2 (named, with its address), anything else 3 (a bug). ``-v``
(``kmevents -v CMD``) prints the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence

from kmevents.errors import EnvironmentProblem, KmeventsError

#: exit code of an error kmevents did not foresee (a bug: its traceback is worth a report)
INTERNAL_ERROR = 3

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
    "snapshots",
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
2 usage or environment error (a missing file, Kafka or etcd not answering),
3 an internal error (a bug: -v shows its traceback). Errors are one line;
-v (before the command: kmevents -v state ...) adds the traceback.

Examples:
  kmevents demo
  kmevents state --cluster C --at 2026-01-01T00:05:00Z
  kmevents diff --cluster C --from offset:1000 --to offset:2000 --kind pods
  kmevents COMMAND --help
"""


#: A command's name where it is not its module's (``import`` is a keyword).
_NAME_OF_MODULE = {"import_": "import"}
_MODULE_OF_COMMAND = {_NAME_OF_MODULE.get(m, m): m for m in COMMAND_MODULES}
#: Commands that read every command's parser (``completion`` writes them all into its script).
_NEEDS_ALL = frozenset({"completion"})
#: The global options that take a value (``--context NAME``, ``--tz ZONE``).
_GLOBAL_VALUED = frozenset({"--context", "--tz"})


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when it names one that needs only its own parser: the first word
    after the global options. None (every command's parser is built) for ``--help``,
    ``--version``, no command, a word that is no command (argparse then lists the commands), and
    the commands of :data:`_NEEDS_ALL`."""
    skip = False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok in _GLOBAL_VALUED:
            skip = True
            continue
        if tok.startswith("-"):
            if tok in ("-h", "--help", "--version") or not tok.startswith(("--context=", "--tz=", "-v", "--verbose")):
                return None
            continue
        return tok if tok in _MODULE_OF_COMMAND and tok not in _NEEDS_ALL else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``only`` (a command's name), of that command alone:
    a run builds only the parser of the command it runs (:func:`chosen_command`). Each other
    command's parser costs its module's import and its arguments (~35 ms of a cold command's
    ~0.5 s at the simulator's scale, BENCHMARKS.md)."""
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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on an error, print its traceback too (the error itself stays one line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if only is None else (_MODULE_OF_COMMAND[only],):
        modname = f"kmevents.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command given (its usage line is the one worth showing)."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        choices = getattr(action, "choices", None) or {}
        if getattr(args, "command", None) in choices:
            return choices[args.command]
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
    words = join_relative_times(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_command(words))
    args, extra = parser.parse_known_args(words)
    verbose = [a for a in extra if a in ("-v", "--verbose")]
    if len(verbose) != len(extra):  # -v may also follow the command (kmevents state -v ...)
        _command_parser(parser, args).error("unrecognized arguments: "
                                            + " ".join(a for a in extra if a not in verbose))
    args.verbose = args.verbose or bool(verbose)
    if not args.verbose:
        # A client that cannot connect logs it, then raises; the raise is said in one line below.
        for name in ("aiokafka", "kafka"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
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
    except KeyboardInterrupt:
        print(f"kmevents {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kmevents get pods | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush fails no more
        return 141  # as a process killed by SIGPIPE
    except Exception as exc:  # noqa: BLE001 - every error ends as one line and an exit code
        if args.verbose:
            traceback.print_exception(exc)
        code, line = failure(exc, args)
        if code == INTERNAL_ERROR and not args.verbose:
            line += " (a bug: run again with -v for the traceback, and report it)"
        print(f"kmevents {args.command}: {line}", file=sys.stderr)
        return code
    finally:
        if zone is not None:
            timespec.reset_zone(zone)
        config.unchoose(context)


def _flat(text: str) -> str:
    return " ".join(str(text).split())


def _cause(exc: BaseException) -> str:
    """A short reason of a client's error: gRPC's status and details, else ``Type: text``."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        name = getattr(code(), "name", code())
        return _flat(f"{name}: {details()}")
    text = _flat(str(exc))
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def failure(exc: BaseException, args: argparse.Namespace | None = None) -> tuple[int, str]:
    """The exit code and the one line that say what went wrong (see the module docstring)."""
    if isinstance(exc, KmeventsError):
        line = _flat(exc.message)
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, KmeventsError) and _backend(cause, args):
            line += f" ({_cause(cause)})"
        return exc.exit_code, line + (f" (hint: {_flat(exc.hint)})" if exc.hint else "")
    down = _backend(exc, args)
    if down is not None:
        return EnvironmentProblem.exit_code, (
            f"{down} (hint: is the stack up? `kmevents stack status`; or point --bootstrap/--etcd, "
            "KMEVENTS_KAFKA__BOOTSTRAP/KMEVENTS_ETCD__ENDPOINT, at yours)")
    if isinstance(exc, OSError) and exc.filename is not None:
        what = exc.strerror or type(exc).__name__
        return 2, f"cannot open {exc.filename}: {what} (hint: check the path)"
    return INTERNAL_ERROR, f"internal error: {_cause(exc)}"


def _backend(exc: BaseException, args: argparse.Namespace | None) -> str | None:
    """One line naming Kafka or etcd when ``exc`` (or its cause) is theirs not answering."""
    from kmevents.api.backends import backend_down
    from kmevents.settings import Settings

    try:
        from kmevents.commands._common import settings_from

        settings = settings_from(args) if args is not None else Settings()
    except Exception:  # noqa: BLE001 - the settings themselves are broken: say what we can
        settings = Settings.model_construct()
    try:
        return backend_down(settings, exc)
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
