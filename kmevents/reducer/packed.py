"""Packed entity tables: the big kinds rest as their canonical bytes (issue 17).

A folded pod is a dict of ~20 keys with nested labels, annotations, volumes and
containers: 6.5 KB of Python objects for ~1.25 KB of JSON; a task 3.7 KB for
~1.05 KB; a service with its endpoints 30 KB for ~10 KB. At a 12,500-machine
cluster's ~145k live pods that was 1.2 GiB of a fold's memory, and every full
snapshot re-encoded all of it.

So the tables of :data:`PACKED_KINDS` are :class:`PackedTable` s: a value rests
as its canonical bytes (``orjson.dumps(value, OPT_SORT_KEYS)``, exactly what the
processors write to etcd and snapshots hold) and becomes a dict again when read.
A read through the table (``t[id]``, ``t.get``, ``setdefault``) keeps the decoded
dict in the table ("hot") so the fold can mutate it in place, as with plain
dicts; :func:`pack` turns the hot ones back into bytes. ``apply`` packs every
``AGE_CHECK_EVERY`` events, between events, so no handler holds a dict across
a pack; at most a few thousand entities are hot at once.

Iterating values or items decodes each value for the reader without keeping it
(readers iterate, the fold never does). :func:`stored` and :func:`packed_bytes`
read a value without making it hot. A table marked read-only (``keep=False``,
frozen states: reducer/fork.py) never keeps what it decodes.

Decoding canonical bytes gives back an equal value (keys in sorted order; the
fold's values are plain JSON data, which snapshots already rely on).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

#: Kinds whose tables are packed: the ones a large cluster has ~10^5 of, and services (each
#: holds its endpoints: ~10 KB of JSON, 30 KB as dicts, at the large simulated profile).
PACKED_KINDS = frozenset({"pod", "task", "service"})

_loads = orjson.loads
_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_MISSING: Any = object()


class PackedTable(dict[str, Any]):
    """``id -> entity`` whose values rest as canonical bytes; see the module docstring."""

    __slots__ = ("_hot", "keep")

    def __init__(self, data: Iterable[tuple[str, Any]] | dict[str, Any] | None = None, *,
                 keep: bool = True) -> None:
        super().__init__()
        #: ids whose value is a dict now (read or set since the last pack)
        self._hot: set[str] = set()
        #: reads keep the decoded dict in the table (False: a read-only table)
        self.keep = keep
        if data:
            self.update(data)

    # -- reads that may keep the dict (the fold's) --------------------------

    def _kept(self, key: str, v: Any) -> Any:
        """``v`` (the stored value of ``key``) as a dict, kept in the table if this one keeps."""
        if type(v) is bytes:
            v = _loads(v)
            if self.keep:
                dict.__setitem__(self, key, v)
                self._hot.add(key)
        return v

    def __getitem__(self, key: str) -> Any:
        return self._kept(key, dict.__getitem__(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        v = dict.get(self, key, _MISSING)
        return default if v is _MISSING else self._kept(key, v)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self[key]
        self[key] = default
        return default

    # -- writes ---------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        if type(value) is not bytes:
            self._hot.add(key)

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._hot.discard(key)

    def pop(self, key: str, *default: Any) -> Any:
        v = dict.pop(self, key, _MISSING)
        if v is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        self._hot.discard(key)
        return _loads(v) if type(v) is bytes else v

    def popitem(self) -> tuple[str, Any]:
        k, v = dict.popitem(self)
        self._hot.discard(k)
        return k, (_loads(v) if type(v) is bytes else v)

    def clear(self) -> None:
        dict.clear(self)
        self._hot.clear()

    # -- reads for readers (nothing kept) -------------------------------------

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for v in dict.values(self):
            yield _loads(v) if type(v) is bytes else v

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for k, v in dict.items(self):
            yield k, (_loads(v) if type(v) is bytes else v)

    def copy(self) -> PackedTable:
        pack(self)
        return PackedTable(dict.items(self), keep=self.keep)

    def __reduce__(self) -> Any:
        return (dict, (dict(self.items()),))

    def __repr__(self) -> str:
        return f"<PackedTable {len(self)} entities, {len(self._hot)} unpacked>"

    @property
    def hot_count(self) -> int:
        return len(self._hot)


def pack(table: dict[str, Any]) -> int:
    """Encode the hot values of a packed table back to bytes; returns how many. Other tables: 0.

    Call it only between events (a handler may hold a hot dict while it runs)."""
    if type(table) is not PackedTable:
        return 0
    hot = table._hot
    n = 0
    if hot:
        get, put, join = dict.get, dict.__setitem__, b"".join
        for k in hot:
            v = get(table, k)
            if v is not None and type(v) is not bytes:
                # a copy: orjson's own result keeps its whole output buffer allocated (8 KiB of
                # RSS for a 1.3 KB pod, measured), a join of two parts is exactly its length
                put(table, k, join((_dumps(v, option=_SORT), b"")))
                n += 1
        hot.clear()
    return n


def stored(table: dict[str, Any], key: str) -> Any:
    """``table[key]`` decoded but not kept (None when absent): a reader's look that does not
    unpack the table."""
    v = dict.get(table, key)
    return _loads(v) if type(v) is bytes else v


def packed_bytes(table: dict[str, Any], key: str) -> bytes | None:
    """The canonical bytes of ``table[key]`` (None when absent), encoding a hot or plain value."""
    v = dict.get(table, key)
    if v is None or type(v) is bytes:
        return v
    return _dumps(v, option=_SORT)


def raw_items(table: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every ``(id, value)`` from the table's storage, decoded but not kept: the fold's own
    rebuilds (indexes after a load) read through it, not through a fork's copy-on-read."""
    for k, v in dict.items(table):
        yield k, (_loads(v) if type(v) is bytes else v)
