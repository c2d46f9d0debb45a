"""Upcasters: bring an event decoded from an older schema version up to the current one.

They work on the decoded ``dict``, never on stored bytes, so the hash chain
(which hashes the bytes as stored) is untouched by a schema change. An
upcaster returns a new dict and never mutates its input.

History of changes:

- ``task.status_updated`` v1 -> v2: ``payload.status`` gains ``check_status``
  (Mesos ``TaskStatus.check_status``, a ``CheckStatusInfo``: check type plus
  command exit code / HTTP status code / TCP result). v1 events had no check
  results, so the upcaster sets it to ``null``: "no check result known", which
  is what a v1 event meant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from kmevents.contract.registry import SCHEMA_VERSIONS

Event = dict[str, Any]
Upcaster = Callable[[Event], Event]


def _status_updated_v1_to_v2(event: Event) -> Event:
    payload = event["payload"]
    status = payload["status"]
    return {
        **event,
        "schema_version": 2,
        "payload": {**payload, "status": {**status, "check_status": None}},
    }


#: ``(type, from_version) -> function`` producing ``from_version + 1``.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {
    ("task.status_updated", 1): _status_updated_v1_to_v2,
}


def upcast(event: Event) -> Event:
    """Return ``event`` at its type's current schema version.

    Unknown types and versions newer than this code are returned unchanged
    (the fast path keeps them; strict validation reports them).
    """
    type_ = event.get("type")
    current = SCHEMA_VERSIONS.get(type_) if type(type_) is str else None
    version = event.get("schema_version")
    if current is None or type(version) is not int:
        return event
    while version < current:
        step = UPCASTERS.get((type_, version))  # type: ignore[arg-type]
        if step is None:
            return event
        event = step(event)
        version += 1
    return event
