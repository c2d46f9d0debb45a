"""Cumulative deltas: a state as what changed since a base snapshot, and back (issue 17).

A full snapshot of a large cluster is tens to hundreds of MB; one every few
thousand events would multiply the snapshot store. A delta holds only what changed
since the base (the last full snapshot), so a point-in-time read loads the base,
applies ONE delta (deltas are cumulative, never chained) and folds at most the
records after the delta.

The bytes are ``orjson.dumps(doc, OPT_SORT_KEYS)`` of::

    {"format": "kmevents.reducer.delta/1",
     "base_offset": B,                     # the base snapshot's offset (its index entry's)
     "base_state_offset": b,               # the base state's own offset (its last event's)
     "cluster", "partition", "offset", "chain_hash", "reducer_version",
     "last_occurred_at", "max_occurred_at", "watermark", "recent", "seq", "retention",
     "upserts": {kind: {id: value}},       # entities created or changed since B (current values)
     "removed": {kind: [ids]},             # entities gone since B
     "terminal": ..., "allocation": ..., "contributions": ...,   # whole, as in a snapshot
     "dedupe": {"added": digests}                         # no rotation since B: new = base new + added
            or {"rotated_once": true, "old_added": digests, "new": digests}
                                             # one rotation: old = base new + old_added
            or {"old": digests, "new": digests}   # more: both whole
                                             # digests: a set's base64 text (dedupe.py); reducer
                                             # version 4 wrote lists of keys, hashed on load

Worked example (window 3): at the base new = {a, b}; then c arrives and the window
rotates (old = {a, b, c}, new = {}), then d: the delta holds ``rotated_once``,
``old_added`` [c], ``new`` [d]; applied to the base it gives old {a, b, c}, new {d}.

Everything else the fold reads is in it, so ``apply_delta(load(base), delta)``
equals ``load(full snapshot at the delta's offset)`` byte for byte (a property test
holds it). The pod membership indexes are taken whole from the delta; the selector and
task-id indexes are brought up to date for what the delta changes (not rebuilt from all
the RCs, services and tasks: 0.1 s of each delta at the large profile); the rest are
rebuilt as on a snapshot load.
"""

from __future__ import annotations

from typing import Any

import orjson

from kmevents.reducer.aggregates import materialize
from kmevents.reducer.dedupe import encode as encode_window
from kmevents.reducer.packed import packed_bytes, value_of
from kmevents.reducer.snapshot import (
    LOADABLE_VERSIONS,
    SnapshotError,
    dedupe_window,
    indexes,
    set_aggregates,
    set_position,
)
from kmevents.reducer.state import REDUCER_VERSION, ClusterState

FORMAT = "kmevents.reducer.delta/1"


def delta_document(st: ClusterState, chain_hash: str | None = None) -> dict[str, Any]:
    base = st._base
    if base is None:
        raise ValueError("no base: call mark_base() when the base snapshot is written or loaded")
    st.take_dirty()  # every change so far is in base.changed
    materialize(st)
    upserts: dict[str, dict[str, Any]] = {}
    removed: dict[str, list[str]] = {}
    for kind, id in base.changed:
        value = packed_bytes(st._tables[kind], id)  # a packed entity's are not decoded (packed.py)
        if value is None:
            removed.setdefault(kind, []).append(id)
        else:
            upserts.setdefault(kind, {})[id] = orjson.Fragment(value)
    rotations = st._rotations - base.rotations
    if rotations == 0:
        dedupe: dict[str, Any] = {"added": encode_window(st._seen_new - base.new)}
    elif rotations == 1:
        dedupe = {"rotated_once": True, "old_added": encode_window(st._seen_old - base.new),
                  "new": encode_window(st._seen_new)}
    else:
        dedupe = {"old": encode_window(st._seen_old), "new": encode_window(st._seen_new)}
    return {
        "format": FORMAT, "base_offset": base.offset, "base_state_offset": base.state_offset,
        "cluster": st.cluster, "partition": st.partition, "offset": st.offset, "chain_hash": chain_hash,
        "reducer_version": REDUCER_VERSION, "last_occurred_at": st.last_occurred_at,
        "max_occurred_at": st.max_occurred_at or None, "watermark": st.watermark or None,
        "recent": st._recent, "seq": st._seq, "retention": st.retention.to_dict(),
        "upserts": upserts, "removed": {k: sorted(v) for k, v in removed.items()},
        "terminal": {k: [[i, t] for i, t in idx.items()] for k, idx in st._terminal.items()},
        "dedupe": dedupe,
        "allocation": st._alloc,
        "contributions": {aid: list(c) for aid, c in st._contrib.items()},
        "indexes": indexes(st),
    }


