"""Does a stored format-6 (or -5) snapshot hold exactly a state? Answered without encoding the state.

``verify`` compares every stored snapshot with its own fold at the snapshot's offset. Encoding
the fold's state to compare bytes (``dump(st) == data``) cost ~0.8-1.0 s a full snapshot at the
large profile's 1.5M events (77 of them: 37 % of a ``verify --full``): building 117 MB, sorting
and writing 330k ids, turning 480k index members into positions. :func:`holds` reads the stored
bytes in place instead and checks them against the state as it rests:

- each packed kind's section (pods, tasks, nodes, executors, services): the stored ids strictly
  ascending and each one in the table (with equal counts: the table's sorted ids), each stored
  value equal to the table's resting value at its place (``bytes.startswith`` at an offset, no
  slice), the sizes, the conditions (by name), the dictionary, ``train_at`` and the CRC;
- the other kinds' sections (agents, offers, ... small): byte for byte against the section
  ``dump`` writes;
- the header but its indexes: equal to the state's, as parsed JSON (so the chain hash too);
- the header's indexes: each member list strictly ascending positions whose ids (the section's)
  are all members of the fold's set, with equal counts; the selector indexes and the task-id
  exceptions as ``dump`` writes them.

``True`` means the bytes load (everything a load checks is equal to what the fold's own dump
holds) and hold the state: what ``dump(st, chain_hash) == data`` or, for bytes that differ, a
load and a field-by-field comparison would conclude. ``False`` only means "not shown equal
here" (another layout, damage, a differing value): the caller then checks the slow way, which
says what differs. Like ``dump``, it packs the state's hot values and brings its aggregates up
to date (no change to its content).

**By changes** (:func:`match` with ``since``): verify keeps what :func:`match` returns for a
full snapshot P it showed equal (:class:`Held`: P's bytes and parsed sections) and marks the
fold's state there as the base of the changes that follow (:func:`track_from`). The next full
snapshot N is then checked against P and the entities changed since, not against every value
of the state: in each section, between consecutive changed ids (bisected into both sorted id
lists), N's ids, sizes and conditions (by name) must be P's and N's value bytes P's (one
``bytes.startswith`` of a memoryview over each run: sequential bytes, not 330k values read
where they lie in the heap); each changed id N holds is compared with the table as above,
each it lacks must be gone from the table; the dictionary must be P's and the table's,
``train_at`` the table's, the CRC N's own. By induction: P held the state at P, and an entity
the fold did not mark changed is what it was, so its bytes in N must be P's. (The fold marks
every change: what the worker writes to etcd and its deltas hold rest on the same marks; a
change it failed to mark would show as a run unlike P's, not pass.) A section not shown equal
so (a table that trained since: another dictionary) is checked value by value. The header
and its indexes are checked as above; the dedupe window's old half, while the window has not
rotated since P, as P's text (and bitmap). A format-6 header's dedupe bitmaps are checked
against the state's halves (dedupe.half_bits: copies of the fold's own bitmaps), and their CRC.
"""

from __future__ import annotations

import base64
from bisect import bisect_left
from collections.abc import Collection, Mapping
from itertools import accumulate, islice, repeat
from operator import lt
from typing import Any

import orjson
import zstandard

import kmevents.reducer.packed as packed_module
from kmevents.checksum import crc32
from kmevents.reducer.aggregates import materialize
from kmevents.reducer.conditions import condition
from kmevents.reducer.dedupe import decode_bits, half_bits
from kmevents.reducer.packed import (
    PACKED_KINDS,
    PackedTable,
    as_resting,
    conditions,
    pack,
    packed_bytes,
)
from kmevents.reducer.snapshot import (
    FORMAT,
    FORMAT_5,
    SnapshotError,
    _b64,
    _section,
    _selector_doc,
    coded_section_line,
    dedupe_window,
    header_fields,
)
from kmevents.reducer.state import KINDS, Base, ClusterState
from kmevents.reducer.taskids import key_exceptions

