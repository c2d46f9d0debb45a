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


#: The current schema version of every type that moved past version 1, read off the
#: upcasters (a version bump always comes with its upcaster), so replay can decode
#: without building the models; tests/unit/contract/test_upcast.py holds it equal
#: to the registry's ``SCHEMA_VERSIONS``.
MOVED_VERSIONS: Final[dict[str, int]] = {}
for _type, _from in UPCASTERS:
    MOVED_VERSIONS[_type] = max(MOVED_VERSIONS.get(_type, 1), _from + 1)


def upcast(event: Event) -> Event:
    """Return ``event`` at its type's current schema version.

    Unknown types and versions newer than this code are returned unchanged
    (the fast path keeps them; strict validation reports them).
    """
    type_ = event.get("type")
    current = MOVED_VERSIONS.get(type_) if type(type_) is str else None
    version = event.get("schema_version")
    if current is None or type(version) is not int:  # at version 1, unknown, or no version
        return event
    while version < current:
        step = UPCASTERS.get((type_, version))  # type: ignore[arg-type]
        if step is None:
            return event
        event = step(event)
        version += 1
    return event
