"""What happened to one submitted event: the value the ingestor returns and the outbox fills in.

Its own module so that ``ingestor.py`` (which makes them) and ``outbox.py``
(which records each event's offset or refusal) both import it, and not each
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """What happened to one submitted event."""

    index: int
    ok: bool
    event_id: str | None = None
    cluster: str | None = None
    partition: int | None = None
    offset: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "ok": self.ok, "event_id": self.event_id, "cluster": self.cluster,
            "partition": self.partition, "offset": self.offset,
            "errors": [{"field": f, "reason": r} for f, r in self.errors],
            "warnings": self.warnings, "redacted": self.redacted,
        }
