"""Snapshots: a ClusterState as bytes, and back.

Format 6 (written since 2026-12-06) is format 5 below with two parts of its header stored
as a load reads them fastest:

- ``terminal``: each retention order as two columns, ``{kind: [[ids], [times]]}``, not
  ``[[id, time], ...]`` pairs (~50,000 entries at both the simulator's and the large
  profile's scale: parsed and put in order in ~17 ms instead of ~29 at the former);
- ``dedupe``: beside each half's digests its bitmap (``new_bits``, ``old_bits``: the bytes
  of dedupe.py's window-sized bitmap marking exactly its digests, base64; null for a half of
  fewer than ``Recent.SPILL``) and ``bits_crc``, the CRC-32 of the new half's bitmap then the
  old half's. A load takes the bitmaps instead of marking every digest, and the old half
  becomes the read-only sorted array the fold keeps after a rotation (dedupe.Digests), not a
  set of ~100,000 ints (~12 ms and ~7 MiB at the simulator's scale). A bitmap whose CRC or
  size is wrong fails the load: a bit missing would let a duplicate through.

Format 5 (written since issue 17's second load pass) is format 4 below with every kind
in a section (no entity lines), in kind order, and the header's indexes by position::

    {"conds": [0, 0, 1, ...], "crc": N, "dict": "base64" | null, "ids": [...],
     "kind": "agent", "names": ["active", "removed"], "sizes": [...], "train_at": null}
    <the values, concatenated: sum(sizes) bytes>

``conds``: each value's condition as its place in ``names`` (the names in the order the
ids first meet them). A kind that is not packed has ``dict`` and ``train_at`` null and
its values' canonical bytes; a load puts them into a *lazy* table (packed.NEVER: each value
decoded when first read, then kept), so it decodes none of the large profile's 12.5k
agents, nor of the ~10k offers a state retains (the outstanding-offer index is rebuilt from
the few the section's conditions name ``outstanding``: 13 of 10,013 at the simulator's
scale; decoding them all was ~15 % of a load there). The header is format 4's but for ``indexes``::

    {"pods_by_ns": {ns: [pod positions]}, "rc_members": {rc: [[running], [other]]},
     "svc_members": {service: [positions]}, "task_id_exceptions": {key: task_id},
     "rc_sel": {ns: [[anchor, [rc positions]], ...]}, "svc_sel": {...service positions}}

A position is an id's place in its kind's section ``ids`` (an id its table lacks, which
a fold never leaves, is written as itself); each list sorted. ``rc_sel`` and ``svc_sel``
are the selector indexes (membership.py: an anchor is the ``[key, value]`` pair a selector
is filed under, or null, loose; a number or boolean value written as the number it
equals; sorted by their JSON): a load decodes no RC or service to rebuild them, nor
looks up 480k pod-id strings to build the member sets (CPU 1.2-1.4 s -> 0.6-0.7 s, peak
RSS 495 -> 435 MiB at the large profile's 1.5M events: BENCHMARKS.md).

Format 4 (written since issue 17's load work) is format 3 below with the packed kinds
(packed.py) written as they rest in memory: after the other kinds' entity lines, one
section per packed kind, in kind order::

    {"conds": [...], "crc": N, "dict": "base64" | null, "ids": [...], "kind": "pod",
     "sizes": [...], "train_at": 1000}
    <the values, concatenated: sum(sizes) bytes>

``ids`` sorted, ``conds`` and ``sizes`` one per id. ``dict`` is the table's trained zstd
dictionary and each value a frame of it, or (a table that has not trained: null) the
value's canonical bytes. ``crc`` is the CRC-32 of the dictionary's bytes then the values'.
A load then puts the frames straight into the table with a codec of the stored dictionary:
no training and no compression (0.6-0.8 s and a loop over 330k lines at the large profile
before), and a dump writes them without decompressing. ``train_at``: the size at which an
untrained table trains (packed.py), so a loaded state trains where its fold would.

The canonical bytes of an entity are still what etcd, deltas and readers see: a frame is
the compression of exactly those bytes. A state's bytes are still a function of the state
and of where its fold trained each table's dictionary, which is at the same event for
every fold of the same log (packed.py: ``pack_tables``, samples in id order). A state
loaded from a format-3 snapshot trains at load, so its dictionary (and snapshot bytes,
not its entities) may differ from its fold's.

Format 3 (written during issue 17) is JSON lines: a header, then one line per entity::

    {"format": "kmevents.reducer.snapshot/3",
     "cluster": "c1", "partition": 0, "offset": 41,
     "chain_hash": "..." | null, "reducer_version": 1,
     "last_occurred_at": "...", "max_occurred_at": "...",
     "watermark": "...", "recent": [occurred_at of the last events, by seq % RECENT], "seq": N,
     "retention": {...Retention fields...},
     "counts": {kind: number of entities},
     "terminal": {kind: [[id, occurred_at], ...]},   # retention order, oldest first
     "dedupe": {"new": "base64", "old": "base64"},   # the window's digests (dedupe.py)
     "allocation": {agent_id: {role: {name: amount}}},     # aggregates.py
     "contributions": {agent_id: [allocated_by_role, offered_by_role]},
     "indexes": {"pods_by_ns": {ns: [live pod ids]}, "rc_members": {rc: [[running], [other]]},
                 "svc_members": {service: [ready pod ids]},       # all sorted; membership.py
                 "task_id_exceptions": {key: task_id}}}           # taskids.py
    ["agent","a-1"]<TAB>{...the entity's canonical bytes...}
    ["pod","prod/web-1","Running"]<TAB>{...}   # packed kinds: their condition too
    ...                                  # kinds by name, ids sorted within each

The header is ``orjson.dumps(doc, OPT_SORT_KEYS)``; an entity line is the JSON
array ``[kind, id]`` (``[kind, id, condition]`` for the packed kinds), a tab
(JSON never holds a raw one) and the entity's canonical bytes, the same bytes
etcd holds and a packed table rests as (packed.py). So writing a snapshot copies
the packed bytes instead of encoding every entity, and loading one keeps them
without decoding: memory and time in the bytes, not in Python objects. The pod
membership indexes are in the header too, and each packed entity's condition in
its line, so a load decodes no pod or task and neither does a count by condition.
Format 2 (the same without conditions) and format 1 (one JSON document with an
``"entities": {kind: {id: value}}`` map, no ``counts``) still load.

Everything the fold reads later is in it (dedupe window, retention order), so
``fold(suffix, state=load(dump(fold(prefix))))`` equals ``fold(prefix+suffix)``.
The pod membership indexes are stored (sorted), and since format 5 the selector
indexes; the other derived indexes (task ids, outstanding offers; before format 5 the
selectors) are recomputed from the entities, and a format-1 snapshot recomputes them all. The
same state always gives the same bytes (keys sorted, sets sorted), so equal
bytes mean equal states.

Formats 6, 5, 4, 3, 2 and 1 load; ``dump`` writes 6, 5, 4 and 3.

Versions: ``load`` takes the snapshots of :data:`LOADABLE_VERSIONS`. Version 4
differs from 5 only in its dedupe window, sorted lists of the keys themselves:
they are hashed on load, and the state folds on as a version-5 fold of the same
log would.
"""