_SECTION_KEYS = frozenset({"kind", "ids", "conds", "names", "sizes", "dict", "train_at", "crc"})
_SORT = orjson.OPT_SORT_KEYS
_INDEX_KEYS = frozenset({"pods_by_ns", "rc_members", "svc_members", "rc_sel", "svc_sel", "task_id_exceptions"})
#: the header's dedupe window's keys, by format
_WINDOW_KEYS = {FORMAT: frozenset({"new", "new_bits", "old", "old_bits", "bits_crc"}), FORMAT_5: frozenset({"new", "old"})}
#: how a format-5 header names its format (formats sort first among the keys after "dedupe")
_FORMAT_5_FIELD = b'"format":"' + FORMAT_5.encode() + b'"'



class _Differs(Exception):
    """Not shown equal (internal)."""


#: a section as parsed: ids, sizes, condition codes, condition names, the dictionary (base64
#: or None), train_at, and where its values start in the snapshot's bytes
_Sec = tuple[list[str], list[int], list[int], list[str], "str | None", "int | None", int]


class Held:
    """A snapshot :func:`match` showed to hold a state: its bytes and its sections as parsed,
    for checking the next full snapshot of the same fold by its changes (``since``).
    ``base``: the state's base of changes marked right after the check (:func:`track_from`);
    only a state tracking its changes from that very base is checked against it."""

    __slots__ = ("data", "sections", "window", "by_changes", "base")

    def __init__(self, data: bytes, sections: dict[str, _Sec], window: dict[str, Any], by_changes: bool) -> None:
        self.data = data
        self.sections = sections
        #: the header's dedupe window as stored (text)
        self.window = window
        #: shown equal by the changes since the snapshot before (else value by value)
        self.by_changes = by_changes
        self.base: Base | None = None


def track_from(st: ClusterState, held: Held | None, offset: int) -> Held | None:
    """``st`` (whose full snapshot at ``offset`` was just shown equal, ``held`` if by
    :func:`match`) becomes the base of the changes tracked from here on (deltas name it as
    their base); returns what to check the next full snapshot against (None: nothing)."""
    st.take_dirty()
    st.mark_base(offset)
    if held is not None:
        held.base = st._base
    return held


def holds(st: ClusterState, data: bytes, chain_hash: str | None = None) -> bool:
    """Whether ``data`` is a format-5 snapshot that loads and holds exactly ``st`` at ``chain_hash``
    (see the module docstring). Never raises for damaged bytes: they are not shown equal."""
    return match(st, data, chain_hash) is not None


def match(st: ClusterState, data: bytes, chain_hash: str | None = None, since: Held | None = None) -> Held | None:
    """:func:`holds`, returning what the next check by changes needs (None: not shown equal).
    ``since``: the last full snapshot shown equal to this fold; used when ``st`` tracks its
    changes from it (else every value is read, as :func:`holds` does)."""
    try:
        try:
            return _holds(st, data, chain_hash, since)
        except _NotByChanges:  # a section not shown equal by changes: read every value
            return _holds(st, data, chain_hash, None)
    except _ERRORS:
        return None


#: what damaged bytes raise (orjson.JSONDecodeError is a ValueError)
_ERRORS = (_Differs, SnapshotError, ValueError, TypeError, KeyError, IndexError, AttributeError, zstandard.ZstdError)


class _NotByChanges(_Differs):
    """A section not shown equal by changes (internal): it may still hold, every value read."""


