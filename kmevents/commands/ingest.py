"""``kmevents ingest FILE``: validate, redact and produce events to the log."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from kmevents.commands._common import (
    add_connection_flags,
    add_format_flag,
    emit_json,
    settings_from,
)
from kmevents.errors import UsageError

HELP = """\
Ingest a JSON-lines file (or - for standard input) into the events topic.

Each event is validated strictly, given its dedupe key and event id when
absent, redacted (secrets never enter the log), pinned to its cluster's
partition and produced with an idempotent producer (acks=all). Invalid events
are refused with one line each, FILE:LINE: EVENT_ID: field.path: reason,
while the valid events of the same file are still written: lines that are
not JSON, write a key twice, break the contract, or are dated further ahead
of this machine's clock than KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS
(default 300). The last line is a summary: accepted N; refused M. Exit 1 if
any event was refused, else 0.

Ingesting a file twice writes its events twice; the copies have the same
event_id and the reducer ignores the repeat (a `duplicate` annotation).

examples:
  kmevents simulate --cluster demo --events 100000 --seed 1 -o demo.jsonl
  kmevents ingest demo.jsonl
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="validate, redact and produce a JSON-lines file",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="JSON lines; - for standard input")
    p.add_argument("--batch", type=int, default=5000, help="events per produce batch (default 5000)")
    p.add_argument("--max-line-bytes", type=int, default=1024 * 1024)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_connection_flags(p)
    add_format_flag(p, ("text", "json"))
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    return asyncio.run(_ingest(args))


async def _ingest(args: argparse.Namespace) -> int:
    from kmevents import jsonlines
    from kmevents.ingest import Ingestor, Result
    from kmevents.progress import progress_bar

    settings = settings_from(args)
    name = "-" if args.file == "-" else args.file
    try:
        total_bytes = Path(args.file).stat().st_size if args.file != "-" else None
        if args.file != "-":
            Path(args.file).open("rb").close()  # a directory or an unreadable file fails here, not mid-way
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}", hint="check the path; use '-' for stdin") from None
    accepted = refused = 0
    refusals: list[dict[str, object]] = []
    pending: list[tuple[int, Result]] = []  # printed in line order at each flush

    def report(line_no: int, res: Result) -> None:
        nonlocal refused
        refused += 1
        pending.append((line_no, res))

    def print_pending() -> None:
        for line_no, res in sorted(pending, key=lambda p: p[0]):
            for fieldpath, reason in res.errors or [("-", "refused")]:
                if args.format == "text":
                    print(f"{name}:{line_no}: {res.event_id or '-'}: {fieldpath}: {reason}", file=sys.stderr)
                refusals.append({"line": line_no, "event_id": res.event_id, "field": fieldpath,
                                 "reason": reason})
        pending.clear()

    async with Ingestor(settings) as ing:
        with progress_bar("ingest", total=total_bytes, unit="B", disable=args.quiet or args.format == "json") as bar:
            buf: list[object] = []
            numbers: list[int] = []

            async def flush() -> None:
                nonlocal accepted
                results = await ing.submit(buf)
                for n, res in zip(numbers, results, strict=True):
                    if res.ok:
                        accepted += 1
                    else:
                        report(n, res)
                buf.clear()
                numbers.clear()
                print_pending()

            for line in jsonlines.read(args.file, max_line_bytes=args.max_line_bytes):
                bar.advance(line.raw_size)
                if line.error is not None:
                    report(line.number, Result(index=-1, ok=False, errors=[("-", line.error)]))
                    continue
                buf.append(line.obj)
                numbers.append(line.number)
                if len(buf) >= args.batch:
                    await flush()
            if buf:
                await flush()
            print_pending()
    summary = {"accepted": accepted, "refused": refused, "topic": settings.kafka.events_topic}
    if args.format == "json":
        emit_json(summary | {"refusals": refusals})
    else:
        print(f"accepted {accepted:,} events into {settings.kafka.events_topic}; refused {refused:,}")
    return 1 if refused else 0
