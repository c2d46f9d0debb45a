"""Checks a record must pass before its parser sees it, where a parser would read it wrongly
rather than fail (pure).

:func:`leading_master_state`: a ``/master/state`` document is diffed against the one
before, so a document that is not a leading master's state would read as "every agent,
framework and task removed". Such documents are real: an error answer served with a
JSON body, the state of a master that was not leading (masters that serve their own
state instead of redirecting: empty lists, ``leader`` naming another ``pid``), or of a
master that knows no leader (no ``leader``). The poller and ``kmevents import
mesos-state`` put every poll or dump through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """Why a record is not given to its parser: ``quarantine`` (it is not what it should be)
    or skipped (it is, but must not be read)."""

    quarantine: bool
    reason: str


def leading_master_state(doc: Any) -> Verdict | None:
    """None when ``doc`` is a leading master's ``/master/state`` (or ``/state.json``) to be read."""
    if not isinstance(doc, dict):
        return Verdict(True, f"not a Mesos master state: a JSON {type(doc).__name__}")
    if not isinstance(doc.get("frameworks"), list) or not isinstance(doc.get("slaves"), list):
        return Verdict(True, "not a Mesos master state (no 'frameworks' and 'slaves' lists: an agent's /state, "
                             "an error answer, or another document)")
    leader, pid = doc.get("leader"), doc.get("pid")
    if leader is None and "leader_info" not in doc:
        return Verdict(False, "state of a master that knew no leader")
    if isinstance(leader, str) and isinstance(pid, str) and leader != pid:
        return Verdict(False, "state of a master that was not leading")
    return None
