"""Errors and warnings of the contract.

    kmevents.errors.ContractError
    ├── ContractViolation     strict validation refused an event: ``.errors`` lists
    │                         every (field_path, reason), ``.event_id`` names it
    │   └── UnknownEventType  the ``type`` is not in the contract (strict ingest only)
    └── DecodeError           stored bytes are not a JSON object, or an older-version
                              event that cannot be upcast (fast path): route the
                              record to the dead-letter topic with ``.reason``

``ContractWarning`` is not an exception: it is returned beside a valid event
(an unknown future enum value, kept as written).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmevents.errors import ContractError

#: Placeholder for "no field" / "no event id" in paths and reports.
NO_FIELD = "-"


class ContractViolation(ContractError):
    """An event breaks the contract; ``errors`` holds every ``(field_path, reason)``."""

    def __init__(self, errors: list[tuple[str, str]], *, event_id: str | None = None) -> None:
        self.errors = errors
        self.event_id = event_id
        first = "; ".join(f"{path}: {reason}" for path, reason in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(
            f"event {event_id or NO_FIELD} breaks the contract: {first}{more}",
            hint="see schemas/README.md for the envelope and each type's payload; "
            "`kmevents validate FILE` lists every error",
        )


class UnknownEventType(ContractViolation):
    """The event's ``type`` is not one the contract knows."""


class DecodeError(ContractError):
    """Stored bytes could not be decoded into an event object."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"cannot decode event: {reason}",
            hint="the record goes to the dead-letter topic with this reason and its position",
        )


@dataclass(frozen=True)
class ContractWarning:
    """Something kept but worth flagging, e.g. an enum value newer than this contract."""

    path: str
    """Field path (``payload.status.reason``)."""
    message: str
    """What is unusual."""
    value: str
    """The value as kept."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