from __future__ import annotations

import array
import base64
import binascii
import contextlib
import io
from collections.abc import Iterator
from itertools import repeat
from typing import IO, Any, Final

import orjson
import zstandard

import kmevents.reducer.packed as packed_module
from kmevents.checksum import crc32
from kmevents.errors import CheckFailed
from kmevents.reducer.aggregates import materialize
from kmevents.reducer.aggregates import rebuild as rebuild_offer_index
from kmevents.reducer.dedupe import (
    Recent,
    decode_added,
    decode_bits,
    decode_half,
    decode_old_half,
    half_bits,
)
from kmevents.reducer.dedupe import decode as decode_window
from kmevents.reducer.dedupe import encode as encode_window
from kmevents.reducer.packed import (
    NEVER,
    PACKED_KINDS,
    Codec,
    PackedTable,
    canonical_items,
    conditions,
    note_conditions,
    resting_items,
    restore,
)
from kmevents.reducer.retention import RETAINED_KINDS, Retention, new_index
from kmevents.reducer.state import KINDS, REDUCER_VERSION, ClusterState, Members

FORMAT = "kmevents.reducer.snapshot/6"
#: Format 6 with the retention order as pairs and no dedupe bitmaps; still loaded, and written
#: by ``dump(..., format=FORMAT_5)`` (verify's check of a stored one).
FORMAT_5 = "kmevents.reducer.snapshot/5"
#: the formats of a section for every kind (indexes by position)
_ALL_SECTIONS = (FORMAT, FORMAT_5)
#: Packed kinds in sections, the others on entity lines; still loaded, and written by
#: ``dump(..., format=FORMAT_4)`` (tests).
FORMAT_4 = "kmevents.reducer.snapshot/4"
#: Every entity on a line of canonical bytes, packed kinds too; still loaded, and written
#: by ``dump(..., format=FORMAT_3)`` (a test's reference).
FORMAT_3 = "kmevents.reducer.snapshot/3"
#: Entity lines without conditions (the first days of issue 17); still loaded.
FORMAT_2 = "kmevents.reducer.snapshot/2"
#: The single-document format written before issue 17; still loaded.
FORMAT_1 = "kmevents.reducer.snapshot/1"
#: Reducer versions whose snapshots and deltas this one loads (see the module docstring).
#: When REDUCER_VERSION moves, say here which older versions still fold on alike.
LOADABLE_VERSIONS: Final = frozenset({4, 5})
_SORT = orjson.OPT_SORT_KEYS


class SnapshotError(CheckFailed):
    """Bytes that are not a reducer snapshot this version can load."""


def header(st: ClusterState, chain_hash: str | None = None,
           ids: dict[str, list[str]] | None = None, *, format: str = FORMAT) -> dict[str, Any]:
    """Everything of a snapshot of ``format`` but its entities (materializes the aggregates).
    ``ids``: the sorted ids of the pods, RCs and services (formats 5 and 6: its indexes name
    them by position)."""
    return {**header_fields(st, chain_hash, format=format),
            "indexes": indexes(st) if ids is None else positional_indexes(st, ids)}


