"""Full snapshots built from the previous one's sections and the changes since (issue 17).

A format-6 snapshot (snapshot.py) is a header and one section per kind: the kind's ids
sorted, each value as it rests and its condition. Between two full snapshots of the
worker (every 20,000 events) only ~10-15 % of the large profile's entities change, yet
``_dump_sections`` re-reads, sorts and classifies all of them (1.5 s of a forked child at 1.5M
events, and the fork's page copies in the worker: BENCHMARKS.md, "Where the derive's CPU
goes at full size"). :class:`Sections` keeps each kind's ids, values and conditions as the
last snapshot it built wrote them, and builds the next from those and the entities marked
changed since, which the state tracks for its deltas already (``Base.changed``, filled by
``take_dirty``; delta.py relies on the same marks). The bytes are ``_dump_sections``'s, byte for
byte (a property test folds at random and compares).

Worked example: the last build wrote the pods ``[a, c, d]`` with values ``[A, C, D]`` and
the state's base was marked there; since then ``c`` changed to ``C'``, ``b`` was created
and ``d`` removed, so the base's changed set holds ``("pod", "b"), ("pod", "c"),
("pod", "d")``. The next build walks the changed ids in order through the old ids: it
keeps ``[a]`` (a slice), adds ``b`` (in the table now, not before), replaces ``c`` (in
both) and drops ``d`` (gone from the table): ``[a, b, c]``, ``[A, B, C']``. Only ``b``,
``c`` and ``d`` were read from the table.

A kind is rebuilt whole (as ``_dump_sections`` does) when its table is not the object the last
build read, its dictionary or training size moved (training recompresses every value),
or the state's base is not the one marked right after the last build (the changes are
then not known): after a load, a fork's freeze, a failed store (``drop_base``).

What it holds: each kind's ids, values and conditions lists, the values the table's own
bytes objects (a pack that re-encodes an unchanged value gives an equal frame, and the
next change replaces it), so ~10 MiB of lists at the large profile's 1.5M events beside
the state, not a copy of its 114 MB.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import orjson

import kmevents.reducer.packed as packed_module
from kmevents.checksum import crc32
from kmevents.reducer.aggregates import materialize
from kmevents.reducer.conditions import condition
from kmevents.reducer.packed import (
    PACKED_KINDS,
    Codec,
    PackedTable,
    _canonical,
    _name,
    as_resting,
    canonical_items,
    pack,
    resting_items,
)
from kmevents.reducer.snapshot import (
    _SORT,
    header_fields,
    old_half_fields,
    positional_indexes,
    section_line,
    window_fields,
)
from kmevents.reducer.state import KINDS, Base, ClusterState

_NONE: set[str] = set()  # (no id of the kind changed)


class _Kind:
    """One kind's section as the last build wrote it, and what it was read from."""

    __slots__ = ("table", "resting", "codec", "train_at", "ids", "values", "conds")

    def __init__(self, table: dict[str, Any], resting: bool, codec: Codec | None, train_at: int | None,
                 ids: list[str], values: list[bytes], conds: list[str]) -> None:
        self.table, self.resting, self.codec, self.train_at = table, resting, codec, train_at
        self.ids, self.values, self.conds = ids, values, conds


