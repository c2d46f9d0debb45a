"""Cumulative deltas: a state as what changed since a base snapshot, and back (issue 17).

A full snapshot of a large cluster is tens to hundreds of MB; one every few
thousand events would multiply the snapshot store. A delta holds only what changed
since the base (the last full snapshot), so a point-in-time read loads the base,
applies ONE delta (deltas are cumulative, never chained) and folds at most the
records after the delta.

Format 5 (written since 2026-12-06) is format 4 with the offers in a section too, as every
other kind: a format-5 or -6 snapshot's load keeps offers as their bytes (a lazy table, snapshot.py),
and a delta's go into that table as they are, where format 4's were decoded with its header
(4-20 ms of a delta's parse at the simulator's scale) and encoded again when the state froze.

Format 4 (written from 2026-12-05 until format 5; still loaded, and by ``dump_delta(...,
format=FORMAT_4)``) is format 3 with the agents' totals as their changes since
the base: ``allocation_changes`` and ``contributions_changes``, ``{agent id: its totals now, or
null}`` for each agent brought up to date since the base (``Base.aggs``: every agent
``aggregates.materialize`` rewrote, which is every agent whose totals can have changed), in place
of formats 1-3's ``allocation`` and ``contributions`` whole. At the large profile those were
~2 MB of every delta's 2.5-4 MB header (12,500 agents), while 450-1,450 agents had changed
since the base; ``verify`` encoded and compared them at each of 296 deltas, and each read
parsed them. Applied, they are put over the base's (a fork's copy-on-write tables keep the
held base's).

Format 3 (written until format 4; still loaded, and by ``dump_delta(..., format=FORMAT_3)``)
is format 2's document as a header line,
its ``upserts`` holding only the offers, then a section for each other kind it upserts, in
kind order, as a format-5 snapshot's section (snapshot.py) without a dictionary::

    {"format": "kmevents.reducer.delta/3", ..., "sections": ["pod", "task"], "upserts": {"offer": {...}}}
    {"conds": [0, 0, 1, ...], "crc": N, "ids": [...], "kind": "pod", "names": ["Running", ...],
     "sizes": [...]}
    <the values' canonical bytes, concatenated: sum(sizes) bytes>

``ids`` sorted, ``conds`` each value's condition as its place in ``names``, ``crc`` the
CRC-32 of the values. A reader parses neither the values nor packs them again: they go
into their tables as the bytes a packed (or lazy) table rests (compressed in one call
where the table has a dictionary, as a pack would), with their conditions, as
:func:`compact_upserts` gives a format-2 delta's (at the quick large
profile the parse of a delta's pods and tasks and their packing at the freeze after it
were ~25 % of a warm read that loads one: BENCHMARKS.md). Offers stay in the header (until
format 5): their table was decoded then (the outstanding-offer index was rebuilt from it).

Format 2 (still loaded, and written by ``dump_delta(..., format=FORMAT_2)``) is
``orjson.dumps(doc, OPT_SORT_KEYS)`` of::

    {"format": "kmevents.reducer.delta/2",
     "base_offset": B,                     # the base snapshot's offset (its index entry's)
     "base_state_offset": b,               # the base state's own offset (its last event's)
     "cluster", "partition", "offset", "chain_hash", "reducer_version",
     "last_occurred_at", "max_occurred_at", "watermark", "recent", "seq", "retention",
     "upserts": {kind: {id: value}},       # entities created or changed since B (current values)
     "removed": {kind: [ids]},             # entities gone since B
     "allocation": ..., "contributions": ...,   # whole, as in a snapshot
     "index_changes": {                    # the pod membership indexes' changes since B
         "pods_by_ns": {ns: [[added ids], [removed ids]] | null},     # null: the key is gone
         "svc_members": {service: [[added], [removed]] | null},
         "rc_members": {rc: [[[added], [removed]], [[added], [removed]]] | null}},  # running, other
     "indexes": {"task_id_exceptions": {...}},   # whole, as in a snapshot
     "terminal_changes": {kind: {"drop": [ids], "tail": [[id, t], ...]}   # retention order: B's
                                                 # without "drop", then "tail" appended
                               | {"whole": [[id, t], ...]}},          # any other change of order
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
holds it). The selector and task-id indexes are brought up to date for what the delta
changes (not rebuilt from all the RCs, services and tasks: 0.1 s of each delta at the large
profile); the rest are rebuilt as on a snapshot load.

A reader of one point (``Snapshots.one_point``, the ``state`` command) decodes the delta
before its base and compacts it (:func:`compact_upserts`): the upserted values as the
canonical bytes a packed table rests them as, with their conditions, and the agents'
totals as JSON, so its decoded form is never beside the loaded base (issue 17: the cold
read's peak at the large profile, BENCHMARKS.md).

Format 1 (issue 17's first deltas, still loaded) held the membership indexes and the
retention order whole, as a snapshot does: at the large profile's 164k pods that was 15 of
a delta's 23 MB (10.5 MB of indexes, 4.3 MB of retention order) against 6 MB of changed
entities, written every 4,000 events, sorted and encoded each time, and compared whole by
``verify``. Format 2 holds their changes since the base, sorted, so a delta's size follows
what changed; and so does the time to find them: the fold notes what each index key and
retention entry was at the base as it first changes it (tracking.py), where they were compared
whole with copies taken at ``mark_base`` (~55 ms a delta and ~50 ms a base at full size).
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import orjson

from kmevents.checksum import crc32
from kmevents.reducer.aggregates import materialize
from kmevents.reducer.aggregates import rebuild as rebuild_offer_index
from kmevents.reducer.dedupe import Recent, added_since
from kmevents.reducer.dedupe import encode as encode_window
from kmevents.reducer.packed import (
    PackedTable,
    bytes_and_condition,
    packed_bytes,
    rest_value,
    value_of,
)
from kmevents.reducer.retention import RETAINED_KINDS, new_index
from kmevents.reducer.snapshot import (
    LOADABLE_VERSIONS,
    SnapshotError,
    _read_values,
    added_digests,
    condition_codes,
    dedupe_window,
    indexes,
    named_conditions,
    new_half,
    set_aggregates,
    set_position,
    set_totals,
)
from kmevents.reducer.state import KINDS, REDUCER_VERSION, Base, ClusterState, Members
from kmevents.reducer.taskids import has_odd_tasks, key_exceptions
from kmevents.reducer.tracking import INDEXES, index_changes, order_changes

FORMAT = "kmevents.reducer.delta/5"
#: Format 5 with the offers in the header, decoded; still loaded, and written by
#: ``dump_delta(..., format=FORMAT_4)`` (verify's check of a stored one).
FORMAT_4 = "kmevents.reducer.delta/4"
#: Format 4's layout with the agents' totals whole; still loaded, and written by
#: ``dump_delta(..., format=FORMAT_3)`` (verify's check of a stored one).
FORMAT_3 = "kmevents.reducer.delta/3"
#: One JSON document, upserted values in it; still loaded, and written by
#: ``dump_delta(..., format=FORMAT_2)`` (tests, and verify's check of a stored one).
FORMAT_2 = "kmevents.reducer.delta/2"
#: Deltas with the membership indexes and retention order whole; still loaded.
FORMAT_1 = "kmevents.reducer.delta/1"
FORMATS = (FORMAT, FORMAT_4, FORMAT_3, FORMAT_2, FORMAT_1)
#: the formats of a header line and a section per kind of upserted values
_SECTIONED = (FORMAT, FORMAT_4, FORMAT_3)
#: the formats that hold the agents' totals as their changes since the base
_TOTALS_CHANGED = (FORMAT, FORMAT_4)
#: the agents' totals a delta holds whole (formats 1-3), and their changes since the base (format 4)
_TOTALS = ("allocation", "contributions")
_TOTAL_CHANGES = ("allocation_changes", "contributions_changes")
#: the kinds whose upserted values a format-3 or -4 delta holds in its header, decoded when
#: parsed, not in sections (format 5 holds every kind in sections)
_IN_HEADER = frozenset({"offer"})


def _header_kinds(format: str) -> frozenset[str]:
    """The kinds whose upserted values a delta of ``format`` holds in its header (not sections)."""
    return frozenset() if format == FORMAT else _IN_HEADER
#: where :func:`delta_document` hands :func:`dump_delta` a format-3 delta's sections
_SECTIONS = "_sections"
_SORT = orjson.OPT_SORT_KEYS


class Remembered:
    """What a format-3 delta of a state held of each entity changed since the base, kept for the
    next delta of the same base: ``verify`` dumps the fold's own delta at every stored delta's
    offset to compare it, and each is cumulative, so each read and decompressed again every
    value the one before did (~1/5 of a ``verify --full`` at the large profile). With this, a
    delta reads only the entities marked changed since the one before (the base's ``recent``,
    which :meth:`~kmevents.reducer.state.ClusterState.take_dirty` fills while this holds it)
    and takes the rest from here: the same marks the delta itself rests on (an entity the fold
    did not mark is what it was at the delta before). Kept for one base at a time."""

    __slots__ = ("base", "recent", "cut", "decoded", "removed", "format")

    def __init__(self) -> None:
        self.base: Base | None = None
        #: the format of the deltas it remembers for (where a kind's values go depends on it)
        self.format: str | None = None
        #: the base's ``recent`` set this one started (another's: start afresh)
        self.recent: set[tuple[str, str]] | None = None
        #: kind -> id -> (canonical bytes, condition) of a format-3 section's entity
        self.cut: dict[str, dict[str, tuple[bytes, str]]] = {}
        #: kind -> id -> the canonical bytes of an entity of the header's ``upserts``
        self.decoded: dict[str, dict[str, Any]] = {}
        #: kind -> ids gone since the base
        self.removed: dict[str, set[str]] = {}

    def changed(self, base: Base, format: str = FORMAT) -> set[tuple[str, str]]:
        """The entities to read again (every one changed since the base when this held another
        base or format, or its ``recent`` set is not this one's); ``base.recent`` starts again."""
        todo = base.recent
        if base is not self.base or todo is None or todo is not self.recent or format != self.format:
            self.base, self.format = base, format
            self.cut, self.decoded, self.removed = {}, {}, {}
            todo = base.changed
        self.recent = base.recent = set()
        return todo

    def read(self, st: ClusterState, todo: set[tuple[str, str]]) -> None:
        in_header = _header_kinds(self.format or FORMAT)
        for kind, id in todo:
            table = st._tables[kind]
            if kind in in_header:
                value = packed_bytes(table, id)
                got: Any = None if value is None else orjson.Fragment(value)
                into = self.decoded
            else:
                got = bytes_and_condition(table, id)
                into = self.cut
            if got is None:
                self.removed.setdefault(kind, set()).add(id)
                into.get(kind, {}).pop(id, None)
            else:
                into.setdefault(kind, {})[id] = got
                gone = self.removed.get(kind)
                if gone:
                    gone.discard(id)


def delta_document(st: ClusterState, chain_hash: str | None = None, *, format: str = FORMAT,
                   remembered: Remembered | None = None) -> dict[str, Any]:
    """What changed since the base, as a delta document of ``format`` (:data:`FORMAT`: its
    header, the sections' values under a private key :func:`dump_delta` takes out;
    :data:`FORMAT_2`, :data:`FORMAT_1`: a test's reference, verify's check). ``remembered``
    (format 3): what the last delta of this base held, read again only where marked changed
    since (:class:`Remembered`)."""
    base = st._base
    if base is None:
        raise ValueError("no base: call mark_base() when the base snapshot is written or loaded")
    st.take_dirty()  # every change so far is in base.changed
    materialize(st)
    upserts: dict[str, dict[str, Any]] = {}
    removed: dict[str, list[str]] = {}
    sections: dict[str, dict[str, tuple[bytes, str]]] = {}
    cut = format in _SECTIONED
    in_header = _header_kinds(format)
    if cut and remembered is not None:
        remembered.read(st, remembered.changed(base, format))
        upserts = {kind: dict(values) for kind, values in remembered.decoded.items() if values}
        removed = {kind: list(ids) for kind, ids in remembered.removed.items() if ids}
        sections = {kind: items for kind, items in remembered.cut.items() if items}
    else:
        for kind, id in base.changed:
            table = st._tables[kind]
            if cut and kind not in in_header:  # bytes and condition: a packed entity's not decoded
                got = bytes_and_condition(table, id)
                if got is None:
                    removed.setdefault(kind, []).append(id)
                else:
                    sections.setdefault(kind, {})[id] = got
                continue
            value = packed_bytes(table, id)  # a packed entity's are not decoded (packed.py)
            if value is None:
                removed.setdefault(kind, []).append(id)
            else:
                upserts.setdefault(kind, {})[id] = orjson.Fragment(value)
    rotations = st._rotations - base.rotations
    if rotations == 0:
        dedupe: dict[str, Any] = {"added": encode_window(added_since(st._seen_new, base.new))}
    elif rotations == 1:
        dedupe = {"rotated_once": True, "old_added": encode_window(added_since(st._seen_old, base.new)),
                  "new": encode_window(st._seen_new)}
    else:
        dedupe = {"old": encode_window(st._seen_old), "new": encode_window(st._seen_new)}
    doc = {
        "format": format, "base_offset": base.offset, "base_state_offset": base.state_offset,
        "cluster": st.cluster, "partition": st.partition, "offset": st.offset, "chain_hash": chain_hash,
        "reducer_version": REDUCER_VERSION, "last_occurred_at": st.last_occurred_at,
        "max_occurred_at": st.max_occurred_at or None, "watermark": st.watermark or None,
        "recent": st._recent, "seq": st._seq, "retention": st.retention.to_dict(),
        "upserts": upserts, "removed": {k: sorted(v) for k, v in removed.items()},
        "dedupe": dedupe,
    }
    if format in _TOTALS_CHANGED:  # the agents brought up to date since the base, their totals or null
        alloc, contrib = st._alloc, st._contrib
        doc["allocation_changes"] = {aid: alloc.get(aid) for aid in base.aggs}
        doc["contributions_changes"] = {aid: (None if (c := contrib.get(aid)) is None else list(c))
                                        for aid in base.aggs}
    else:
        doc["allocation"] = st._alloc
        doc["contributions"] = {aid: list(c) for aid, c in st._contrib.items()}
    if format == FORMAT_1:
        doc["terminal"] = {k: [[i, t] for i, t in idx.items()] for k, idx in st._terminal.items()}
        doc["indexes"] = indexes(st)
        return doc
    # from what the fold noted as it changed them (tracking.py), not compared whole with the base
    track = base.track
    doc["terminal_changes"] = {k: order_changes(track.orders[k], idx) for k, idx in dict.items(st._terminal)}
    doc["index_changes"] = {name: index_changes(track, name, getattr(st, "_" + name)) for name in INDEXES}
    doc["indexes"] = {"task_id_exceptions": key_exceptions(st)}
    if cut:
        doc["sections"] = sorted(sections)
        doc[_SECTIONS] = sections
    return doc


def _section(kind: str, items: dict[str, tuple[bytes, str]]) -> bytes:
    """A format-3 delta's section of ``kind``: its line, a newline and its values' bytes."""
    return b"\n".join(_section_parts(kind, items))


def _section_parts(kind: str, items: dict[str, tuple[bytes, str]]) -> tuple[bytes, bytes]:
    """A format-3 delta's section of ``kind``: its line and its values' bytes."""
    ids = sorted(items)
    values = [items[i][0] for i in ids]
    conds, names = condition_codes([items[i][1] for i in ids])
    blob = b"".join(values)
    line = {"kind": kind, "ids": ids, "conds": conds, "names": names,
            "sizes": [len(v) for v in values], "crc": crc32(blob)}
    return orjson.dumps(line, option=_SORT), blob


def _set_change(cur: set[str], was: set[str]) -> list[list[str]]:
    return [sorted(cur - was), sorted(was - cur)]


def _order_changes(base: dict[str, str], now: dict[str, str]) -> dict[str, Any]:
    """A retention order (``{id: time}``, oldest first) as its change from the base's: the ids
    gone from it and the entries appended after the rest, when that is what happened (the
    fold appends and removes; a task renamed moves to the end); else the whole order. Compares
    whole: a delta uses it only when a base entry came back or changed (tracking.order_changes);
    the oracle of its test."""
    drop = [i for i in base if not dict.__contains__(now, i)]
    items = list(dict.items(now))
    keep = len(base) - len(drop)
    if keep <= len(items):
        gone = set(drop)
        j = 0
        for entry in base.items():
            if entry[0] in gone:
                continue
            if items[j] != entry:
                break
            j += 1
        else:
            return {"drop": sorted(drop), "tail": [[i, t] for i, t in items[keep:]]}
    return {"whole": [[i, t] for i, t in items]}


def dump_delta(st: ClusterState, chain_hash: str | None = None, *, format: str = FORMAT,
               remembered: Remembered | None = None) -> bytes:
    if format not in FORMATS:
        raise ValueError(f"cannot write delta format {format!r}")
    doc = delta_document(st, chain_hash, format=format, remembered=remembered)
    if format not in _SECTIONED:
        return orjson.dumps(doc, option=_SORT)
    sections = doc.pop(_SECTIONS)
    return b"\n".join([orjson.dumps(doc, option=_SORT), *(_section(k, sections[k]) for k in doc["sections"]), b""])


def matches_delta(data: bytes, st: ClusterState, chain_hash: str | None = None, *, format: str = FORMAT,
                  remembered: Remembered | None = None) -> bool:
    """``dump_delta(st, chain_hash, format=format, remembered=remembered) == data``, a sectioned
    delta's parts compared where they lie in ``data``, not joined first (verify's check of a
    stored delta: at the large profile 4-14 MB a delta, ~300 of them, each copied twice)."""
    if format not in _SECTIONED:
        return data == dump_delta(st, chain_hash, format=format, remembered=remembered)
    doc = delta_document(st, chain_hash, format=format, remembered=remembered)
    sections = doc.pop(_SECTIONS)
    at = 0
    # the header, then each section's line and values, each followed by a newline (dump_delta)
    for part in (orjson.dumps(doc, option=_SORT), *(p for k in doc["sections"] for p in _section_parts(k, sections[k]))):
        end = at + len(part)
        if not data.startswith(part, at) or data[end:end + 1] != b"\n":
            return False
        at = end + 1
    return at == len(data)


def stored_format(data: bytes) -> str:
    """The format of delta bytes (of a stored delta: checked when parsed). A format-4 or -3
    delta's header is its first line; a format-2 or -1 delta is one line, not parsed here."""
    nl = data.find(b"\n")
    if nl >= 0:
        for old in (FORMAT_4, FORMAT_3):
            if data.find(b'"format":"' + old.encode() + b'"', 0, nl) >= 0:
                return old
        return FORMAT
    return FORMAT_1 if b'"format":"' + FORMAT_1.encode() + b'"' in data else FORMAT_2


def parse_delta(data: bytes) -> dict[str, Any]:
    """A delta's bytes as its document, its format and reducer version checked (for
    :func:`apply_delta`: a caller that holds the bytes can let go of them before the apply).
    A format-3 delta's sections are read as :func:`compact_upserts` gives a format-2 delta's
    upserts: canonical bytes and their conditions. Raises SnapshotError."""
    nl = data.find(b"\n")
    try:
        doc = orjson.loads(data if nl < 0 else data[:nl])
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"delta is not JSON: {e}", hint="replay from the log (--no-snapshots)") from e
    if type(doc) is not dict or doc.get("format") not in FORMATS:
        raise SnapshotError(f"not a reducer delta (format {doc.get('format') if type(doc) is dict else None!r})",
                            hint=f"expected format {FORMAT}")
    if doc["reducer_version"] not in LOADABLE_VERSIONS:
        raise SnapshotError(f"delta derived by reducer version {doc['reducer_version']}, this is {REDUCER_VERSION}",
                            hint="replay from the log (or an older snapshot) to rebuild with this reducer")
    if doc["format"] in _SECTIONED:
        _read_sections(doc, data, nl)
    return doc