def header_fields(st: ClusterState, chain_hash: str | None = None, *, dedupe: bool = True,
                  pairs: Any = None, format: str = FORMAT) -> dict[str, Any]:
    """A header of ``format`` but its ``indexes`` (and, ``dedupe`` False, its dedupe window);
    materializes the aggregates. ``pairs`` (formats before 6): what holds each ``[id, time]``
    of ``terminal``, ``list`` (None) or ``tuple`` (the same JSON, for a caller that only encodes
    the header: ``list(items())`` makes the tuples at C speed, ~50,000 of them at the large
    profile). Format 6 holds each order as two columns, its ids and its times."""
    materialize(st)
    if format == FORMAT:
        terminal: dict[str, Any] = {k: [list(idx), list(idx.values())] for k, idx in st._terminal.items()}
    elif pairs in (None, list):
        terminal = {k: [[i, t] for i, t in idx.items()] for k, idx in st._terminal.items()}
    else:
        terminal = {k: list(idx.items()) for k, idx in st._terminal.items()}
    doc = {
        "format": format,
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
        "counts": {k: len(t) for k, t in st._tables.items() if t},
        "terminal": terminal,
        "allocation": st._alloc,
        "contributions": {aid: list(c) for aid, c in st._contrib.items()},
    }
    if dedupe:
        doc["dedupe"] = window_fields(st, format)
    return doc


def window_fields(st: ClusterState, format: str = FORMAT, old: tuple[str, bytes | None] | None = None
                  ) -> dict[str, Any]:
    """The header's ``"dedupe"`` of a snapshot of ``format``: each half's digests (format 6:
    and its bitmap, :func:`old_half_fields`, with their CRC). ``old``: the old half's fields
    already made (the fold only replaces that half, at a rotation: sections.py keeps them)."""
    new = encode_window(st._seen_new)
    if format != FORMAT:
        return {"new": new, "old": old[0] if old is not None else encode_window(st._seen_old)}
    new_bits = half_bits(st._seen_new, st._dedupe_window)
    old_text, old_bits = old if old is not None else old_half_fields(st)
    crc = crc32(old_bits or b"", crc32(new_bits or b""))
    return {"new": new, "new_bits": _b64(new_bits), "old": old_text, "old_bits": _b64(old_bits), "bits_crc": crc}


def old_half_fields(st: ClusterState) -> tuple[str, bytes | None]:
    """The dedupe window's old half as a format-6 header holds it: its digests' text and bitmap."""
    return encode_window(st._seen_old), half_bits(st._seen_old, st._dedupe_window)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def dump(st: ClusterState, chain_hash: str | None = None, *, format: str = FORMAT) -> bytes:
    """The state's snapshot bytes, in ``format`` (:data:`FORMAT`, :data:`FORMAT_5`,
    :data:`FORMAT_4` or :data:`FORMAT_3`)."""
    if format in _ALL_SECTIONS:
        return _dump_sections(st, chain_hash, format)
    if format not in (FORMAT_4, FORMAT_3):
        raise ValueError(f"cannot write snapshot format {format!r}")
    head = header(st, chain_hash, format=format)
    parts = [orjson.dumps(head, option=_SORT)]
    dumps = orjson.dumps
    v4 = format == FORMAT_4
    for kind in sorted(st._tables):
        t = st._tables[kind]
        if kind in PACKED_KINDS:
            if v4:
                continue
            cond = dict(conditions(t))
            for id, value in canonical_items(t):
                parts.append(b"".join((dumps([kind, id, cond[id]]), b"\t", value)))
            continue
        for id, value in canonical_items(t):
            parts.append(b"".join((dumps([kind, id]), b"\t", value)))
    if v4:
        for kind in sorted(PACKED_KINDS):
            parts.append(_section(kind, st._tables[kind]))
    parts.append(b"")
    return b"\n".join(parts)


def _dump_sections(st: ClusterState, chain_hash: str | None, format: str) -> bytes:
    """Formats 6 and 5: the header (its indexes by position), then a section for every kind."""
    materialize(st)  # before the sections: it writes agents and roles
    sections, ids = [], {}
    for kind in sorted(KINDS):
        ids[kind], line = _section(kind, st._tables[kind], v5=True)
        sections.append(line)
    head = header(st, chain_hash, ids, format=format)
    return b"\n".join([orjson.dumps(head, option=_SORT), *sections, b""])


def _section(kind: str, table: dict[str, Any], *, v5: bool = False) -> Any:
    """A kind's section: its line, then its values' bytes (format 4: a packed kind's, a plain
    dict in a packed kind's place, e.g. a deep copy's: canonical bytes, untrained). Format 5
    (``v5``, any kind): the ids too, and each condition as its place in ``names``."""
    packed = kind in PACKED_KINDS
    train_at: int | None
    if type(table) is PackedTable and packed:
        ids, values = resting_items(table)
        codec, train_at = table.codec, table._train_at
    else:
        ids, values = map(list, zip(*canonical_items(table), strict=True)) if table else ([], [])
        codec, train_at = None, packed_module.TRAIN_AT if packed else None
    cond = dict(conditions(table))
    blob = b"".join(values)
    conds = [cond[i] for i in ids]
    crc = crc32(blob, crc32(b"" if codec is None else codec.raw))
    line = section_line(kind, ids, conds, [len(v) for v in values], codec, train_at, crc, v5=v5)
    return b"".join((line, b"\n", blob)) if not v5 else (ids, b"".join((line, b"\n", blob)))


