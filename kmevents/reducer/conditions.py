"""One word for where an entity stands, read off its folded value.

Every reader that groups or filters entities by condition uses it: the API's
``?state=`` filter, the monitor's rules, reports, the state summary, histories.
"""

from __future__ import annotations

from typing import Any


def condition(value: dict[str, Any] | None) -> str:
    """A task's state, a pod's phase, an agent's status ... (``removed`` for None).

    A deleted or evicted pod says so (``Deleted``, ``Evicted``): its last phase
    (often ``Running``) is what the kubelet reported before, not where it stands.
    """
    if value is None:
        return "removed"
    if value.get("deleted") is not None:
        return "Deleted"
    if value.get("evicted") is not None:
        return "Evicted"
    for f in ("state", "phase", "status"):
        v = value.get(f)
        if isinstance(v, str):
            return v
    if "ready" in value:
        return "Ready" if value["ready"] else "NotReady"
    return "present"
