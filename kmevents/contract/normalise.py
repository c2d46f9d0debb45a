"""v0 -> v1 spellings, applied at ingest before anything is written or hashed.

Mesos v0 said *slave* where v1 says *agent*. The contract stores only the v1
names:

- enum values: ``SOURCE_SLAVE`` -> ``SOURCE_AGENT``, ``REASON_SLAVE_REMOVED``
  -> ``REASON_AGENT_REMOVED`` (any ``SLAVE`` inside a Mesos enum name);
- field names: ``slave_id`` and ``slaveId`` -> ``agent_id``, in the contract's
  own objects only.

What is **not** touched: Kubernetes annotation and label keys
(``k8s.mesosphere.io/slaveId`` stays exactly as written: it is k8sm's key, and
pods are matched to tasks through it), free-form maps in general, ids and
messages, and ``raw_type`` (the source's own name, kept as the source said it).

These helpers are pure functions; the models call them from their validators,
so normalisation happens exactly where a Mesos name is expected.
"""

from __future__ import annotations

from typing import Any, Final

#: v0 field names and their v1 replacement.
V0_FIELD_NAMES: Final[dict[str, str]] = {"slave_id": "agent_id", "slaveId": "agent_id"}


def agent_spelling(value: Any) -> Any:
    """Return a Mesos enum name with ``SLAVE`` spelt ``AGENT``; other values unchanged.

    >>> agent_spelling("REASON_SLAVE_REMOVED")
    'REASON_AGENT_REMOVED'
    """
    if type(value) is str and "SLAVE" in value:
        return value.replace("SLAVE", "AGENT")
    return value


def agent_field_names(data: Any) -> Any:
    """Rename the v0 keys ``slave_id``/``slaveId`` of one object to ``agent_id``.

    Only the object's own keys are renamed (never nested free-form maps). When
    both spellings are present with different values the input is ambiguous
    and left alone, so validation reports the unexpected field.
    """
    if type(data) is not dict or ("slave_id" not in data and "slaveId" not in data):
        return data
    out = dict(data)
    for old, new in V0_FIELD_NAMES.items():
        if old in out:
            value = out[old]
            if new in out and out[new] != value:
                return data
            del out[old]
            out[new] = value
    return out