def section_line(kind: str, ids: list[str], conds: list[str], sizes: list[int], codec: Codec | None,
                 train_at: int | None, crc: int, *, v5: bool = True) -> bytes:
    """A section's line (its values follow it after a newline): ``crc`` is the CRC-32 of the
    codec's dictionary bytes continued over the values; format 5 (``v5``) writes each condition
    as its place in ``names``. sections.py builds the same line from its kept lists."""
    b64 = None if codec is None else base64.b64encode(codec.raw).decode()
    if v5:
        codes, names = condition_codes(conds)
        return coded_section_line(kind, ids, codes, names, sizes, b64, train_at, crc)
    doc: dict[str, Any] = {"kind": kind, "ids": ids, "conds": conds, "sizes": sizes, "dict": b64,
                           "train_at": train_at, "crc": crc}
    return orjson.dumps(doc, option=_SORT)


def coded_section_line(kind: str, ids: list[str], codes: list[int], names: list[str], sizes: list[int],
                       b64: str | None, train_at: int | None, crc: int) -> bytes:
    """A format-5 section's line from its conditions as :func:`condition_codes` gives them
    (``codes``, ``names``) and its dictionary as base64 (``b64``): :func:`section_line`'s bytes."""
    return orjson.dumps({"kind": kind, "ids": ids, "conds": codes, "names": names, "sizes": sizes, "dict": b64,
                         "train_at": train_at, "crc": crc}, option=_SORT)


def condition_codes(conds: list[str]) -> tuple[list[int], list[str]]:
    """Each condition as its place in the names, and the names in first-seen order: how a
    format-5 section (and a format-3 delta's, delta.py) stores its values' conditions."""
    names = list(dict.fromkeys(conds))  # (at C speed: 0.09 s of a full snapshot at 1.5M events as a loop)
    return list(map({c: i for i, c in enumerate(names)}.__getitem__, conds)), names


def named_conditions(names: Any, codes: list[Any], kind: str) -> list[str]:
    """The conditions of a section's ``codes`` (:func:`condition_codes`), checked: ``names`` a
    list of strings, each code a place in it. Raises TypeError or ValueError."""
    if type(names) is not list or not all(type(c) is str for c in names):
        raise TypeError("the section's condition names are not a list of strings")
    if codes and (min(codes) < 0 or max(codes) >= len(names)):  # (TypeError for a code not a number)
        raise ValueError(f"a condition code of the {kind!r} section is not one of its {len(names)} names")
    return list(map(note_conditions(names).__getitem__, codes))


def load(data: bytes | IO[bytes]) -> ClusterState:
    """The state of snapshot bytes, or of a binary stream of them read line by line (a
    decompressing reader: the whole snapshot is then never in memory at once)."""
    lines = io.BytesIO(data) if isinstance(data, bytes) else data
    doc = _document(lines.readline().rstrip(b"\n"))
    st = ClusterState(doc["cluster"], Retention.from_dict(doc["retention"]))
    set_position(st, doc)
    if doc["format"] == FORMAT_1:
        for kind in KINDS:
            st._tables[kind].update(doc["entities"].get(kind, {}))
        ids = None
    else:
        v5 = doc["format"] in _ALL_SECTIONS
        ids = _load_entities(st, lines, doc["counts"], v5)
        ids = ids if v5 else None
    st._seen_new, st._seen_old = window_halves(doc, st._dedupe_window)
    set_aggregates(st, doc, ids)
    return st


