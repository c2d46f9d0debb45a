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
- ``task.launched`` v1 -> v2, ``task.added`` v1 -> v2: the payload is unchanged; the
  dedupe key carries the framework (a Mesos task id is unique only within its
  framework), so the version moved.
- ``task.status_updated`` v2 -> v3, ``task.kill_requested`` v1 -> v2: the payload gains
  ``framework_id``; older events did not say, so it is ``null`` and the fold finds the
  task by its id among those it knows.
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


def _version_only(to: int) -> Upcaster:
    def step(event: Event) -> Event:
        return {**event, "schema_version": to}

    return step


def _with_framework_unknown(to: int) -> Upcaster:
    def step(event: Event) -> Event:
        return {**event, "schema_version": to, "payload": {**event["payload"], "framework_id": None}}

    return step


#: ``(type, from_version) -> function`` producing ``from_version + 1``.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {
    ("task.status_updated", 1): _status_updated_v1_to_v2,
    ("task.status_updated", 2): _with_framework_unknown(3),
    ("task.launched", 1): _version_only(2),
    ("task.added", 1): _version_only(2),
    ("task.kill_requested", 1): _with_framework_unknown(2),
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
