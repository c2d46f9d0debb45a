"""Forks of a folded state: fold on from a state without copying it (copy-on-write).

A long-lived reader (the API's point-in-time reads, replay/warm.py) keeps states
already built and folds on from them. Copy-on-write: the fold mutates entity dicts in place (reducer/state.py), so a
fork's entity tables are :class:`CowTable` s: they start as shallow copies of
the parent's tables and deep-copy an entity the first time it is read through
them (``t[id]``, ``t.get``, ``t.items()``, ...); a packed table (packed.py) is
packed and its bytes shared, a read decoding a private dict. The parent's entity dicts are
therefore never reached by the fold. Everything else in the state (the dedupe
window's new half, terminal indexes, aggregates, derived indexes) is copied outright
(a set of 100k dedupe digests: ~3 ms); the window's old half is shared, since the fold
only ever replaces it (apply.py's rotation). :func:`freeze` turns a folded fork back into
plain dicts once the fold is done; the frozen state is read-only (it shares
entity dicts with its parent) and may be forked again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from kmevents.reducer.dedupe import Recent
from kmevents.reducer.packed import PackedTable, pack, share
from kmevents.reducer.retention import Retention
from kmevents.reducer.state import ClusterState, Members

_ATOMS = (str, int, float, bool, type(None), bytes)
_IS_ATOM = frozenset(_ATOMS).__contains__


def _copy(v: Any) -> Any:
    """Deep copy of plain data (dicts, lists, tuples, sets of atoms); atoms are shared."""
    t = type(v)
    if t is dict or t is OrderedDict:
        out = v.copy()
        if all(map(_IS_ATOM, map(type, v.values()))):  # at C speed (the task-id index: 160k str)
            return out
        for k, x in v.items():
            if type(x) not in _ATOMS:
                out[k] = _copy(x)
        return out
    if t is list:
        return [x if type(x) in _ATOMS else _copy(x) for x in v]
    if t in _ATOMS:
        return v
    if t is set or t is Members or t is Recent:
        return v.copy()  # elements are hashable, i.e. atoms or tuples of atoms (Recent: digests)
    if t is tuple:
        return tuple(x if type(x) in _ATOMS else _copy(x) for x in v)
    if t is Retention:
        return v  # settings, never mutated
    import copy

    return copy.deepcopy(v)


class CowTable(dict):
    """An entity table whose values are the parent's until first read, then private copies.

    Every way Python code reads a value goes through an override that copies it
    first; iterating values or items copies the whole table (rare in the fold).
    C-level readers (orjson, ``dict(table)``) see the storage directly; they
    only read. ``__iter__`` is overridden so that ``dict(table)`` and
    ``dict.update(table)`` take the slow path through ``__getitem__``.
    """

    __slots__ = ("_own", "_copy_value")

    def __init__(self, parent: dict[str, Any], copy: Any = _copy) -> None:
        super().__init__(parent)
        self._own: set[str] = set()
        #: makes a value's private copy (``_copy``, or a cheaper one where the values' shape is known)
        self._copy_value = copy

    def _mine(self, key: Any) -> Any:
        v = dict.__getitem__(self, key)
        if key not in self._own:
            v = self._copy_value(v)
            dict.__setitem__(self, key, v)
            self._own.add(key)
        return v

    def __getitem__(self, key: Any) -> Any:
        return self._mine(key)

    def get(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._mine(key)
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._own.add(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._mine(key)
        self[key] = default
        return default

    def pop(self, key: Any, *default: Any) -> Any:
        if dict.__contains__(self, key):
            v = self._mine(key)
            dict.__delitem__(self, key)
            return v
        if default:
            return default[0]
        raise KeyError(key)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)  # nothing read: nothing copied (retention's pruning)
        self._own.discard(key)

    def popitem(self) -> tuple[Any, Any]:
        k, v = dict.popitem(self)
        if k not in self._own:
            v = self._copy_value(v)
        return k, v

    def _all(self) -> None:
        if len(self._own) < dict.__len__(self):
            for k in list(dict.keys(self)):
                self._mine(k)

    def values(self) -> Any:
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        self._all()
        return dict.items(self)

    def __iter__(self) -> Iterator[Any]:
        return dict.__iter__(self)

    def copy(self) -> dict[str, Any]:
        self._all()
        return dict(dict.items(self))

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def __reduce__(self) -> Any:
        self._all()
        return (dict, (dict(dict.items(self)),))


def fork(st: ClusterState, *, plain: bool = False) -> ClusterState:
    """A state equal to ``st`` that can be folded on without touching ``st`` (which must not change).
    ``plain``: the packed values it changes rest uncompressed (:func:`packed.share`), and so do
    those of its forks.

    ``ClusterState.fork()`` calls it."""
    new = ClusterState.__new__(ClusterState)
    tables: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    for kind, t in st._tables.items():
        if type(t) is PackedTable:
            # bytes are immutable: once the parent's values all rest packed, sharing them is the
            # copy-on-write (a read decodes a private dict); packing changes no value of the parent
            tables[kind] = by_id[id(t)] = share(t, plain=plain)
        else:
            tables[kind] = by_id[id(t)] = CowTable(t)
    for name in ClusterState.__slots__:
        if not hasattr(st, name):
            continue
        v = getattr(st, name)
        if name == "_tables":
            v = tables
        elif name == "_base":
            v = None  # a fork tracks no delta
        elif name == "_seen_old":
            pass  # shared: the fold never changes the old half of the dedupe window, it replaces it
        elif id(v) in by_id:
            v = by_id[id(v)]
        elif name == "_terminal":
            v = CowTable(v, _copy_order)  # (see _copy_order)
        elif name in _LAZY:
            v = CowTable(v)  # only the agents, RCs, services ... the fold touches get copied
        else:
            v = _copy(v)
        setattr(new, name, v)
    return new


def _copy_order(order: dict[str, str]) -> dict[str, str]:
    """A fork's copy of a retention order (``_terminal``'s values, retention.new_index: ``{id: time}``,
    a dict or an OrderedDict): its values are strings, replaced and never changed in place, so
    the order's own copy is deep enough. ``_copy`` would first scan every value for containers:
    ~0.7 ms for 20,000 ids, in every read whose fold marks an entity of the kind terminal."""
    return order.copy()


#: Bookkeeping dicts whose values are containers, one per agent, namespace, RC or service:
#: a fork copies a value the first time it is read (a :class:`CowTable`), not all of them
#: up front (at the large profile's 300k events, ~56k dicts and ~4k sets: ~12 MiB and
#: ~40 ms a fork, for the few dozen a short fold changes). :func:`freeze` makes them plain.
_LAZY = frozenset({"_terminal", "_alloc", "_contrib", "_pods_by_ns", "_rc_sel", "_svc_sel",
                   "_rc_members", "_svc_members"})


def freeze(st: ClusterState) -> ClusterState:
    """End a fork's fold: aggregates materialized, tables back to plain dicts. Read-only from here on.

    ``ClusterState.freeze()`` calls it."""
    st.take_dirty()  # materializes lazy totals (they write into agent and role entities)
    plain: dict[int, dict[str, Any]] = {}
    for kind, t in list(st._tables.items()):
        if type(t) is PackedTable:
            pack(t)
            t.keep = False  # read-only: reads decode for the reader and keep nothing
            continue
        p = dict(dict.items(t)) if type(t) is CowTable else t
        plain[id(t)] = p
        st._tables[kind] = p
    for name in ClusterState.__slots__:
        if name == "_tables" or not hasattr(st, name):
            continue
        v = getattr(st, name)
        if id(v) in plain:
            setattr(st, name, plain[id(v)])
        elif type(v) is CowTable:  # lazily copied bookkeeping (_LAZY): plain again, read-only
            setattr(st, name, dict(dict.items(v)))
    return st