def _holds(st: ClusterState, data: bytes, chain_hash: str | None, since: Held | None) -> Held:
    materialize(st)
    nl = data.find(b"\n")
    if nl <= 0:
        raise _Differs
    fmt = FORMAT_5 if data.find(_FORMAT_5_FIELD, 0, nl) >= 0 else FORMAT
    mine = header_fields(st, chain_hash, dedupe=False, pairs=tuple, format=fmt)
    idx, window = _header(data, nl, mine)
    changed = _changed_since(st, since)
    pos = nl + 1
    sections: dict[str, _Sec] = {}
    for kind in sorted(KINDS):
        table = st._tables[kind]
        if changed is not None and since is not None and kind in since.sections:
            try:
                sections[kind], pos = _section_by_changes(kind, table, data, pos, since.sections[kind], since.data,
                                                          changed.get(kind, []))
            except _ERRORS as e:
                raise _NotByChanges from e
        else:
            sections[kind], pos = _section_holds(kind, table, data, pos)
    if pos != len(data):
        raise _Differs  # bytes after the last section
    if type(idx) is not dict or idx.keys() != _INDEX_KEYS or type(window) is not dict or window.keys() != _WINDOW_KEYS[fmt]:
        raise _Differs
    # the dedupe window's digests as sets (decoded: cheaper than sorting the state's to encode);
    # the old half is replaced only when the window rotates: while it has not since the held
    # snapshot, it is that one's, text for text
    halves = ["new", "old"]
    if changed is not None and since is not None and st._base is not None and st._rotations == st._base.rotations:
        if window["old"] != since.window["old"] or window.get("old_bits") != since.window.get("old_bits"):
            raise _Differs
        halves = ["new"]
    got = dedupe_window({"dedupe": window, "reducer_version": mine["reducer_version"]}, *halves)
    if got != [st._seen_new, st._seen_old][:len(halves)]:
        raise _Differs
    if fmt == FORMAT:
        _bitmaps_hold(st, window, old_checked=len(halves) == 1)
    _indexes_hold(st, idx, {kind: sec[0] for kind, sec in sections.items()})
    return Held(data, sections, window, changed is not None)


def _bitmaps_hold(st: ClusterState, window: dict[str, Any], *, old_checked: bool) -> None:
    """A format-6 window's bitmaps and their CRC are the state's halves' (``old_checked``: the
    old half's text and bitmap are the last snapshot's shown equal, unchanged since)."""
    w = st._dedupe_window
    new = half_bits(st._seen_new, w)
    if old_checked:
        old = decode_bits(window["old_bits"])
    else:
        old = half_bits(st._seen_old, w)
        if window["old_bits"] != _b64(old):
            raise _Differs
    if window["new_bits"] != _b64(new) or window["bits_crc"] != crc32(old or b"", crc32(new or b"")):
        raise _Differs


def _header(data: bytes, nl: int, mine: dict[str, Any]) -> tuple[Any, Any]:
    """The header (``data[:nl]``) checked against the state's fields ``mine`` (all but its indexes
    and dedupe window): those two as stored. The header as the fold's dump writes it (keys
    sorted, no spaces) is compared as bytes around them, and only they are parsed (the rest
    is ~6 MB of JSON at the large profile: parsing and comparing it as objects cost ~0.2 s a
    snapshot, the bytes ~0.02 s); other bytes are parsed whole and compared as JSON."""
    before = orjson.dumps({k: v for k, v in mine.items() if k < "dedupe"}, option=_SORT)
    middle = orjson.dumps({k: v for k, v in mine.items() if "dedupe" < k < "indexes"}, option=_SORT)
    after = orjson.dumps({k: v for k, v in mine.items() if k > "indexes"}, option=_SORT)
    # {<before>,"dedupe":<window>,<middle>,"indexes":<indexes>,<after>}
    head = before[:-1] + b',"dedupe":'
    w = len(head)
    w_end = data.find(b"}", w, nl) + 1  # (base64 holds no brace)
    mid = b"," + middle[1:-1] + b',"indexes":'
    tail = b"," + after[1:]
    i = w_end + len(mid)
    i_end = nl - len(tail)
    if (w_end > w and i < i_end and data.startswith(head) and data.startswith(mid, w_end)
            and data.startswith(tail, i_end)):
        view = memoryview(data)
        try:
            return orjson.loads(view[i:i_end]), orjson.loads(view[w:w_end])
        except ValueError:
            pass  # (orjson's error: parsed whole below, as other bytes are)
    doc = orjson.loads(memoryview(data)[:nl])
    if type(doc) is not dict:
        raise _Differs
    idx, window = doc.pop("indexes", None), doc.pop("dedupe", None)
    if doc != orjson.loads(orjson.dumps(mine)):  # (``mine``'s tuples as the lists JSON gives)
        raise _Differs
    return idx, window


