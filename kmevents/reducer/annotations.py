"""Annotations: the fold's second output.

An annotation records something the reducer noticed but did not (or could
not) turn into entity state: a duplicate it skipped, a transition it refused,
an invariant that does not hold, an event type it does not know. Annotations
are never part of the entity state (DESIGN.md rule 4) and are never dropped:
``apply`` returns every one it makes, in the order it made them.

Each annotation is a plain dict (cheap to build, ready for orjson)::

    {"partition": 0, "offset": 17,              # the event's log position
     "event_id": "e-17", "event_type": "task.status_updated",
     "kind": "duplicate",                       # one of KINDS below
     "entity": {"kind": "task", "id": "t1"},    # or None
     "message": "status uuid u1 already applied to task t1"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from kmevents.reducer.state import ClusterState

#: The event (or the status uuid it carries) was applied before; nothing changed.
DUPLICATE = "duplicate"
#: Older than what the entity already shows (e.g. RUNNING after KILLING); ignored.
STALE = "stale"
#: A transition the source semantics forbid (a terminal task going RUNNING); ignored.
IMPOSSIBLE = "impossible"
#: State after the event breaks an invariant (allocated over total, task running
#: on a removed agent, offer accepted after rescind, endpoints differ). The event
#: was applied; the annotation says what does not add up.
INVARIANT = "invariant"
#: The event names an entity the state does not hold (never seen, or pruned by retention).
UNKNOWN_ENTITY = "unknown_entity"
#: A value outside the enums this reducer knows (a future TASK_* state); kept as given.
UNKNOWN_VALUE = "unknown_value"
#: The event type is newer than this reducer; skipped.
UNKNOWN_TYPE = "unknown_type"
#: The envelope or payload lacks a field or has a wrong type; nothing changed.
MALFORMED = "malformed"
#: The event belongs to another cluster than the state; skipped.
FOREIGN_CLUSTER = "foreign_cluster"
#: An adapter reported a gap or clock skew in a source stream (``source.*`` events).
SOURCE_PROBLEM = "source_problem"
#: The event names an entity by a part of its identity that fits several (a task id that
#: several frameworks use, without the framework); nothing changed.
AMBIGUOUS = "ambiguous_entity"

KINDS = (DUPLICATE, STALE, IMPOSSIBLE, INVARIANT, UNKNOWN_ENTITY, UNKNOWN_VALUE,
         UNKNOWN_TYPE, MALFORMED, FOREIGN_CLUSTER, SOURCE_PROBLEM, AMBIGUOUS)


class AnnotationEntity(TypedDict):
    kind: str
    id: str


class Annotation(TypedDict):
    """The shape of one annotation dict (see the module docstring)."""

    partition: int | None
    offset: int
    event_id: str | None
    event_type: str | None
    kind: str
    entity: AnnotationEntity | None
    message: str


def note(st: ClusterState, kind: str, ekind: str | None, eid: Any, message: str) -> None:
    """Record an annotation about the event being applied to ``st``."""
    ev = st._ev
    if type(ev) is dict:
        event_id = ev.get("event_id")
        event_type = ev.get("type")
        if type(event_id) is not str:
            event_id = None
        if type(event_type) is not str:
            event_type = None
    else:
        event_id = event_type = None
    st._pending.append({
        "partition": st.partition,
        "offset": st.offset,
        "event_id": event_id,
        "event_type": event_type,
        "kind": kind,
        "entity": {"kind": ekind, "id": eid} if ekind is not None else None,
        "message": message,
    })
