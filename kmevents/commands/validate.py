"""``kmevents validate FILE``: check a JSON-lines file of events against the contract."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kmevents.commands._common import emit_json
from kmevents.errors import UsageError
from kmevents.jsonlines import DEFAULT_MAX_LINE_BYTES

if TYPE_CHECKING:
    from kmevents.settings import Settings

HELP = "check a JSON-lines file of events against the event contract"
DESCRIPTION = """\
Check events (one JSON object per line) exactly as strict ingest would, without
producing anything: the contract, a key written twice in one object, an
occurred_at further ahead of this machine's clock than
KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS (default 300), the size as stored.
Every problem is reported, one line each:

    FILE:LINE: EVENT_ID: field.path: reason

("-" stands for a missing event id or field). Blank lines are skipped. Lines
that are not JSON, not UTF-8, longer than --max-line-bytes, or cut off at the
end of the file are errors too. Warnings (an enum value newer than this
contract, kept as written) go to stderr and do not fail the check.

Exit status: 0 every event is valid (an empty file is valid), 1 some are not,
2 the file cannot be read.

examples:

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


def check_file(name: str, *, max_line_bytes: int, settings: Settings | None = None) -> Report:
    """Validate every line of file ``name`` (``-``: stdin) as ingest would; never stops at the first problem.

    ``settings`` (default: from the environment) gives ingest's own limits.
    """
    from kmevents import jsonlines
    from kmevents.contract import ContractViolation
    from kmevents.ingest import Ingestor
    from kmevents.settings import load

    report = Report(name)
    ingest = Ingestor(settings or load())  # check() does no I/O: nothing is started
    horizon = ingest.horizon()

    def problem(number: int, event_id: str | None, path: str, reason: str) -> Problem:
        return Problem(name, number, event_id or "-", path or "-", reason)

    try:
        for line in jsonlines.read(name, max_line_bytes=max_line_bytes):
            report.events += 1
            if line.error is not None:
                report.errors.append(problem(line.number, None, "-", line.error))
                continue
            try:
                checked = ingest.check(line.obj, horizon=horizon)
            except ContractViolation as exc:
                for path, reason in exc.errors:
                    report.errors.append(problem(line.number, exc.event_id, path, reason))
                continue
            report.valid += 1
            for warning in checked.warnings:
                report.warnings.append(
                    problem(line.number, checked.canonical["event_id"], warning.path, f"warning: {warning.message}")
                )
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}", hint="check the path; use '-' for stdin") from None
    return report


def run(args: argparse.Namespace) -> int:
    if args.max_line_bytes < 1:
        raise UsageError("--max-line-bytes must be at least 1")
    reports = [check_file(name, max_line_bytes=args.max_line_bytes) for name in args.files]
    failed = any(r.errors for r in reports)
    if args.format == "json":
        emit_json({"valid": not failed, "files": [r.as_dict() for r in reports]})
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
