"""The dispatch: ``apply`` one event to a state, ``fold`` many.

One handler per event type, looked up in one dict (client-go's "fixed set of
change types applied by one switch"). ``apply`` is the only entry point that
mutates a ClusterState; it reads no clock and does no I/O.

Order of checks for every event (each failure is annotated, never raised):

1. envelope: ``type``, ``occurred_at`` (str) and ``payload`` (object) present
   -> otherwise ``malformed``;
2. ``type`` known -> otherwise ``unknown_type`` (a newer producer);
3. ``cluster`` equals the state's -> otherwise ``foreign_cluster``;
4. dedupe: the event's ``dedupe_key`` (``event_id`` when it has none) was not
   applied within the window (``Retention.dedupe_window``: the last W to 2W
   distinct keys, held as 64-bit digests, dedupe.py) -> otherwise ``duplicate``;
5. the handler; if it finds the payload malformed it raises before changing
   anything and the event is annotated ``malformed``.

Every event, whatever happens to it, advances the position (``offset``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import orjson

from kmevents.reducer.annotations import (
    DUPLICATE,
    FOREIGN_CLUSTER,
    MALFORMED,
    UNKNOWN_TYPE,
    note,
)
from kmevents.reducer.dedupe import BLAKE2B_8, UNPACK_U64, Digests, Recent
from kmevents.reducer.handlers_k8s import HANDLERS as _K8S
from kmevents.reducer.handlers_mesos import HANDLERS as _MESOS
from kmevents.reducer.packed import pack_tables
from kmevents.reducer.resources import Malformed
from kmevents.reducer.retention import AGE_CHECK_EVERY, RECENT, Retention, prune_by_age
from kmevents.reducer.state import ClusterState

HANDLERS: dict[str, Any] = {**_MESOS, **_K8S}
#: Event types this reducer folds (anything else is annotated ``unknown_type``).
KNOWN_TYPES = frozenset(HANDLERS)

AGE_MASK = AGE_CHECK_EVERY - 1
RECENT_MASK = RECENT - 1
_BAD_PAYLOAD = (KeyError, TypeError, ValueError, AttributeError, IndexError, Malformed)


def apply(state: ClusterState, event: Any, *, partition: int | None = None,
          offset: int | None = None) -> list[dict[str, Any]]:
    """Fold one event (a catalogue-shaped dict) into ``state``, in place.

    ``partition``/``offset`` are the event's log position (offset None: the
    previous offset + 1). Returns the annotations this event produced (a new
    list, usually empty). The state may keep references to parts of
    ``event`` (a status, a label map): do not mutate an event after applying it.
    """
    st = state
    st.offset = offset = st.offset + 1 if offset is None else offset
    if partition is not None:
        st.partition = partition
    st._ev = event
    try:
        typ = event["type"]
        t = event["occurred_at"]
        pl = event["payload"]
        # The comparison also checks the type: anything but a str raises TypeError.
        if t > st.max_occurred_at:
            st.max_occurred_at = t
        elif type(t) is not str:
            raise TypeError
        h = HANDLERS.get(typ)
    except (KeyError, TypeError, IndexError):
        note(st, MALFORMED, None, None,
             "envelope lacks type/occurred_at/payload or has them with wrong types")
        return _take(st)
    st.last_occurred_at = t
    seq = st._seq
    st._seq = seq + 1
    st._recent[seq & RECENT_MASK] = t
    if h is None:
        note(st, UNKNOWN_TYPE, None, None, f"event type {typ!r} is unknown to this reducer; skipped")
    elif event.get("cluster") != st.cluster:
        note(st, FOREIGN_CLUSTER, None, None,
             f"event of cluster {event.get('cluster')!r} in the fold of {st.cluster!r}; skipped")
    else:
        key = event.get("dedupe_key") or event.get("event_id")
        d = None
        if type(key) is str:
            hb = BLAKE2B_8.copy()  # dedupe.digest(key), inlined (every event)
            hb.update(key.encode())
            d = UNPACK_U64(hb.digest())[0]
            # The halves' bitmaps answer "not in it" for most digests; `in` runs only when a bit
            # is set (dedupe.py: a method call per event cost the fold 2-8 %).
            new, old = st._seen_new, st._seen_old
            if type(new) is Recent:
                i = d & new.mask
                dup = new.bits[i >> 3] >> (i & 7) & 1 and d in new  # (0 or 1 while the bit says no)
            else:
                dup = d in new
            if not dup:
                if type(old) is Digests:
                    i = d & old.mask
                    dup = old.bits[i >> 3] >> (i & 7) & 1 and d in old
                else:
                    dup = d in old
            if dup:
                note(st, DUPLICATE, None, None, f"dedupe key {key!r} already applied; skipped")
                return _take(st)
        try:
            h(st, event, pl, t)
        except _BAD_PAYLOAD as e:
            note(st, MALFORMED, None, None,
                 f"payload of {typ}: {type(e).__name__}: {e}; nothing changed")
        else:
            if d is not None:
                seen = st._seen_new
                if type(seen) is Recent:
                    n = seen.add_new(d)  # (not in the window: checked above)
                else:
                    seen.add(d)
                    n = len(seen)
                    if n >= Recent.SPILL and n < st._dedupe_window:
                        st._seen_new = seen = Recent(seen, st._dedupe_window)  # compact as it grows (dedupe.py)
                if n >= st._dedupe_window:
                    # read only from here on: compact (dedupe.py)
                    st._seen_old = seen.frozen() if type(seen) is Recent else Digests(seen)
                    st._seen_new = set()
                    st._rotations += 1
    if not seq & AGE_MASK:
        prune_by_age(st)
        # between events: no handler holds an entity dict now (packed.py)
        if st.packs:
            pack_tables(st._tables)
    pend = st._pending
    if pend:
        st._pending = []
        return pend
    return []


def _take(st: ClusterState) -> list[dict[str, Any]]:
    pend = st._pending
    st._pending = []
    return pend


#: The cyclic GC's thresholds for folding: a folded state is many small dicts
#: that live long and hold no reference cycles; with Python's default
#: young-generation threshold (700 allocations) the GC keeps rescanning them
#: (~5-15 % of fold time, measured). A process that folds for its whole life (the
#: worker, the CLI commands that read logs, verify's split children) sets them with
#: :func:`collect_rarely`; :func:`few_collections` inside a block.
FOLD_GC_THRESHOLDS: Final = (50_000, 50, 100)


def collect_rarely() -> None:
    """:data:`FOLD_GC_THRESHOLDS` for the rest of the process (one whose work is folding: at the
    large profile a fold with a snapshot check every 20k events took 15-20 % more CPU with
    Python's defaults, its young objects rescanned and its state walked by full passes;
    BENCHMARKS.md, verify --full at 1.5M)."""
    gc.set_threshold(*FOLD_GC_THRESHOLDS)


@contextmanager
def few_collections() -> Iterator[None]:
    """Run the cyclic GC rarely inside the block (for a fold of many events), with
    :data:`FOLD_GC_THRESHOLDS` (never lower than the current ones); the previous
    thresholds are restored on exit."""
    saved = gc.get_threshold()
    gc.set_threshold(*(max(now, fold) for now, fold in zip(saved, FOLD_GC_THRESHOLDS, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def fold(events: Iterable[Any], state: ClusterState | None = None, cluster: str | None = None,
         *, partition: int | None = None, retention: Retention | None = None,
         ) -> tuple[ClusterState, list[dict[str, Any]]]:
    """Apply ``events`` in order; return the state and every annotation.

    Items may be event dicts (offsets continue from ``state.offset``), raw
    record bytes (decoded with orjson; undecodable ones are annotated
    ``malformed``), or ``(partition, offset, event)`` tuples. Without
    ``state`` a new one is made for ``cluster`` (default: the first event's).
    """
    anns: list[dict[str, Any]] = []
    st = state
    with few_collections():
        for item in events:
            p, o, ev = partition, None, item
            if type(item) is tuple:
                p, o, ev = item
            if isinstance(ev, (bytes, bytearray, memoryview)):
                try:
                    ev = orjson.loads(ev)
                except orjson.JSONDecodeError:
                    ev = None
            if st is None:
                c = cluster
                if c is None and type(ev) is dict:
                    c = ev.get("cluster")
                st = ClusterState.empty(c if type(c) is str else "", retention)
            a = apply(st, ev, partition=p, offset=o)
            if a:
                anns.extend(a)
    if st is None:
        st = ClusterState.empty(cluster or "", retention)
    return st, anns