def _read_sections(doc: dict[str, Any], data: bytes, nl: int) -> None:
    """A format-3 delta's sections (after its header line, which ends at ``nl``) into its
    ``upserts`` as canonical bytes, their conditions noted (:data:`_RESTING`); each checked:
    its kind one the header names, its CRC, each value's braces."""
    kinds, ups = doc.get("sections"), _mapping(doc, "upserts")
    in_header = _header_kinds(doc["format"])
    if type(kinds) is not list or not all(type(k) is str and k in KINDS and k not in in_header and k not in ups
                                          for k in kinds):
        raise _damaged("'sections' is not a list of the kinds it holds in sections")
    noted: dict[str, dict[str, str]] = {}
    stream = io.BytesIO(data)
    stream.seek(len(data) if nl < 0 else nl + 1)
    try:
        for kind in kinds:
            line = stream.readline()
            if line[-1:] != b"\n":
                raise ValueError("the delta ends before its section (a truncated delta)")
            s = orjson.loads(line)
            if type(s) is not dict or s["kind"] != kind or kind in noted:
                raise ValueError(f"not the section of {kind!r} its header names next")
            ids, codes, names, sizes = s["ids"], s["conds"], s["names"], s["sizes"]
            if not type(ids) is type(codes) is type(sizes) is list or not len(ids) == len(codes) == len(sizes):
                raise ValueError("the section's ids, conds and sizes are not lists of one length")
            if not all(type(i) is str for i in ids):
                raise TypeError("an id is not a string")
            conds = named_conditions(names, codes, kind)
            values, crc = _read_values(stream, sizes, 0, kind, "delta")
            if crc != s["crc"]:
                raise ValueError(f"the {kind!r} section's values are damaged (CRC differs)")
            if not all(v[:1] == b"{" and v[-1:] == b"}" for v in values):
                raise ValueError(f"a {kind!r} value is not a JSON object")
            ups[kind] = dict(zip(ids, values, strict=True))
            noted[kind] = dict(zip(ids, conds, strict=True))
        if stream.read(1):
            raise ValueError("bytes after its last section")
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as e:
        raise _damaged(f"a section: {type(e).__name__}: {e}") from None
    doc[_RESTING] = noted


