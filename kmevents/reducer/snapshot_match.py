"""Does a stored format-5 snapshot hold exactly a state? Answered without encoding the state.

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
"""

from __future__ import annotations

import base64
import zlib
from itertools import accumulate, islice
from operator import lt
from typing import Any

import orjson
import zstandard

from kmevents.reducer.aggregates import materialize
from kmevents.reducer.packed import PACKED_KINDS, PackedTable, as_resting, conditions, pack
from kmevents.reducer.snapshot import (
    FORMAT,
    SnapshotError,
    _section,
    _selector_doc,
    dedupe_window,
    header_fields,
)
from kmevents.reducer.state import KINDS, ClusterState
from kmevents.reducer.taskids import key_exceptions

_SECTION_KEYS = frozenset({"kind", "ids", "conds", "names", "sizes", "dict", "train_at", "crc"})
_INDEX_KEYS = frozenset({"pods_by_ns", "rc_members", "svc_members", "rc_sel", "svc_sel", "task_id_exceptions"})


class _Differs(Exception):
    """Not shown equal (internal)."""


def holds(st: ClusterState, data: bytes, chain_hash: str | None = None) -> bool:
    """Whether ``data`` is a format-5 snapshot that loads and holds exactly ``st`` at ``chain_hash``
    (see the module docstring). Never raises for damaged bytes: they are not shown equal."""
    try:
        _holds(st, data, chain_hash)
    except (_Differs, SnapshotError, ValueError, TypeError, KeyError, IndexError, AttributeError, zstandard.ZstdError):
        return False  # (orjson.JSONDecodeError is a ValueError)
    return True


def _holds(st: ClusterState, data: bytes, chain_hash: str | None) -> None:
    materialize(st)
    nl = data.find(b"\n")
    head = orjson.loads(memoryview(data)[:nl]) if nl > 0 else None
    if type(head) is not dict or head.get("format") != FORMAT:
        raise _Differs
    pos = nl + 1
    ids_of: dict[str, list[str]] = {}
    for kind in sorted(KINDS):
        ids_of[kind], pos = _section_holds(kind, st._tables[kind], data, pos)
    if pos != len(data):
        raise _Differs  # bytes after the last section
    idx, window = head.pop("indexes"), head.pop("dedupe")
    mine = header_fields(st, chain_hash, dedupe=False)
    if head != mine or type(idx) is not dict or idx.keys() != _INDEX_KEYS:
        raise _Differs
    # the dedupe window's digests as sets (decoded: cheaper than sorting the state's to encode)
    if type(window) is not dict or window.keys() != {"new", "old"} or dedupe_window(
            {"dedupe": window, "reducer_version": mine["reducer_version"]}, "new", "old") != [st._seen_new, st._seen_old]:
        raise _Differs
    _indexes_hold(st, idx, ids_of)


def _section_holds(kind: str, table: dict[str, Any], data: bytes, pos: int) -> tuple[list[str], int]:
    """The section of ``kind`` at ``pos`` checked against ``table``: its ids and where the next
    section starts."""
    end = data.find(b"\n", pos)
    if end < 0:
        raise _Differs
    if kind not in PACKED_KINDS or type(table) is not PackedTable:
        ids, mine = _section(kind, table, v5=True)
        after = pos + len(mine)
        if not data.startswith(mine, pos) or data[after:after + 1] != b"\n":
            raise _Differs
        return ids, after + 1
    doc = orjson.loads(memoryview(data)[pos:end])
    if type(doc) is not dict or doc.keys() != _SECTION_KEYS or doc["kind"] != kind:
        raise _Differs
    ids, sizes, codes, names = doc["ids"], doc["sizes"], doc["conds"], doc["names"]
    n = dict.__len__(table)
    if not (type(ids) is type(sizes) is type(codes) is type(names) is list) \
            or not len(ids) == len(sizes) == len(codes) == n:
        raise _Differs
    # strictly ascending and all in the table, as many as it holds: its ids sorted
    if not all(map(lt, ids, islice(ids, 1, None))):
        raise _Differs
    pack(table)  # as dump does: the hot values (none between a fold's events) rest as bytes
    # (KeyError: an id not in the table)
    values = as_resting(table, list(map(dict.__getitem__, [table] * n, ids)))
    codec = table.codec
    raw = b"" if codec is None else codec.raw
    if (doc["dict"] != (None if codec is None else base64.b64encode(raw).decode())
            or doc["train_at"] != table._train_at or sizes != list(map(len, values))):
        raise _Differs
    start = end + 1
    stop = start + sum(sizes)
    if data[stop:stop + 1] != b"\n" or not all(map(data.startswith, values, accumulate(sizes, initial=start))):
        raise _Differs
    if zlib.crc32(memoryview(data)[start:stop], zlib.crc32(raw)) != doc["crc"]:
        raise _Differs
    if codes and min(codes) < 0:
        raise _Differs
    cond = table._cond
    if table._hot or len(cond) != n:  # (never after a pack, but a condition must be known)
        cond = dict(conditions(table))
    if list(map(names.__getitem__, codes)) != list(map(cond.__getitem__, ids)) or not all(
            type(c) is str for c in names):
        raise _Differs
    return ids, stop + 1


def _indexes_hold(st: ClusterState, idx: dict[str, Any], ids_of: dict[str, list[str]]) -> None:
    """The header's indexes (format 5: by position in the sections' ids) against the state's."""
    pods = ids_of["pod"]

    def same(ps: Any, members: set[str]) -> None:
        # strictly ascending positions (so no repeats) of members, as many as there are members
        if type(ps) is not list or len(ps) != len(members) or (ps and not (type(ps[0]) is int and ps[0] >= 0)):
            raise _Differs
        if not all(map(lt, ps, islice(ps, 1, None))) or not all(map(members.__contains__, map(pods.__getitem__, ps))):
            raise _Differs

    def same_map(stored: Any, mine: dict[str, set[str]]) -> None:
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