def _changed_since(st: ClusterState, since: Held | None) -> dict[str, list[str]] | None:
    """The ids of each kind the fold changed since ``since`` (sorted), or None when ``st`` does
    not track its changes from it."""
    base = st._base
    if since is None or base is None or since.base is not base:
        return None
    out: dict[str, list[str]] = {}
    for kind, id in base.changed | st._dirty:  # (the dirty set joins the base's at the next take)
        out.setdefault(kind, []).append(id)
    for ids in out.values():
        ids.sort()
    return out


def _section_doc(kind: str, data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """The section line of ``kind`` at ``pos`` parsed and its shape checked; where it ends."""
    end = data.find(b"\n", pos)
    if end < 0:
        raise _Differs
    doc = orjson.loads(memoryview(data)[pos:end])
    if type(doc) is not dict or doc.keys() != _SECTION_KEYS or doc["kind"] != kind:
        raise _Differs
    ids, sizes, codes, names = doc["ids"], doc["sizes"], doc["conds"], doc["names"]
    if not (type(ids) is type(sizes) is type(codes) is type(names) is list) or not len(ids) == len(sizes) == len(codes):
        raise _Differs
    if (codes and min(codes) < 0) or not all(type(c) is str for c in names):
        raise _Differs
    return doc, end


def _codec_of(kind: str, table: dict[str, Any]) -> tuple[bytes, str | None, int | None]:
    """What a section of ``table`` holds for its dictionary (its bytes, as base64) and train_at."""
    if kind in PACKED_KINDS and type(table) is PackedTable:
        codec = table.codec
        raw = b"" if codec is None else codec.raw
        return raw, (None if codec is None else base64.b64encode(raw).decode()), table._train_at
    return b"", None, (packed_module.TRAIN_AT if kind in PACKED_KINDS else None)


def _section_holds(kind: str, table: dict[str, Any], data: bytes, pos: int) -> tuple[_Sec, int]:
    """The section of ``kind`` at ``pos`` checked against ``table``: the section as parsed and
    where the next section starts."""
    if kind not in PACKED_KINDS or type(table) is not PackedTable:
        ids, mine = _section(kind, table, v5=True)
        after = pos + len(mine)
        if not data.startswith(mine, pos) or data[after:after + 1] != b"\n":
            raise _Differs
        doc, end = _section_doc(kind, data, pos)  # (equal to the one written: kept for the next check)
        return (doc["ids"], doc["sizes"], doc["conds"], doc["names"], doc["dict"], doc["train_at"], end + 1), after + 1
    doc, end = _section_doc(kind, data, pos)
    ids, sizes, codes, names = doc["ids"], doc["sizes"], doc["conds"], doc["names"]
    n = dict.__len__(table)
    if len(ids) != n:
        raise _Differs
    # strictly ascending and all in the table, as many as it holds: its ids sorted
    if not all(map(lt, ids, islice(ids, 1, None))):
        raise _Differs
    pack(table)  # as dump does: the hot values (none between a fold's events) rest as bytes
    # (KeyError: an id not in the table)
    values = as_resting(table, list(map(dict.__getitem__, [table] * n, ids)))
    raw, b64, train_at = _codec_of(kind, table)
    if doc["dict"] != b64 or doc["train_at"] != train_at or sizes != list(map(len, values)):
        raise _Differs
    start = end + 1
    stop = start + sum(sizes)
    if data[stop:stop + 1] != b"\n" or not all(map(data.startswith, values, accumulate(sizes, initial=start))):
        raise _Differs
    if crc32(memoryview(data)[start:stop], crc32(raw)) != doc["crc"]:
        raise _Differs
    notes = table.notes
    # (never after a pack, but a condition must be known)
    of = notes.get if not table._hot and notes.complete(n) else dict(conditions(table)).__getitem__
    if list(map(names.__getitem__, codes)) != list(map(of, ids)):
        raise _Differs
    return (ids, sizes, codes, names, doc["dict"], doc["train_at"], start), stop + 1


def _section_by_changes(kind: str, table: dict[str, Any], data: bytes, pos: int, was: _Sec, was_data: bytes,
                        changed: list[str]) -> tuple[_Sec, int]:
    """The section of ``kind`` at ``pos`` checked against the same section of a snapshot that
    held the fold's state (``was``, in ``was_data``) and the ids changed since (sorted): the
    runs between them byte for byte, the changed ones against ``table`` (module docstring).
    The section's line is not parsed: its ids, sizes and conditions are made from ``was``'s
    (slices) and the changed ones, and the line they make compared as bytes (the parse was
    ~60 ms of each full snapshot at the large profile, its 330k ids new strings)."""
    end = data.find(b"\n", pos)
    if end < 0:
        raise _Differs
    pids, psizes, pcodes, pnames, pdict, _, pstart = was
    raw, b64, train_at = _codec_of(kind, table)
    if pdict != b64:
        raise _Differs  # (another dictionary: the unchanged values' frames are not P's)
    if type(table) is PackedTable and kind in PACKED_KINDS:
        pack(table)
    # the changed ids the table holds: their values as a section rests them, their conditions' codes
    here = [c for c in changed if dict.__contains__(table, c)]
    values = _resting_many(kind, table, here)
    names = list(pnames)
    code_of = {name: i for i, name in enumerate(names)}
    here_codes = []
    for i, value in zip(here, values, strict=True):
        cond = _condition(table, i, value)
        code = code_of.get(cond)
        if code is None:
            code = code_of[cond] = len(names)
            names.append(cond)
        here_codes.append(code)
    ids: list[str] = []
    sizes: list[int] = []
    codes: list[int] = []
    start = end + 1
    was_view = memoryview(was_data)
    at, was_at = start, pstart  # where the next value starts, in N and in P
    pa, pn, h, hn = 0, len(pids), 0, len(here)
    for c in (*changed, None):
        pi = pn if c is None else bisect_left(pids, c, pa)
        if pi > pa:  # P's run pids[pa:pi], unchanged: N's next ids, sizes, conditions and bytes
            ids += pids[pa:pi]
            s = psizes[pa:pi]
            sizes += s
            codes += pcodes[pa:pi]
            size = sum(s)
            if not data.startswith(was_view[was_at:was_at + size], at):
                raise _Differs
            at += size
            was_at += size
            pa = pi
        if c is None:
            break
        there = h < hn and here[h] is c
        if pi < pn and pids[pi] == c:  # changed since P: its value there skipped
            was_at += psizes[pi]
            pa = pi + 1
        if there:
            value = values[h]
            if not data.startswith(value, at):
                raise _Differs
            ids.append(c)
            sizes.append(len(value))
            codes.append(here_codes[h])
            at += len(value)
            h += 1
    stop = at
    if data[stop:stop + 1] != b"\n":
        raise _Differs
    codes, names = _first_seen(codes, names)
    crc = crc32(memoryview(data)[start:stop], crc32(raw))
    line = coded_section_line(kind, ids, codes, names, sizes, b64, train_at, crc)
    if end - pos != len(line) or not data.startswith(line, pos):
        raise _Differs
    return (ids, sizes, codes, names, b64, train_at, start), stop + 1


def _first_seen(codes: list[int], names: list[str]) -> tuple[list[int], list[str]]:
    """``codes`` (places in ``names``) as :func:`~kmevents.reducer.snapshot.condition_codes` gives
    them: the names in the order the codes first meet them, only those met."""
    try:
        first = [codes.index(i) for i in range(len(names))]  # (C speed: the first few values, mostly)
    except ValueError:  # a name no value has now
        first = None
    if first is not None and all(map(lt, first, islice(first, 1, None))):
        return codes, names
    order = list(dict.fromkeys(codes))
    place = {code: i for i, code in enumerate(order)}
    return list(map(place.__getitem__, codes)), [names[i] for i in order]


def _resting_many(kind: str, table: dict[str, Any], ids: list[str]) -> list[bytes]:
    """The values of ``ids`` (all in the table) as a section of ``table`` holds them."""
    if kind in PACKED_KINDS and type(table) is PackedTable:
        return as_resting(table, list(map(dict.__getitem__, repeat(table, len(ids)), ids)))
    return [_resting(kind, table, i) for i in ids]


def _resting(kind: str, table: dict[str, Any], id: str) -> bytes:
    """The value of ``id`` as a section of ``table`` holds it (KeyError when absent)."""
    if kind in PACKED_KINDS and type(table) is PackedTable:
        return as_resting(table, [dict.__getitem__(table, id)])[0]
    value = packed_bytes(table, id)
    if value is None:
        raise KeyError(id)
    return value


def _condition(table: dict[str, Any], id: str, value: bytes) -> str:
    """The condition a section of ``table`` names for ``id`` (as ``conditions`` gives it)."""
    if type(table) is PackedTable:
        v = dict.__getitem__(table, id)
        if id in table._hot or type(v) is not bytes:
            return condition(v)
        known = table.notes.get(id)
        if known is not None:
            return known
        return condition(orjson.loads(table.codec.decompress(value) if value[:1] != b"{" else value))  # type: ignore[union-attr]
    return condition(dict.__getitem__(table, id))


def _indexes_hold(st: ClusterState, idx: dict[str, Any], ids_of: dict[str, list[str]]) -> None:
    """The header's indexes (format 5: by position in the sections' ids) against the state's."""
    pods = ids_of["pod"]

    def same(ps: Any, members: Collection[str]) -> None:
        # strictly ascending positions (so no repeats) of members, as many as there are members
        if type(ps) is not list or len(ps) != len(members) or (ps and not (type(ps[0]) is int and ps[0] >= 0)):
            raise _Differs
        if not all(map(lt, ps, islice(ps, 1, None))) or not all(map(members.__contains__, map(pods.__getitem__, ps))):
            raise _Differs

    def same_map(stored: Any, mine: Mapping[str, Collection[str]]) -> None:
        if type(stored) is not dict or stored.keys() != mine.keys():
            raise _Differs
        for k, members in mine.items():
            same(stored[k], members)

    same_map(idx["pods_by_ns"], st._pods_by_ns)
    same_map(idx["svc_members"], st._svc_members)
    rcs = idx["rc_members"]
    if type(rcs) is not dict or rcs.keys() != st._rc_members.keys():
        raise _Differs
    for rid, (run, other) in st._rc_members.items():
        halves = rcs[rid]
        if type(halves) is not list or len(halves) != 2:
            raise _Differs
        same(halves[0], run)
        same(halves[1], other)
    at = {kind: {i: n for n, i in enumerate(ids_of[kind])} for kind in ("rc", "service")}
    if (idx["rc_sel"] != _selector_doc(st._rc_sel, at["rc"]) or idx["svc_sel"] != _selector_doc(st._svc_sel, at["service"])
            or idx["task_id_exceptions"] != key_exceptions(st)):
        raise _Differs