#: where :func:`compact_upserts` notes each upserted value's condition
_RESTING = "_resting_conditions"


def compact_upserts(doc: dict[str, Any]) -> dict[str, Any]:
    """A parsed delta's upserted values as canonical bytes, each kind's decoded values let go
    of as it is done (a packed table rests them so; :func:`apply_delta` puts them in as they
    are, with their conditions, noted here; a lazy table too, snapshot.py). A reader
    of one point decodes the delta before it loads the base and compacts it: the decoded
    values (~25 MiB for a 13 MB delta at the large profile) are then never beside the
    state. Changes ``doc`` in place and returns it."""
    ups = doc["upserts"]
    if type(ups) is not dict or not all(type(v) is dict for v in ups.values()):
        raise _damaged("'upserts' is not an object of objects")
    noted: dict[str, dict[str, str]] = doc.get(_RESTING, {})  # (format 3: its sections' already)
    for kind in list(ups):
        if kind not in noted:
            noted[kind], ups[kind] = _rest_value_items(ups[kind])
    doc[_RESTING] = noted
    # the agents' totals (whole, they replace the base's; or their changes): as JSON until then
    # (~1 MB each against ~8 MiB decoded for the large profile's 12,500 agents, else beside the base's)
    for name in _TOTAL_CHANGES if doc.get("format") in _TOTALS_CHANGED else _TOTALS:
        doc[name] = orjson.dumps(_mapping(doc, name))
    return doc


