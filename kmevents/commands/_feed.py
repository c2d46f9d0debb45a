"""What ``follow`` and ``import`` share: ``--dry-run -o FILE``, the sink it selects, the summary."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from kmevents.commands._common import add_format_flag, emit_json, settings_from, setup_logging
from kmevents.errors import UsageError

if TYPE_CHECKING:
    from kmevents.settings import Settings

DRY_RUN_HELP = """\
--dry-run -o FILE checks a source's data without writing anything to Kafka or
etcd: every event goes through ingest's own checks (validation, clock horizon,
redaction, size), the accepted ones are written to FILE as JSON lines (exactly
what ingest would store), records a parser failed on to FILE.quarantine.jsonl
(or --quarantine-file), and the summary says what a real run would have done.

A record a parser fails on is never dropped: it is counted, logged once, and
kept raw with its position in the quarantine topic (KMEVENTS_KAFKA__QUARANTINE_TOPIC,
default kmevents.quarantine, keyed stream:seq), secrets masked; the run goes on.
The summary gives per source: in (records), out (events written), refused,
quarantined, skipped (deliberately, by reason) and unexplained (should be 0).
Exit codes: 0 clean; 1 something was refused or quarantined, or a stream failed
unexpectedly; 2 usage, or Kafka/etcd unreachable (one line saying what to do)."""


def add_output_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dry run and output")
    g.add_argument("--dry-run", action="store_true",
                   help="send nothing: write what would be ingested to -o FILE (JSON lines)")
    g.add_argument("-o", "--output", metavar="FILE", help="with --dry-run: where the events go")
    g.add_argument("--quarantine-file", metavar="FILE",
                   help="with --dry-run: where quarantined records go (default FILE.quarantine.jsonl)")
    add_format_flag(p, ("text", "json"))


def open_run(args: argparse.Namespace) -> tuple[Settings, Any]:
    """The command's settings (logging set up) and its sink: the dry run's files, or None for Kafka."""
    settings = settings_from(args)
    setup_logging(settings)
    return settings, make_sink(args, settings, args.cluster)


def make_sink(args: argparse.Namespace, settings: Settings, cluster: str | None) -> Any:
    """The dry run's file sink, or None (the runner's default: Kafka); checks the flags go together."""
    if args.output and not args.dry_run:
        raise UsageError("-o FILE is for --dry-run", hint="add --dry-run, or leave -o out to write to Kafka")
    if args.quarantine_file and not args.dry_run:
        raise UsageError("--quarantine-file is for --dry-run",
                         hint="without --dry-run, quarantined records go to the quarantine topic")
    if not args.dry_run:
        return None
    if not args.output:
        raise UsageError("--dry-run needs -o FILE", hint="e.g. --dry-run -o events.jsonl")
    from kmevents.sources.sinks import DryRunSink

    return DryRunSink(settings, args.output, args.quarantine_file, cluster=cluster)


def print_summary(summary: Any, args: argparse.Namespace) -> int:
    """The summary on stdout (text or ``--format json``); returns the exit code."""
    if args.format == "json":
        emit_json(summary.as_dict())
    else:
        print(summary.text())
    if summary.fatal:
        print(f"kmevents {summary.command}: {summary.fatal}", file=sys.stderr)
    return int(summary.exit_code)
