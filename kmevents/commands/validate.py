"""``kmevents validate FILE``: check a JSON-lines file of events against the contract."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from kmevents.errors import UsageError

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

HELP = "check a JSON-lines file of events against the event contract"
DESCRIPTION = """\
Check events (one JSON object per line) exactly as strict ingest would, without
producing anything. Every problem is reported, one line each:

    FILE:LINE: EVENT_ID: field.path: reason

("-" stands for a missing event id or field). Blank lines are skipped. Lines
that are not JSON, not UTF-8, longer than --max-line-bytes, or cut off at the
end of the file are errors too. Warnings (an enum value newer than this
contract, kept as written) go to stderr and do not fail the check.

Exit status: 0 every event is valid (an empty file is valid), 1 some are not,
2 the file cannot be read.

Example:

    $ kmevents validate events.jsonl
    events.jsonl:3: 9c1e...: payload.status.state: String should match pattern '^TASK_[A-Z0-9_]+$'; got 'running'
    events.jsonl:7: -: type: unknown event type 'task.update'; did you mean 'task.status_updated'?
    events.jsonl: 10 events, 8 valid, 2 invalid, 0 warnings

    $ kmevents simulate --out - | kmevents validate - --format json

The contract itself (envelope, types, time formats, id recipes) is described
in schemas/README.md.
"""


@dataclass
class Problem:
    """One error or warning, located in the input."""

    file: str
    line: int
    event_id: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.event_id}: {self.path}: {self.reason}"


@dataclass
class Report:
    """What a run found in one file."""

    file: str
    events: int = 0
    valid: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.events - self.valid

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "events": self.events,
            "valid": self.valid,
            "invalid": self.invalid,
            "errors": [asdict(p) for p in self.errors],
            "warnings": [asdict(p) for p in self.warnings],
        }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines file of events; '-' for stdin")
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help="longest line accepted, in bytes (default: %(default)s = 1 MiB); longer lines are errors",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per problem (default); json: one machine-readable report on stdout",
    )
    parser.set_defaults(func=run)


def _lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None, bool]]:
    """Yield ``(line number, bytes or None if too long, ended by a newline)``.

    A line longer than ``limit`` is skipped without being held in memory.
    """
    number = 0
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > limit and not (len(chunk) == limit + 1 and chunk.endswith(b"\n")):
            ended = chunk.endswith(b"\n")
            while not ended:
                rest = stream.readline(_CHUNK)
                if not rest:
                    break
                ended = rest.endswith(b"\n")
            yield number, None, ended
            continue
        ended = chunk.endswith(b"\n")
        yield number, chunk.rstrip(b"\r\n") if ended else chunk, ended


def check_stream(name: str, stream: BinaryIO, *, max_line_bytes: int) -> Report:
    """Validate every line of ``stream``; never stops at the first problem."""
    import orjson

    from kmevents.contract import ContractViolation, validate_event

    report = Report(name)

    def problem(number: int, event_id: str | None, path: str, reason: str) -> Problem:
        return Problem(name, number, event_id or "-", path or "-", reason)

    for number, raw, ended in _lines(stream, max_line_bytes):
        if raw is None:
            report.events += 1
            report.errors.append(problem(number, None, "-", f"line longer than {max_line_bytes} bytes (--max-line-bytes)"))
            continue
        if not raw.strip():
            continue
        report.events += 1
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.errors.append(problem(number, None, "-", f"not UTF-8: invalid byte at offset {exc.start}"))
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            reason = f"not JSON: {exc}"
            if not ended:
                reason = f"truncated last line (no newline at end of file): {exc}"
            report.errors.append(problem(number, None, "-", reason))
            continue
        try:
            _canonical, warnings = validate_event(obj)
        except ContractViolation as exc:
            for path, reason in exc.errors:
                report.errors.append(problem(number, exc.event_id, path, reason))
            continue
        report.valid += 1
        event_id = _canonical["event_id"]
        for warning in warnings:
            report.warnings.append(problem(number, event_id, warning.path, f"warning: {warning.message}"))
    return report


def _open(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}", hint="check the path; use '-' for stdin") from None


def run(args: argparse.Namespace) -> int:
    if args.max_line_bytes < 1:
        raise UsageError("--max-line-bytes must be at least 1")
    reports: list[Report] = []
    for name in args.files:
        stream = _open(name)
        try:
            reports.append(check_stream(name, stream, max_line_bytes=args.max_line_bytes))
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    failed = any(r.errors for r in reports)
    if args.format == "json":
        print(json.dumps({"valid": not failed, "files": [r.as_dict() for r in reports]}, indent=2))
        return 1 if failed else 0
    for report in reports:
        for warning in report.warnings:
            print(warning, file=sys.stderr)
        for error in report.errors:
            print(error)
        print(
            f"{report.file}: {report.events} events, {report.valid} valid, {report.invalid} invalid, "
            f"{len(report.warnings)} warnings",
            file=sys.stderr,
        )
    return 1 if failed else 0