def dump_delta(st: ClusterState, chain_hash: str | None = None) -> bytes:
    return orjson.dumps(delta_document(st, chain_hash), option=orjson.OPT_SORT_KEYS)


def apply_delta(base: ClusterState, data: bytes) -> ClusterState:
    """The state at the delta's offset, made from ``base`` (the base snapshot's state, loaded or
    forked: it is changed in place and returned)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"delta is not JSON: {e}", hint="replay from the log (--no-snapshots)") from e
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise SnapshotError(f"not a reducer delta (format {doc.get('format') if type(doc) is dict else None!r})",
                            hint=f"expected format {FORMAT}")
    if doc["reducer_version"] not in LOADABLE_VERSIONS:
        raise SnapshotError(f"delta derived by reducer version {doc['reducer_version']}, this is {REDUCER_VERSION}",
                            hint="replay from the log (or an older snapshot) to rebuild with this reducer")
    if base.offset != doc["base_state_offset"] or base.cluster != doc["cluster"]:
        raise SnapshotError(f"delta of {doc['cluster']!r} against the snapshot at offset {doc['base_offset']} "
                            f"(state at {doc['base_state_offset']}), applied to the state of {base.cluster!r} "
                            f"at {base.offset}", hint="load the delta's own base snapshot")
    # the dedupe window first: a damaged one raises before the base is changed
    if "added" in doc["dedupe"]:
        new, old = base._seen_new | dedupe_window(doc, "added")[0], base._seen_old
    elif doc["dedupe"].get("rotated_once"):
        old_added, new = dedupe_window(doc, "old_added", "new")
        old = base._seen_new | old_added
    else:
        old, new = dedupe_window(doc, "old", "new")
    st = base
    set_position(st, doc)
    filed = "indexes" in doc  # (an old delta without them: every index rebuilt, as then)
    tasks_gone = _unfile(st, doc) if filed else []
    tasks = st.tasks
    tasks_new = [k for k in doc["upserts"].get("task", ()) if filed and not dict.__contains__(tasks, k)]
    for kind, values in doc["upserts"].items():
        table = st._tables[kind]
        for id, v in values.items():
            table[id] = v
    for kind, ids in doc["removed"].items():
        table = st._tables[kind]
        for id in ids:
            table.pop(id, None)
    if filed:
        _file(st, doc, tasks_gone, tasks_new)
    st._seen_new, st._seen_old = new, old
    st._dirty = set()
    set_aggregates(st, doc, filed=filed)
    return st


def _unfile(st: ClusterState, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Before a delta's values replace the base's: the RCs and services it changes taken out
    of the selector indexes (their base values' selectors), and the ``(task id, key)`` of
    the base's tasks it removes (decoded: a few thousand, not the 160k a rebuild reads)."""
    from kmevents.reducer.membership import sel_remove

    ups, gone = doc["upserts"], doc["removed"]
    for kind, index in (("rc", st._rc_sel), ("service", st._svc_sel)):
        table = st._tables[kind]
        for id in (*ups.get(kind, ()), *gone.get(kind, ())):
            old = value_of(table, id)
            if old is not None:
                sel_remove(index, old["namespace"], id, old["selector"])
    out = []
    for key in gone.get("task", ()):
        task = value_of(st.tasks, key)
        if task is not None:
            out.append((task["task_id"], key))
    return out


def _file(st: ClusterState, doc: dict[str, Any], tasks_gone: list[tuple[str, str]], tasks_new: list[str]) -> None:
    """After a delta's values are in: its RCs and services filed under their selectors, and
    its tasks new to the base (``tasks_new``) and those gone (``tasks_gone``, from
    :func:`_unfile`) in and out of the task-id index (what ``rebuild_task_index`` gives
    from all the tasks, the index's lists perhaps in another order)."""
    from kmevents.reducer.membership import sel_add
    from kmevents.reducer.taskids import forget_task, index_task

    for kind, index in (("rc", st._rc_sel), ("service", st._svc_sel)):
        for id, v in doc["upserts"].get(kind, {}).items():
            sel_add(index, v["namespace"], id, v["selector"])
    for tid, key in tasks_gone:
        forget_task(st, tid, key)
    exceptions = doc["indexes"]["task_id_exceptions"]
    for key in tasks_new:
        tid = exceptions.get(key)
        index_task(st, key.partition("/")[2] if tid is None else tid, key)


def base_offset_of(data: bytes) -> int:
    """The base snapshot's offset a delta was taken against (without applying it)."""
    return int(orjson.loads(data)["base_offset"])
