"""Snapshots: a ClusterState as canonical bytes, and back.

The bytes are ``orjson.dumps(doc, OPT_SORT_KEYS)`` of::

    {"format": "kmevents.reducer.snapshot/1",
     "cluster": "c1", "partition": 0, "offset": 41,
     "chain_hash": "..." | null, "reducer_version": 1,
     "last_occurred_at": "...", "max_occurred_at": "...",
     "watermark": "...", "recent": [occurred_at of the last events, by seq % RECENT], "seq": N,
     "retention": {...Retention fields...},
     "entities": {kind: {id: value}},
     "terminal": {kind: [[id, occurred_at], ...]},   # retention order, oldest first
     "dedupe": {"new": "base64", "old": "base64"},   # the window's digests (dedupe.py)
     "allocation": {agent_id: {role: {name: amount}}},     # aggregates.py
     "contributions": {agent_id: [allocated_by_role, offered_by_role]}}

Everything the fold reads later is in it (dedupe window, retention order), so
``fold(suffix, state=load(dump(fold(prefix))))`` equals ``fold(prefix+suffix)``.
Derived indexes are not stored; they are recomputed from the entities. The
same state always gives the same bytes (keys sorted, sets sorted), so equal
bytes mean equal states.

Versions: ``load`` takes the snapshots of :data:`LOADABLE_VERSIONS`. Version 4
differs from 5 only in its dedupe window, sorted lists of the keys themselves:
they are hashed on load, and the state folds on as a version-5 fold of the same
log would.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from kmevents.errors import CheckFailed
from kmevents.reducer.aggregates import materialize
from kmevents.reducer.aggregates import rebuild as rebuild_offer_index
from kmevents.reducer.dedupe import decode as decode_window
from kmevents.reducer.dedupe import encode as encode_window
from kmevents.reducer.retention import RETAINED_KINDS, Retention
from kmevents.reducer.state import KINDS, REDUCER_VERSION, ClusterState

FORMAT = "kmevents.reducer.snapshot/1"
#: Reducer versions whose snapshots and deltas this one loads (see the module docstring).
#: When REDUCER_VERSION moves, say here which older versions still fold on alike.
LOADABLE_VERSIONS: Final = frozenset({4, 5})


class SnapshotError(CheckFailed):
    """Bytes that are not a reducer snapshot this version can load."""


def document(st: ClusterState, chain_hash: str | None = None) -> dict[str, Any]:
    """The snapshot as a dict (shares the live entity dicts: serialise it at once)."""
    materialize(st)
    return {
        "format": FORMAT,
        "cluster": st.cluster,
        "partition": st.partition,
        "offset": st.offset,
        "chain_hash": chain_hash,
        "reducer_version": REDUCER_VERSION,
        "last_occurred_at": st.last_occurred_at,
        "max_occurred_at": st.max_occurred_at or None,
        "watermark": st.watermark or None,
        "recent": st._recent,
        "seq": st._seq,
        "retention": st.retention.to_dict(),
        "entities": {k: t for k, t in st._tables.items()},
        "terminal": {k: [[i, t] for i, t in idx.items()] for k, idx in st._terminal.items()},
        "dedupe": {"new": encode_window(st._seen_new), "old": encode_window(st._seen_old)},
        "allocation": st._alloc,
        "contributions": {aid: list(c) for aid, c in st._contrib.items()},
    }


def dump(st: ClusterState, chain_hash: str | None = None) -> bytes:
    return orjson.dumps(document(st, chain_hash), option=orjson.OPT_SORT_KEYS)


def load(data: bytes) -> ClusterState:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"snapshot is not JSON: {e}",
                            hint="check that the bytes come from ClusterState.to_snapshot") from e
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise SnapshotError(f"not a reducer snapshot (format {doc.get('format') if type(doc) is dict else None!r})",
                            hint=f"expected format {FORMAT}")
    if doc["reducer_version"] not in LOADABLE_VERSIONS:
        raise SnapshotError(
            f"snapshot derived by reducer version {doc['reducer_version']}, this is {REDUCER_VERSION}",
            hint="replay from the log (or an older snapshot) to rebuild with this reducer")
    st = ClusterState(doc["cluster"], Retention.from_dict(doc["retention"]))
    set_position(st, doc)
    for kind in KINDS:
        st._tables[kind].update(doc["entities"].get(kind, {}))
    st._seen_new, st._seen_old = dedupe_window(doc, "new", "old")
    set_aggregates(st, doc)
    return st


def set_position(st: ClusterState, doc: dict[str, Any]) -> None:
    """The scalars of a snapshot or delta document: position, times, recent ids, sequence."""
    st.partition = doc["partition"]
    st.offset = doc["offset"]
    st.last_occurred_at = doc["last_occurred_at"]
    st.max_occurred_at = doc["max_occurred_at"] or ""
    st.watermark = doc["watermark"] or ""
    st._recent = list(doc["recent"])
    st._seq = doc["seq"]


def dedupe_window(doc: dict[str, Any], *names: str) -> list[set[int]]:
    """The digest sets ``names`` of a snapshot's or delta's ``"dedupe"`` (a version-4 one's
    keys hashed, dedupe.py). Raises SnapshotError when one is damaged."""
    d, version = doc["dedupe"], doc["reducer_version"]
    try:
        return [decode_window(d[n], version) for n in names]
    except ValueError as e:
        raise SnapshotError(f"damaged dedupe window: {e}", hint="replay from the log (--no-snapshots)") from None


def set_aggregates(st: ClusterState, doc: dict[str, Any]) -> None:
    """What a snapshot or delta document holds whole (terminal indexes, allocation), then the
    derived indexes rebuilt from the entities."""
    from kmevents.reducer.membership import rebuild_indexes  # they import the state module's users
    from kmevents.reducer.taskids import rebuild_task_index

    for kind in RETAINED_KINDS:
        st._terminal[kind] = OrderedDict((i, t) for i, t in doc["terminal"].get(kind, []))
    st._alloc = doc["allocation"]
    st._contrib = {aid: (c[0], c[1]) for aid, c in doc["contributions"].items()}
    st._stale = set()
    rebuild_offer_index(st)
    rebuild_indexes(st)
    rebuild_task_index(st)


def chain_hash_of(data: bytes) -> str | None:
    """The chain hash recorded in snapshot bytes (without loading the state)."""
    doc = orjson.loads(data)
    return doc.get("chain_hash") if type(doc) is dict else None
