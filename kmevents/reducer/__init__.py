"""The reducer: one cluster's state as a deterministic fold over its events.

DESIGN.md rule 1: ``state' = apply(state, event)`` is the only way state is
derived, for the processors, replay, audit and time travel alike. No I/O, no
clock, no pydantic: events are the plain dicts of docs/event-catalogue.md
(what ``orjson.loads`` of the stored bytes gives).

API (stable; the processors build on it)::

    from kmevents.reducer import REDUCER_VERSION, ClusterState, apply, fold, Annotation, Retention

    state = ClusterState.empty("c1", retention=Retention())
    anns = apply(state, event_dict, partition=0, offset=17)  # mutates; list of annotation dicts
    state.take_dirty()        # {(kind, id)} changed/created/removed since the last call;
                              #   entity() is None for removed ones -> delete the etcd key
    state.entity(kind, id)    # current value (live dict: encode it, do not mutate it) or None
    state.entities(kind)      # iterable of (id, value); state.kinds lists the kinds
    state.offset, state.position            # last applied offset; (partition, offset)
    state.last_event_times    # {"last_occurred_at", "max_occurred_at"}
    data = state.to_snapshot(chain_hash="..")   # snapshot bytes (JSON lines, packed kinds compressed)
    state = ClusterState.from_snapshot(data)    # loads back exactly
    state.mark_base(offset); state.to_delta(chain_hash="..")  # what changed since (delta.py)
    state, anns = fold(events, state=None, cluster="c1")  # dicts, bytes or (p, o, ev)
    with few_collections(): ...   # the GC setting fold uses; for loops of apply
    condition(state.entity(kind, id))   # "TASK_RUNNING", "Running", "Evicted", "removed" ...

Kinds: cluster, framework, agent, offer, inverse_offer, task, executor, pod,
namespace, node, rc, service, role. Ids: task ``<framework_id>/<task_id>`` (a Mesos task
id is unique only within its framework; ``-/<task_id>`` while the framework is not known,
and ``state.task_ids(task_id)`` finds them by task id); pod/rc/service
``<namespace>/<name>``; executor ``<agent_id>/<executor_id>``; agent, offer,
framework their Mesos ids; node, namespace, role their names; cluster its name.

Every entity has ``since``: the ``occurred_at`` of the event that put it in
its current condition (state, status, phase, readiness).

Annotations (annotations.py) are the second output: duplicates, stale or
impossible transitions, invariant violations, unknown types, malformed
payloads; each with partition, offset, event_id, kind, entity and message.

Windows: the dedupe window and the retention of terminal entities are set by
``Retention`` (retention.py). Applying a prefix of the log twice leaves the
same entity state as applying it once as long as the prefix holds fewer than
``Retention.dedupe_window`` distinct dedupe keys and no entity it touches was
pruned by retention in between; beyond that, per-entity rules still refuse
most repeats (a task remembers its last ``uuids_per_task`` status uuids,
terminal states are final, closed offers stay closed).

Bump ``REDUCER_VERSION`` whenever the same log would fold to other values.
"""

from kmevents.reducer.annotations import Annotation
from kmevents.reducer.apply import HANDLERS, KNOWN_TYPES, apply, few_collections, fold
from kmevents.reducer.conditions import condition
from kmevents.reducer.resources import Malformed
from kmevents.reducer.retention import Retention
from kmevents.reducer.snapshot import SnapshotError
from kmevents.reducer.state import KINDS, REDUCER_VERSION, ClusterState

__all__ = [
    "KINDS",
    "KNOWN_TYPES",
    "REDUCER_VERSION",
    "Annotation",
    "ClusterState",
    "HANDLERS",
    "Malformed",
    "Retention",
    "SnapshotError",
    "apply",
    "condition",
    "few_collections",
    "fold",
]