def _rest_value_items(values: dict[str, Any]) -> tuple[dict[str, str], dict[str, bytes]]:
    conds, out = {}, {}
    for id, v in values.items():
        if type(v) is not dict:
            raise _damaged(f"an upserted value of {id!r} is not an object")
        conds[id], out[id] = rest_value(v)
    return conds, out


def apply_delta(base: ClusterState, data: bytes | dict[str, Any]) -> ClusterState:
    """The state at the delta's offset, made from ``base`` (the base snapshot's state, loaded or
    forked: it is changed in place and returned). ``data``: the delta's bytes, or its
    document from :func:`parse_delta`."""
    doc = parse_delta(data) if isinstance(data, bytes) else data
    if base.offset != doc["base_state_offset"] or base.cluster != doc["cluster"]:
        raise SnapshotError(f"delta of {doc['cluster']!r} against the snapshot at offset {doc['base_offset']} "
                            f"(state at {doc['base_state_offset']}), applied to the state of {base.cluster!r} "
                            f"at {base.offset}", hint="load the delta's own base snapshot")
    # the dedupe window first: a damaged one raises before the base is changed
    window = base._dedupe_window
    new: set[int] | Recent
    if "added" in doc["dedupe"]:
        had = base._seen_new
        if type(had) is Recent:
            # a Recent (a loaded snapshot's, when large: snapshot.new_half) takes the added digests
            # into a copy (as written: runs of their own), not into a set of them all that the
            # fold's next event would sort again
            new = had.with_added(added_digests(doc, "added"))
        else:
            (added,) = dedupe_window(doc, "added")
            new = had | added
        old = base._seen_old
    elif doc["dedupe"].get("rotated_once"):
        (old_added,), new = dedupe_window(doc, "old_added"), new_half(doc, "new", window)
        old = base._seen_new | old_added
    else:
        (old,), new = dedupe_window(doc, "old"), new_half(doc, "new", window)
    if doc["format"] != FORMAT_1:
        # the changes' shapes are checked before the base is changed, too
        tc = _mapping(doc, "terminal_changes")
        # the base's orders read through their storage (a fork's lazy table would copy them)
        terminal = {k: _ordered(dict.get(base._terminal, k), tc.get(k), base._limits[k]) for k in RETAINED_KINDS}
        index_changes = _mapping(doc, "index_changes")
        if type(_mapping(doc, "indexes").get("task_id_exceptions")) is not dict:
            raise _damaged("'indexes' holds no task_id_exceptions object")
        changes = [(name, _checked(index_changes.get(name), pair=name == "rc_members"))
                   for name in ("pods_by_ns", "svc_members", "rc_members")]
    if doc["format"] in _TOTALS_CHANGED:
        doc = {**doc, **{name: _total_changes(doc, name) for name in _TOTAL_CHANGES}}
    st = base
    set_position(st, doc)
    filed = "indexes" in doc  # (an old delta without them: every index rebuilt, as then)
    tasks_gone = _unfile(st, doc) if filed else []
    tasks = st.tasks
    tasks_new = [k for k in doc["upserts"].get("task", ()) if filed and not dict.__contains__(tasks, k)]
    resting = doc.get(_RESTING, {})
    for kind, values in doc["upserts"].items():
        table = st._tables[kind]
        conds = resting.get(kind)
        if conds is None:
            for id, v in values.items():
                table[id] = v
        elif type(table) is PackedTable:  # canonical bytes (format 3, compact_upserts) rest as they are,
            # compressed as a pack would (PackedTable.resting_codec): not before the table has a
            # dictionary, nor in a read's plain fork (there the next records change these values
            # again: BENCHMARKS.md, "A read's forks rest what they change uncompressed")
            hot, put = table._hot, dict.__setitem__
            codec = table.resting_codec()
            stored = values.values() if codec is None or not values else codec.compress_many(list(values.values()))
            for id, v in zip(values, stored, strict=True):
                put(table, id, v)
                hot.discard(id)
            table.notes.note_many(conds.keys(), conds.values())
            if table._written is not None:
                table._written.update(values)
        else:
            for id, v in values.items():
                table[id] = orjson.loads(v)
    for kind, ids in doc["removed"].items():
        table = st._tables[kind]
        for id in ids:
            if id in table:
                del table[id]  # (not pop: a packed value would be decoded, a fork's copied)
    if filed:
        _file(st, doc, tasks_gone, tasks_new)
    st._seen_new, st._seen_old = new, old
    st._dirty = set()
    if doc["format"] in _TOTALS_CHANGED:
        _change_totals(st, doc["allocation_changes"], doc["contributions_changes"])
    else:
        if type(doc["allocation"]) is bytes:  # (compact_upserts)
            doc = {**doc, **{name: orjson.loads(doc[name]) for name in _TOTALS}}
        if doc["format"] == FORMAT_1:
            set_aggregates(st, doc, filed=filed)
            return st
        set_totals(st, doc)
    st._terminal = terminal
    for name, ch in changes:
        _apply_changes(getattr(st, "_" + name), ch, pair=name == "rc_members",
                       make=set if name == "pods_by_ns" else Members.of)
    return st


