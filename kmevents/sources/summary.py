"""What a source run or an import did, per source, and the arithmetic that holds between the counts.

A *source* is one thing the user pointed kmevents at: a live client (``k8s/pods``,
``mesos-operator``) or an imported file. For each, a :class:`Tally` counts:

    records      raw records the parser was given (in)
    with_events  records that gave at least one event
    skipped      records read and deliberately turned into no event, by reason (the parser's count)
    quarantined  records the parser failed on, kept raw with their position (never dropped)
    events       events the parser made from them
    accepted     events validated, redacted and written (out; in a dry run: written to the file)
    refused      events ingest refused (the contract, the clock horizon, the size limit)
    unsent       events made but never handed to ingest (the run ended on a fatal error)

Two equations hold at the end of a run (the unit tests check them):

    records = with_events + skipped + quarantined + unexplained
    events  = accepted + refused + unsent

``unexplained`` is a record that gave no event and no reason: a silent drop. It
should be 0; the summary shows it so that a parser that forgets to count is seen.

Worked example: an audit log of 5 lines, one a truncated JSON line, one a
``get pods``, three pod deletes of which one names a pod never seen (skipped
"pod uid unknown"): records 5 = with_events 2 + skipped 2 + quarantined 1 +
unexplained 0; the two deletes by the node controller give 2 events each, so
events 4 = accepted 4 + refused 0 + unsent 0.

The run's exit code: 2 when it ended on an environment error (Kafka lost), 1 when
anything was refused, quarantined, unsent, or a stream failed unexpectedly (even
if it reconnected: what it sent meanwhile cannot be vouched for), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: How many refusal and failure messages a tally keeps (the counts are always complete).
MAX_LISTED = 20


@dataclass
class Tally:
    """One source's counts (see the module docstring)."""

    records: int = 0
    with_events: int = 0
    events: int = 0
    accepted: int = 0
    refused: int = 0
    unsent: int = 0
    quarantined: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    """Times the source's client was restarted after an unexpected error."""
    failures: list[str] = field(default_factory=list)
    """Unexpected stream errors (``TypeError: ...``), at most :data:`MAX_LISTED`."""
    failed: int = 0
    """Unexpected stream errors, all of them."""
    refusals: list[str] = field(default_factory=list)
    """The first refusals, ``event_type: field: reason``, at most :data:`MAX_LISTED`."""
    notes: list[str] = field(default_factory=list)
    """What the reader decided about this source (where a capture's time came from...)."""

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def unexplained(self) -> int:
        """Records that gave no event, no skip reason and no quarantine (0 when every parser counts)."""
        return max(0, self.records - self.with_events - self.skipped_total - self.quarantined)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def quarantine(self, reason: str) -> None:
        self.quarantined += 1
        key = _reason_class(reason)
        self.quarantine_reasons[key] = self.quarantine_reasons.get(key, 0) + 1

    def refuse(self, message: str) -> None:
        self.refused += 1
        if len(self.refusals) < MAX_LISTED:
            self.refusals.append(message)

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_LISTED:
            self.failures.append(message)

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to this one (the totals row)."""
        for name in ("records", "with_events", "events", "accepted", "refused", "unsent", "quarantined",
                     "restarts", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.skipped.items():
            self.skip(reason, n)
        for reason, n in other.quarantine_reasons.items():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + n
        self.failures.extend(other.failures[: MAX_LISTED - len(self.failures)])
        self.refusals.extend(other.refusals[: MAX_LISTED - len(self.refusals)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "in": self.records, "out": self.accepted, "refused": self.refused,
            "quarantined": self.quarantined, "skipped": self.skipped_total,
            "unexplained": self.unexplained, "records_with_events": self.with_events,
            "events": self.events, "unsent": self.unsent,
            "skipped_by_reason": dict(sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "quarantined_by_reason": dict(sorted(self.quarantine_reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "restarts": self.restarts, "stream_errors": self.failed, "failures": list(self.failures),
            "refusals": list(self.refusals), "notes": list(self.notes),
        }


def _reason_class(reason: str) -> str:
    """A quarantine reason without the record-specific tail (``KeyError: 'uid'`` stays whole;
    a long message is cut at its first line and 120 characters)."""
    first = reason.splitlines()[0] if reason else "unknown"
    return first if len(first) <= 120 else first[:117] + "..."


@dataclass
class Summary:
    """A run's tallies by source, where its output went, and how it ended."""

    command: str
    dry_run: bool = False
    destination: str = ""
    """The events topic, or the dry run's output file."""
    quarantine_to: str = ""
    """The quarantine topic, or the dry run's quarantine file."""
    sources: dict[str, Tally] = field(default_factory=dict)
    batches: int = 0
    fatal: str | None = None
    """The error that ended the run early (Kafka lost mid-run), if any."""
    fatal_exit: int = 2

    def tally(self, source: str) -> Tally:
        t = self.sources.get(source)
        if t is None:
            t = self.sources[source] = Tally()
        return t

    def totals(self) -> Tally:
        total = Tally()
        for t in self.sources.values():
            total.add(t)
        return total

    # -- the old RunStats view (run_source's callers read these) --------------------------

    @property
    def accepted(self) -> int:
        return sum(t.accepted for t in self.sources.values())

    @property
    def refused(self) -> int:
        return sum(t.refused for t in self.sources.values())

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.sources.values())

    @property
    def errors(self) -> list[str]:
        """The first refusals' errors (at most :data:`MAX_LISTED`), ``event_type: field: reason``."""
        return self.totals().refusals

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return self.fatal_exit
        t = self.totals()
        return 1 if (t.refused or t.quarantined or t.unsent or t.failed) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command, "dry_run": self.dry_run, "destination": self.destination,
            "quarantine": self.quarantine_to, "batches": self.batches,
            "sources": {name: t.as_dict() for name, t in self.sources.items()},
            "total": self.totals().as_dict(), "fatal": self.fatal, "exit_code": self.exit_code,
        }

    def text(self) -> str:
        """The summary for people: a table, then the reasons behind every non-zero count."""
        head = (f"kmevents {self.command}: "
                + (f"dry run: events to {self.destination}, quarantined records to {self.quarantine_to}"
                   if self.dry_run else f"events to {self.destination}, quarantined records to {self.quarantine_to}"))
        rows = [(name, t) for name, t in self.sources.items()]
        if len(rows) != 1:
            rows.append(("total", self.totals()))
        width = max([len("source")] + [len(n) for n, _ in rows])
        cols = ("in", "out", "refused", "quarantined", "skipped", "unexplained")
        lines = [head, "  ".join([f"{'source':<{width}}"] + [f"{c:>11}" for c in cols])]
        for name, t in rows:
            vals = (t.records, t.accepted, t.refused, t.quarantined, t.skipped_total, t.unexplained)
            lines.append("  ".join([f"{name:<{width}}"] + [f"{v:>11,}" for v in vals]))
        for name, t in self.sources.items():
            for note in t.notes:
                lines.append(f"  {name}: {note}")
            if t.skipped:
                reasons = sorted(t.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
                lines.append(f"  {name}: skipped " + "; ".join(f"{r} x{n:,}" for r, n in reasons))
            if t.quarantine_reasons:
                reasons = sorted(t.quarantine_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                lines.append(f"  {name}: quarantined " + "; ".join(f"{r} x{n:,}" for r, n in reasons))
            if t.unexplained:
                lines.append(f"  {name}: {t.unexplained:,} records gave no event and no reason (a parser "
                             "that does not count what it drops: please report it)")
            for f in t.failures:
                lines.append(f"  {name}: stream error: {f}")
            if t.restarts:
                lines.append(f"  {name}: restarted {t.restarts:,} times after unexpected errors")
            if t.unsent:
                lines.append(f"  {name}: {t.unsent:,} events were made but not sent (the run ended early)")
            for r in t.refusals:
                lines.append(f"  {name}: refused {r}")
        if self.fatal:
            lines.append(f"ended early: {self.fatal}")
        return "\n".join(lines)