def _document(data: bytes) -> dict[str, Any]:
    """The header of a format-2 snapshot, or a whole format-1 one, checked."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"snapshot is not JSON: {e}",
                            hint="check that the bytes come from ClusterState.to_snapshot") from e
    if type(doc) is not dict or doc.get("format") not in (FORMAT, FORMAT_5, FORMAT_4, FORMAT_3, FORMAT_2, FORMAT_1):
        raise SnapshotError(f"not a reducer snapshot (format {doc.get('format') if type(doc) is dict else None!r})",
                            hint=f"expected format {FORMAT}")
    if doc["reducer_version"] not in LOADABLE_VERSIONS:
        raise SnapshotError(
            f"snapshot derived by reducer version {doc['reducer_version']}, this is {REDUCER_VERSION}",
            hint="replay from the log (or an older snapshot) to rebuild with this reducer")
    return doc


def _load_entities(st: ClusterState, lines: IO[bytes], counts: dict[str, int], v5: bool) -> dict[str, list[str]]:
    """The entity lines: packed kinds keep their bytes (checked only for their braces: verify
    compares them whole) and the conditions their lines name, others are decoded; a format-4
    packed kind's section goes into its table as it is (:func:`_read_section`), a format-5
    (``v5``) unpacked kind's into a lazy table (packed.NEVER).
    ``counts``: the header's, checked at the end. Returns each section's ids (sorted)."""
    loads, tables = orjson.loads, st._tables
    ids_of: dict[str, list[str]] = {}
    # packed values go in by the thousand (compressed in one call), with their conditions
    pending: dict[str, tuple[list[tuple[str, bytes]], list[str | None]]] = {
        k: ([], []) for k, t in tables.items() if type(t) is PackedTable}
    n = 1
    for n, line in enumerate(lines, start=2):  # noqa: B007  (n is read after the loop)
        try:
            if line[-1:] != b"\n":
                raise ValueError("the line does not end (a truncated snapshot)")
            if line[:1] == b"{":
                kind, ids, values, conds, codec, train_at = _read_section(line, lines, v5)
                table = tables[kind]
                if kind in ids_of or dict.__len__(table) or not (v5 or kind in PACKED_KINDS):
                    raise ValueError(f"a second section of kind {kind!r}, or one of a kind not packed")
                ids_of[kind] = ids
                if kind in PACKED_KINDS:
                    assert type(table) is PackedTable and train_at is not None  # (checked by _read_section)
                    restore(table, ids, values, conds, codec, train_at)
                else:
                    lazy = PackedTable()
                    restore(lazy, ids, values, conds, None, NEVER)
                    tables[kind] = lazy
                    setattr(st, kind + "s", lazy)  # the table's attribute: "agent" -> st.agents
                continue
            kind, id, cond, value = _entity_line(line, len(line) - 1)
            batch = pending.get(kind)
            if batch is not None:
                batch[0].append((id, value))
                batch[1].append(cond)
                if len(batch[0]) >= 4096:
                    _put(tables[kind], *batch)
                    pending[kind] = ([], [])
            else:
                tables[kind][id] = loads(value)
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise SnapshotError(f"snapshot line {n} (an entity or a packed kind's section) is damaged: {type(e).__name__}: {e}",
                                hint="replay from the log (or an older snapshot)") from e
    for kind, batch in pending.items():
        if batch[0]:  # (an empty put would train a restored table that had not: see _put)
            _put(tables[kind], *batch)
    got = {k: len(t) for k, t in tables.items() if t}
    if got != counts:
        held = f"{sum(got.values())} entities" if v5 else f"{n - 1} entity lines"
        raise SnapshotError(f"snapshot holds {held}, not the {sum(counts.values())} its header "
                            "counts (a truncated or damaged snapshot)", hint="replay from the log (or an older snapshot)")
    if v5 and len(ids_of) != len(KINDS):
        raise SnapshotError(f"snapshot holds sections of {len(ids_of)} kinds, not of all {len(KINDS)} (a truncated "
                            "or damaged snapshot)", hint="replay from the log (or an older snapshot)")
    return ids_of


#: the first bytes of every zstd frame
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _read_section(line: bytes, stream: IO[bytes], v5: bool = False
                  ) -> tuple[str, list[str], list[bytes], list[str], Codec | None, int | None]:
    """A kind's section (format 4: a packed kind's): its line (read) and its values (read here
    from ``stream``), checked: the CRC, the dictionary, every value's first byte (a frame's
    or JSON's) and the first frame's decompression; format 5 (``v5``): each condition's code.
    Raises ValueError (or orjson's, a subclass), TypeError or KeyError for a damaged one."""
    doc = orjson.loads(line)
    if type(doc) is not dict:
        raise ValueError("a section line that is not an object")
    kind, ids, conds, sizes, b64 = doc["kind"], doc["ids"], doc["conds"], doc["sizes"], doc["dict"]
    if not type(ids) is type(conds) is type(sizes) is list or not len(ids) == len(conds) == len(sizes):
        raise ValueError("the section's ids, conds and sizes are not lists of one length")
    if v5:
        conds = named_conditions(doc["names"], conds, kind)
    elif all(type(c) is str for c in conds):
        conds = note_conditions(conds)
    else:
        raise TypeError("a condition is not a string")
    if (type(doc["train_at"]) is not int) if kind in PACKED_KINDS else (doc["train_at"] is not None):
        raise TypeError(f"the section's train_at is not {'an integer' if kind in PACKED_KINDS else 'null'}")
    try:
        raw = b"" if b64 is None else base64.b64decode(b64, validate=True)
    except binascii.Error as e:
        raise ValueError(f"the {kind!r} section's dictionary is not base64: {e}") from None
    values, crc = _read_values(stream, sizes, crc32(raw), kind)
    if crc != doc["crc"]:
        raise ValueError(f"the {kind!r} section's values or dictionary are damaged (CRC differs)")
    codec = None
    if b64 is not None:
        try:
            codec = Codec.of_bytes(raw)
            if values:
                codec.decompress(values[0])
        except zstandard.ZstdError as e:
            raise ValueError(f"the {kind!r} section's dictionary does not decode its values: {e}") from None
        if not all(map(bytes.startswith, values, repeat(_ZSTD_MAGIC))):
            raise ValueError(f"a {kind!r} value is not a zstd frame")
    elif not (all(map(bytes.startswith, values, repeat(b"{"))) and all(map(bytes.endswith, values, repeat(b"}")))):
        raise ValueError(f"a {kind!r} value is not a JSON object")
    return kind, ids, values, conds, codec, doc["train_at"]


#: a section's values are read this many bytes at a time (about: whole values), each part
#: cut into its values and let go of, so a load never holds a section's bytes twice (the
#: large profile's pod section alone was ~14 MiB beside its values at the load's peak)
_PART_BYTES = 1 << 20


def _read_values(stream: IO[bytes], sizes: list[int], crc: int, kind: str,
                 what: str = "snapshot") -> tuple[list[bytes], int]:
    """A section's values (``sizes`` bytes each, then its newline) read from ``stream`` part by
    part, and the CRC-32 of their bytes continued from ``crc``. Raises ValueError for a
    section that ends early (a truncated snapshot, or ``what`` the section is of: a delta)."""
    values: list[bytes] = []
    i, n, total = 0, len(sizes), sum(sizes)
    while i < n:
        j, size = i, 0
        while j < n and (size < _PART_BYTES or j == i):
            size += sizes[j]
            j += 1
        part = _read(stream, size)
        if len(part) != size:
            break
        crc = crc32(part, crc)
        # cut at C speed: a read of each size (a generator of slices took ~1.5x as long)
        values.extend(map(io.BytesIO(part).read, sizes[i:j]))
        i = j
    if i < n or _read(stream, 1) != b"\n":
        raise ValueError(f"the {kind!r} section ends before its {total:,} bytes of values (a truncated {what})")
    return values, crc


def _read(stream: IO[bytes], n: int) -> bytes:
    """``n`` bytes of ``stream``, fewer only at its end (a raw stream may return less a call)."""
    got = stream.read(n)
    if len(got) == n or not got:
        return got
    parts, have = [got], len(got)
    while have < n and (more := stream.read(n - have)):
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def _put(table: dict[str, Any], items: list[tuple[str, bytes]], conds: list[str | None]) -> None:
    """A batch of a packed kind's lines into its (packed) table, with their conditions if
    every line named one (a format-2 snapshot's name none). The table trains when the batch
    takes it to its size for training, as a format-3 load does; a section (format 4 and 5)
    is restored as it rests, untrained if its fold had not trained yet (the fold trains
    between events, at its next packing: the restored state then trains there too)."""
    assert type(table) is PackedTable
    if None in conds:
        table.put_many(items)
    else:
        table.put_many(items, note_conditions(conds))  # type: ignore[arg-type]


#: an entity line's head up to its id, by kind: looked up instead of parsed
_HEADS = {b'["' + k.encode() + b'","': k for k in KINDS}


def _entity_line(line: bytes, end: int) -> tuple[str, str, str | None, bytes]:
    """The kind, id, condition (None when the line names none) and value bytes of an entity
    line ``line[:end]`` (``end``: before its newline). A head without escapes is sliced
    (inside a JSON string a quote is always escaped, so ``","`` only separates strings),
    any other parsed as JSON. Raises ValueError (or orjson's, a subclass) or TypeError for
    a line of another shape."""
    tab = line.find(b"\t", 0, end)
    if tab < 0 or line[end - 1:end] != b"}" or line[tab + 1:tab + 2] != b"{":
        raise ValueError("not [kind, id], a tab and an object ending the line")
    q = line.find(b'","', 0, tab) + 3
    kind = _HEADS.get(line[:q])
    if kind is not None and line[tab - 2:tab] == b'"]':
        rest = line[q:tab - 2]
        if b"\\" not in rest:
            parts = rest.split(b'","')
            if len(parts) == 1:
                return kind, rest.decode(), None, line[tab + 1:end]
            if len(parts) == 2:
                return kind, parts[0].decode(), parts[1].decode(), line[tab + 1:end]
    head = orjson.loads(line[:tab])
    if type(head) is not list or not 2 <= len(head) <= 3 or not all(type(x) is str for x in head):
        raise ValueError("the head is not [kind, id] or [kind, id, condition] (strings)")
    return head[0], head[1], head[2] if len(head) == 3 else None, line[tab + 1:end]


def set_position(st: ClusterState, doc: dict[str, Any]) -> None:
    """The scalars of a snapshot or delta document: position, times, recent ids, sequence."""
    st.partition = doc["partition"]
    st.offset = doc["offset"]
    st.last_occurred_at = doc["last_occurred_at"]
    st.max_occurred_at = doc["max_occurred_at"] or ""
    st.watermark = doc["watermark"] or ""
    st._recent = list(doc["recent"])
    st._seq = doc["seq"]


@contextlib.contextmanager
def _window_checked() -> Iterator[None]:
    """A dedupe window that does not decode (dedupe.py's ValueError) as a SnapshotError."""
    try:
        yield
    except ValueError as e:
        raise SnapshotError(f"damaged dedupe window: {e}", hint="replay from the log (--no-snapshots)") from None


def dedupe_window(doc: dict[str, Any], *names: str) -> list[set[int]]:
    """The digest sets ``names`` of a snapshot's or delta's ``"dedupe"`` (a version-4 one's
    keys hashed, dedupe.py). Raises SnapshotError when one is damaged."""
    d, version = doc["dedupe"], doc["reducer_version"]
    with _window_checked():
        return [decode_window(d[n], version) for n in names]


def added_digests(doc: dict[str, Any], name: str) -> set[int] | array.array[int]:
    """A delta's digests ``name`` added since its base, as written (dedupe.py's ``decode_added``).
    Raises SnapshotError when they are damaged."""
    with _window_checked():
        return decode_added(doc["dedupe"][name], doc["reducer_version"])


def window_halves(doc: dict[str, Any], window: int) -> tuple[set[int] | Recent, set[int] | Any]:
    """A snapshot's dedupe window as the fold keeps it: the new half, the old half (format 6:
    each over its stored bitmap, checked by their CRC, nothing marked). Raises SnapshotError
    when it is damaged."""
    if doc["format"] != FORMAT:
        return new_half(doc, "new", window), dedupe_window(doc, "old")[0]
    d, version = doc["dedupe"], doc["reducer_version"]
    with _window_checked():
        if type(d) is not dict:
            raise ValueError("the dedupe window is not an object")
        new_bits, old_bits = (decode_bits(d.get(name)) for name in ("new_bits", "old_bits"))
        if crc32(old_bits or b"", crc32(new_bits or b"")) != d.get("bits_crc"):
            raise ValueError("its bitmaps are damaged (CRC differs)")
        return (decode_half(d["new"], version, window, new_bits),
                decode_old_half(d["old"], version, window, old_bits))


def new_half(doc: dict[str, Any], name: str, window: int) -> set[int] | Recent:
    """The window's new half ``name`` of a snapshot's or delta's ``"dedupe"`` as the fold keeps it
    (dedupe.py's ``decode_half``). Raises SnapshotError when it is damaged."""
    with _window_checked():
        return decode_half(doc["dedupe"][name], doc["reducer_version"], window)


def set_aggregates(st: ClusterState, doc: dict[str, Any], ids: dict[str, list[str]] | None = None, *,
                   filed: bool = False) -> None:
    """What a snapshot or delta document holds whole (terminal indexes, allocation, since
    format 2 the pod membership indexes, since format 5 the selector indexes), then the other
    derived indexes rebuilt. ``ids``: a format-5 or -6 snapshot's section ids (its indexes name
    pods, RCs and services by their place there). ``filed``: the selector and task-id
    indexes are up to date already (a delta's, delta.py), not rebuilt."""
    from kmevents.reducer.membership import (  # they import this module's users
        rebuild_indexes,
        rebuild_selectors,
    )
    from kmevents.reducer.taskids import rebuild_task_index

    columns = doc["format"] == FORMAT
    for kind in RETAINED_KINDS:
        order = st._terminal[kind] = new_index(st._limits[kind])
        got = doc["terminal"].get(kind)
        if not got:
            continue
        if columns:  # format 6: [ids, times]
            ids_, times = got
            if len(ids_) != len(times):
                raise SnapshotError(f"the {kind!r} retention order's ids and times differ in length",
                                    hint="replay from the log (or an older snapshot)")
            order.update(zip(ids_, times, strict=True))
        else:
            order.update(got)  # ([id, time] pairs: at C speed, ~2x a generator's)
    set_totals(st, doc)
    idx = doc.get("indexes")
    if idx is None:  # format 1: every pod and task decoded to rebuild them
        rebuild_indexes(st)
        rebuild_task_index(st)
        return
    if ids is not None:
        _positional(st, idx, ids)
        rebuild_task_index(st, idx["task_id_exceptions"])
        return
    if not filed:
        rebuild_selectors(st)
    pod = _shared_ids(st.pods)
    st._pods_by_ns = {ns: set(map(pod, ids, ids)) for ns, ids in idx["pods_by_ns"].items()}
    st._rc_members = {rid: (Members.of(map(pod, run, run)), Members.of(map(pod, other, other)))
                      for rid, (run, other) in idx["rc_members"].items()}
    st._svc_members = {sid: Members.of(map(pod, ids, ids)) for sid, ids in idx["svc_members"].items()}
    if not filed:
        rebuild_task_index(st, idx["task_id_exceptions"])


def set_totals(st: ClusterState, doc: dict[str, Any]) -> None:
    """The agents' allocation and contributions of a snapshot or delta document, and the
    offer index rebuilt."""
    st._alloc = doc["allocation"]
    st._contrib = {aid: (c[0], c[1]) for aid, c in doc["contributions"].items()}
    st._stale = set()
    rebuild_offer_index(st)


def _shared_ids(table: dict[str, Any]) -> Any:
    """A lookup ``(id, default) -> the table's own key object`` for ids read from a header: an
    index then refers to the key's str instead of holding a copy (a pod id is in three
    indexes; ~35 MiB of copies at the large profile's 157k pods)."""
    return {k: k for k in dict.keys(table)}.get


def _positional(st: ClusterState, idx: dict[str, Any], ids: dict[str, list[str]]) -> None:
    """The membership and selector indexes of a format-5 header (:func:`positional_indexes`).
    Raises SnapshotError for a damaged one."""
    def members(of: list[str]) -> Any:
        get = of.__getitem__

        def ids_at(ps: list[Any]) -> set[str]:
            if ps and min(ps) < 0:  # (TypeError: an id kept as itself, see _positions)
                raise IndexError("a negative position")
            return set(map(get, ps))

        def at(ps: list[Any]) -> set[str]:
            try:
                return ids_at(ps)
            except TypeError:
                return ids_at([p for p in ps if type(p) is not str]) | {p for p in ps if type(p) is str}
        return at

    def selectors(doc: dict[str, Any], at: Any) -> dict[str, Any]:
        return {ns: {None if a is None else (a[0], a[1]): at(ps) for a, ps in by_anchor}
                for ns, by_anchor in doc.items()}

    try:
        pod, rc, svc = members(ids["pod"]), members(ids["rc"]), members(ids["service"])
        st._pods_by_ns = {ns: pod(ps) for ns, ps in idx["pods_by_ns"].items()}
        st._rc_members = {rid: (Members.of(pod(run)), Members.of(pod(other)))
                          for rid, (run, other) in idx["rc_members"].items()}
        st._svc_members = {sid: Members.of(pod(ps)) for sid, ps in idx["svc_members"].items()}
        st._rc_sel = selectors(idx["rc_sel"], rc)
        st._svc_sel = selectors(idx["svc_sel"], svc)
    except (IndexError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise SnapshotError(f"the snapshot header's indexes are damaged: {type(e).__name__}: {e}",
                            hint="replay from the log (or an older snapshot)") from e


def positional_indexes(st: ClusterState, ids: dict[str, list[str]]) -> dict[str, Any]:
    """The indexes of a format-5 header: those of :func:`indexes`, each pod, RC or service named
    by its place in its kind's (sorted) section ids, so a load builds the sets from the ids
    it already holds (an id not in its table, which a fold never leaves, is kept as itself),
    and the selector indexes (membership.sel_add: ``{namespace: [[anchor pair or null,
    [positions]], ...]}``, anchors sorted by their JSON, a number or boolean written as the
    number it equals), which a load then decodes no RC or service to rebuild."""
    from kmevents.reducer.taskids import key_exceptions

    pod, rc, svc = (dict(zip(ids[k], range(len(ids[k])), strict=True)) for k in ("pod", "rc", "service"))
    return {
        "pods_by_ns": {ns: _positions(m, pod) for ns, m in st._pods_by_ns.items()},
        "rc_members": {rid: [_positions(run, pod), _positions(other, pod)] for rid, (run, other) in st._rc_members.items()},
        "svc_members": {sid: _positions(m, pod) for sid, m in st._svc_members.items()},
        "rc_sel": _selector_doc(st._rc_sel, rc),
        "svc_sel": _selector_doc(st._svc_sel, svc),
        "task_id_exceptions": key_exceptions(st),
    }


def _positions(members: Any, at: dict[str, int]) -> list[Any]:
    got = list(map(at.get, members))
    if None in got:
        return sorted(p for p in got if p is not None) + sorted(i for i in members if i not in at)
    got.sort()
    return got


def _selector_doc(index: dict[str, dict[Any, set[str]]], at: dict[str, int]) -> dict[str, Any]:
    out = {}
    for ns, by_anchor in index.items():
        rows = [[None if a is None else [a[0], _number(a[1])], _positions(keys, at)] for a, keys in by_anchor.items()]
        out[ns] = sorted(rows, key=lambda r: orjson.dumps(r[0]))
    return out


def _number(v: Any) -> Any:
    """An anchor's value as written: equal anchors (``1``, ``1.0``, ``true``) file alike, so
    one JSON for them all, whichever the fold met first."""
    if type(v) is bool or (type(v) is float and v.is_integer()):
        return int(v)
    return v


def indexes(st: ClusterState) -> dict[str, Any]:
    """The pod membership indexes as a snapshot or delta holds them (sorted, canonical), and
    the task ids that their entity's key does not end with (``taskids.rebuild_task_index``):
    a load then decodes no pod or task to rebuild them (1.5 s of a cold read at the large
    profile's 144k pods)."""
    from kmevents.reducer.taskids import key_exceptions

    return {
        "pods_by_ns": {ns: sorted(ids) for ns, ids in st._pods_by_ns.items()},
        "rc_members": {rid: [sorted(run), sorted(other)] for rid, (run, other) in st._rc_members.items()},
        "svc_members": {sid: sorted(ids) for sid, ids in st._svc_members.items()},
        "task_id_exceptions": key_exceptions(st),
    }


def snapshot_document(data: bytes) -> dict[str, Any]:
    """A snapshot (any format) as one checked document, its entities decoded under
    ``"entities": {kind: {id: value}}`` for every kind (what a diff of two snapshots reads)."""
    stream = io.BytesIO(data)
    doc = _document(stream.readline().rstrip(b"\n"))
    ents = doc.setdefault("entities", {})
    ids_of: dict[str, list[str]] = {}
    for line in stream:
        if line[:1] == b"{":
            try:
                kind, ids, values, _, codec, _ = _read_section(line, stream, doc["format"] in _ALL_SECTIONS)
            except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as e:
                raise SnapshotError(f"a packed kind's section is damaged: {type(e).__name__}: {e}",
                                    hint="replay from the log (or an older snapshot)") from e
            plain = (lambda v: v) if codec is None else codec.decompress
            ents[kind] = {i: orjson.loads(plain(v)) for i, v in zip(ids, values, strict=True)}
            ids_of[kind] = ids
        elif line.strip():
            kind, id, _, value = _entity_line(line, len(line.rstrip(b"\n")))
            ents.setdefault(kind, {})[id] = orjson.loads(value)
    for kind in KINDS:
        ents.setdefault(kind, {})
    if doc["format"] == FORMAT:  # the retention order as pairs, as formats before 6 (the bitmaps stay: verify compares them)
        doc["terminal"] = {k: [list(p) for p in zip(*v, strict=True)] for k, v in doc["terminal"].items()}
    if doc["format"] in _ALL_SECTIONS:  # the indexes as format 4 holds them: ids, not positions
        st = ClusterState(doc["cluster"])
        _positional(st, doc["indexes"], {k: ids_of.get(k, []) for k in ("pod", "rc", "service")})
        doc["indexes"] = {**indexes(st), "task_id_exceptions": doc["indexes"]["task_id_exceptions"]}
    return doc


def snapshot_format(data: bytes) -> str | None:
    """The format snapshot bytes name in their header (None: not a snapshot's header)."""
    nl = data.find(b"\n")
    try:
        doc = orjson.loads(data if nl < 0 else data[:nl])
    except orjson.JSONDecodeError:
        return None
    return doc.get("format") if type(doc) is dict else None


def snapshot_entities(data: bytes) -> dict[str, dict[str, Any]]:
    """Every entity a snapshot holds, decoded: ``{kind: {id: value}}`` for every kind."""
    return dict(snapshot_document(data)["entities"])


def chain_hash_of(data: bytes) -> str | None:
    """The chain hash recorded in snapshot bytes (without loading the state)."""
    nl = data.find(b"\n")
    doc = orjson.loads(data if nl < 0 else data[:nl])
    return doc.get("chain_hash") if type(doc) is dict else None