def _total_changes(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A format-4 delta's ``allocation_changes`` or ``contributions_changes`` (JSON bytes after
    :func:`compact_upserts`), its shape checked: agent id -> null or, allocation, an object of
    roles, or, contributions, a pair of them. Raises SnapshotError before the base changes."""
    v = doc.get(name)
    if type(v) is bytes:
        v = orjson.loads(v)
    if type(v) is not dict:
        raise _damaged(f"{name!r} is not an object")
    pair = name == "contributions_changes"
    for t in v.values():
        if t is None:
            continue
        if not ((type(t) is list and len(t) == 2 and all(type(x) is dict for x in t)) if pair else type(t) is dict):
            raise _damaged(f"an agent's {name!r} is not null or {'a pair of objects' if pair else 'an object'}")
    return v


def _change_totals(st: ClusterState, alloc: dict[str, Any], contrib: dict[str, Any]) -> None:
    """The agents' totals of a format-4 delta put over the base's (a fork's are its copies on
    write: the base's stay), the outstanding-offer index rebuilt as :func:`set_totals` does."""
    mine, theirs = st._alloc, st._contrib
    for aid, v in alloc.items():
        if v is None:
            mine.pop(aid, None)
        else:
            mine[aid] = v
    for aid, c in contrib.items():
        if c is None:
            theirs.pop(aid, None)
        else:
            theirs[aid] = (c[0], c[1])
    st._stale = set()
    rebuild_offer_index(st)


def _damaged(what: str) -> SnapshotError:
    return SnapshotError(f"damaged delta: {what}", hint="replay from the log (--no-snapshots)")


def _mapping(doc: dict[str, Any], name: str) -> dict[str, Any]:
    v = doc.get(name)
    if type(v) is not dict:
        raise _damaged(f"{name!r} is not an object")
    return v


def _ids(v: Any) -> list[str]:
    if type(v) is not list or not all(type(i) is str for i in v):
        raise _damaged("an index change is not a list of ids")
    return v


def _checked(changes: Any, *, pair: bool) -> dict[str, Any]:
    """Index changes of one index, their shapes checked: ``{key: None | [added, removed]}``
    (``pair``: ``[[added, removed], [added, removed]]``)."""
    if type(changes) is not dict:
        raise _damaged("an index's changes are not an object")
    for c in changes.values():
        if c is None:
            continue
        halves = c if pair else [c]
        if type(c) is not list or len(c) != 2 or any(
                type(h) is not list or len(h) != 2 for h in halves):
            raise _damaged("an index change is not [added, removed]")
        for h in halves:
            _ids(h[0])
            _ids(h[1])
    return changes


def _apply_changes(table: dict[str, Any], changes: dict[str, Any], *, pair: bool, make: Any) -> None:
    """Index changes onto the state's index ``table``, through its mapping interface: a fork's
    lazy table hands out (and keeps) a private copy of each set it changes. ``make``: a new
    member set of ids (``set``, or ``Members.of``)."""
    for key, c in changes.items():
        if c is None:
            table.pop(key, None)
            continue
        cur = table.get(key)
        if cur is None:
            table[key] = (make(c[0][0]), make(c[1][0])) if pair else make(c[0])
            continue
        for s, (added, removed) in zip(cur, c, strict=True) if pair else ((cur, c),):
            s.difference_update(removed)
            s.update(added)


def _ordered(base: dict[str, str] | None, ch: Any, limit: int = 0) -> dict[str, str]:
    """A retention order of ``limit`` ids at most (its type: retention.new_index) from the
    base's (read, not changed) and its changes since."""
    if type(ch) is not dict:
        raise _damaged("a retention order's changes are not an object")
    try:
        if "whole" in ch:
            out = new_index(limit)
            out.update((i, t) for i, t in ch["whole"])
            return out
        gone = set(_ids(ch["drop"]))
        out = new_index(limit)
        items = dict.items(base or {})
        oldest = 0  # the dropped ids among the base's oldest, in a row (pruning drops those)
        for i in base or ():
            if i not in gone:
                break
            oldest += 1
        if oldest == len(gone):  # the rest copied at C speed (~17 ms a delta at the simulator's scale)
            out.update(itertools.islice(items, oldest, None))
        else:
            out.update((i, t) for i, t in items if i not in gone)
        for i, t in ch["tail"]:
            out[i] = t
    except (KeyError, TypeError, ValueError) as e:
        raise _damaged(f"a retention order's changes: {type(e).__name__}: {e}") from None
    return out


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
    out: list[tuple[str, str]] = []
    if not has_odd_tasks(st):
        return out  # forgetting a regular task is a no-op: nothing to decode
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
        table = st._tables[kind]
        for id in doc["upserts"].get(kind, ()):
            v = value_of(table, id)  # (the delta's value, perhaps as bytes: compact_upserts)
            sel_add(index, v["namespace"], id, v["selector"])
    for tid, key in tasks_gone:
        forget_task(st, tid, key)
    exceptions = doc["indexes"]["task_id_exceptions"]
    for key in tasks_new:
        tid = exceptions.get(key)
        index_task(st, key.partition("/")[2] if tid is None else tid, key)


def base_offset_of(data: bytes) -> int:
    """The base snapshot's offset a delta was taken against (without applying it)."""
    nl = data.find(b"\n")  # (format 3: its header's)
    return int(orjson.loads(data if nl < 0 else data[:nl])["base_offset"])