class Sections:
    """The sections of the last full snapshot built of one state, to build its next (see the
    module docstring). One per state; ``build`` then ``st.mark_base()`` at the same offset."""

    __slots__ = ("_kinds", "_state", "_after", "_offset", "_old", "_old_fields")

    def __init__(self) -> None:
        self._kinds: dict[str, _Kind] = {}
        self._state: ClusterState | None = None
        #: the last build's state's base when it was built (its ``mark_base`` follows the build:
        #: the next build takes the base marked after this one as the start of the changes)
        self._after: Base | None = None
        #: the state's offset at the last build (its base must be marked there)
        self._offset = -2
        #: the dedupe window's old half at the last build, and its text and bitmap (snapshot.old_half_fields)
        self._old: Any = None
        self._old_fields: tuple[str, bytes | None] = ("", None)

    def build(self, st: ClusterState, chain_hash: str | None = None) -> bytes:
        """The state's format-6 snapshot bytes (``snapshot.dump``'s), from the last build's
        sections and the entities marked changed since where it can. The caller marks the
        base (``st.mark_base``) right after, before the fold goes on: the next build reads
        the changes since from it."""
        materialize(st)  # before the sections: it writes agents and roles
        changed = self._changes(st)
        self._state, self._after, self._offset = st, st._base, st.offset
        parts = [b""]  # (the header's place)
        ids = {}
        for kind in sorted(KINDS):
            k, line = self._section(kind, st._tables[kind], None if changed is None else changed.get(kind, _NONE))
            ids[kind] = k.ids
            parts += (b"\n", line, b"\n")
            parts += k.values
        head = {**header_fields(st, chain_hash, dedupe=False), "indexes": positional_indexes(st, ids),
                "dedupe": window_fields(st, old=self._old_half(st))}
        parts[0] = orjson.dumps(head, option=_SORT)
        parts.append(b"\n")
        # (= snapshot._dump_sections's b"\n".join([head, *sections, b""]), each section its line, a newline
        # and its values: copied once, not into a blob for each kind first, which at 1.5M events
        # held the snapshot's 116 MB twice at the end of a build)
        return b"".join(parts)

    def _old_half(self, st: ClusterState) -> tuple[str, bytes | None]:
        """The dedupe window's old half as a header holds it (text, bitmap): the fold never changes
        it, only replaces it at a rotation (apply.py), so the last build's while it is the same object."""
        old = st._seen_old
        if old is not self._old:
            self._old, self._old_fields = old, old_half_fields(st)
        return self._old_fields

    def _changes(self, st: ClusterState) -> dict[str, set[str]] | None:
        """The ids changed since the last build, by kind (None: not known, read every kind)."""
        base = st._base
        if st is not self._state or base is None or base is self._after or not self._kinds:
            return None
        if base.state_offset != self._offset:
            return None
        out: dict[str, set[str]] = {}
        for kind, id in base.changed | st._dirty:
            s = out.get(kind)
            if s is None:
                out[kind] = {id}
            else:
                s.add(id)
        return out

    def _section(self, kind: str, table: dict[str, Any], changed: set[str] | None) -> tuple[_Kind, bytes]:
        resting = type(table) is PackedTable and kind in PACKED_KINDS
        codec: Codec | None
        if resting:
            pack(table)
            codec, train_at = table.codec, table._train_at  # type: ignore[attr-defined]
        else:
            codec, train_at = None, packed_module.TRAIN_AT if kind in PACKED_KINDS else None
        prev = self._kinds.get(kind)
        if (changed is None or prev is None or prev.table is not table or prev.resting != resting
                or prev.codec is not codec or prev.train_at != train_at):
            k = self._whole(kind, table, resting, codec, train_at)
        else:
            k = prev
            if changed:
                _merge(k, table, changed)
        self._kinds[kind] = k
        return k, _line(kind, k, codec, train_at)

    def _whole(self, kind: str, table: dict[str, Any], resting: bool, codec: Codec | None,
               train_at: int | None) -> _Kind:
        """A kind read whole, as ``snapshot._section`` reads it."""
        if resting:
            ids, values = resting_items(table)  # type: ignore[arg-type]
        elif table:
            ids, values = map(list, zip(*canonical_items(table), strict=True))
        else:
            ids, values = [], []
        get = _condition_reader(table)
        return _Kind(table, resting, codec, train_at, ids, values, [get(i) for i in ids])


def _merge(k: _Kind, table: dict[str, Any], changed: set[str]) -> None:
    """``k``'s lists brought up to date for the ``changed`` ids of its table (module docstring's
    worked example): the unchanged runs copied as slices, each changed id read from the table."""
    old_ids, old_values, old_conds = k.ids, k.values, k.conds
    ids: list[str] = []
    values: list[bytes] = []
    conds: list[str] = []
    new: list[int] = []  # where the changed values went
    here = dict.__contains__
    value = _value_reader(table, k.resting)
    get_cond = _condition_reader(table)
    at, n = 0, len(old_ids)
    for id in sorted(changed):
        pos = bisect_left(old_ids, id, at, n)
        if pos > at:
            ids += old_ids[at:pos]
            values += old_values[at:pos]
            conds += old_conds[at:pos]
        at = pos + 1 if pos < n and old_ids[pos] == id else pos
        if here(table, id):
            ids.append(id)
            new.append(len(values))
            values.append(value(id))
            conds.append(get_cond(id))
    if at < n:
        ids += old_ids[at:]
        values += old_values[at:]
        conds += old_conds[at:]
    if k.resting and k.codec is not None and new:  # a changed value resting plain beside a codec: compressed
        for i, v in zip(new, as_resting(table, [values[i] for i in new]), strict=True):  # type: ignore[arg-type]
            values[i] = v
    k.ids, k.values, k.conds = ids, values, conds


def _value_reader(table: dict[str, Any], resting: bool) -> Any:
    """``id -> the value's bytes as its section writes them`` (a resting one as it rests, a
    plain or lazy table's canonical bytes)."""
    get = dict.__getitem__
    if resting:
        return lambda id: get(table, id)
    return lambda id: _canonical(table, get(table, id))


def _condition_reader(table: dict[str, Any]) -> Any:
    """``id -> its value's condition``, as ``packed.conditions`` gives it (a resting value's
    from the table's notes when they know it, else decoded and noted)."""
    get = dict.__getitem__
    if type(table) is not PackedTable:
        return lambda id: condition(get(table, id))
    notes, hot, decode = table.notes, table._hot, table._decode

    def read(id: str) -> str:
        v = get(table, id)
        if id in hot or type(v) is not bytes:
            return condition(v)
        c = notes.get(id)
        if c is None:
            c = _name(condition(decode(v)))
            notes.note(id, c)
        return c
    return read


def _line(kind: str, k: _Kind, codec: Codec | None, train_at: int | None) -> bytes:
    """The line of the kind's section (``snapshot.section_line``, as ``_dump_sections`` writes it); the
    CRC continued value by value, with no blob of them."""
    crc = crc32(b"" if codec is None else codec.raw)
    for v in k.values:
        crc = crc32(v, crc)
    return section_line(kind, k.ids, k.conds, list(map(len, k.values)), codec, train_at, crc)
