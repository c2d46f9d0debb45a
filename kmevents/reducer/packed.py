"""Packed entity tables: the big kinds rest as compressed canonical bytes (issue 17).

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

Once a table holds :data:`TRAIN_AT` values it trains a zstd dictionary on them
(:class:`Codec`, ~0.1 s) and from then on rests each value compressed with it:
entities of one kind share their keys, their id prefixes and most values, so a
pod's 1.2 KB become ~0.2 KB and a task's 1.05 KB ~0.18 KB (measured at the large
profile; 3-4 us to compress, ~2 us to decompress). Canonical bytes begin with
``{``, a zstd frame never does, so each value says which it is. The compressed
form never leaves the process: snapshots, deltas and etcd get canonical bytes
(:func:`packed_bytes`), and a fork shares its parent's codec with its bytes.

Iterating values or items decodes each value for the reader without keeping it
(readers iterate, the fold never does). :func:`packed_bytes` and :func:`raw_items`
read values without making them hot. A table marked read-only (``keep=False``,
frozen states: reducer/fork.py) never keeps what it decodes.

Decoding canonical bytes gives back an equal value (keys in sorted order; the
fold's values are plain JSON data, which snapshots already rely on).

A table also knows each resting value's condition (conditions.py: ``Running``,
``TASK_FINISHED`` ...): :func:`pack` notes it as it encodes a value, a snapshot
load takes it from the entity line. So counting a kind by condition (``kmevents
state``'s summary) decodes only the values whose condition is not known: 1.5 s
of a cold read at the large profile's 315k pods and tasks before.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import orjson
import zstandard

from kmevents.reducer.conditions import condition

#: Kinds whose tables are packed: the ones a large cluster has ~10^5 of, services (each
#: holds its endpoints: ~10 KB of JSON, 30 KB as dicts, at the large simulated profile), and
#: nodes and executors (one per machine: 23 MiB as dicts at the large profile's 12,500).
#: Not agents (37 MiB there): the fold reads one on most offers and tasks, and decoding it
#: each time cost ~4 us an event, measured.
PACKED_KINDS = frozenset({"pod", "task", "service", "node", "executor"})
#: A table trains its compression dictionary once it holds this many values (and again,
#: never: the first dictionary stays, it only has to be good, not best).
TRAIN_AT = 1_000
#: ... trained on this many of them (300 trained as well as 1,000 on the large profile's
#: pods, in 0.02 s instead of 0.08 s)
TRAIN_SAMPLES = 300
#: A table's ``_train_at`` that never comes: a *lazy* table, an unpacked kind's table as a
#: snapshot (format 5) loads it. Its values rest as their canonical bytes until read (a
#: read keeps the dict for good: the fold packs no kind outside :data:`PACKED_KINDS`), so a
#: load decodes none of the 12,500 agents of the large profile (0.14 s, 37 MiB as dicts).
NEVER = 1 << 62
#: Dictionary size and zstd level: 32 KiB and level 1 compressed pods 6x, tasks 5.8x, at
#: 3.4 us each; 64 KiB or level 3 gained < 3 % for more time (measured, large profile).
DICT_BYTES = 32_768
LEVEL = 1

_loads = orjson.loads
_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_MISSING: Any = object()
_JSON = 0x7B  # "{": the first byte of every entity's canonical bytes


class Codec:
    """A zstd dictionary trained on one table's values, with its compressor and decompressor.
    ``raw``: the dictionary's bytes, as a snapshot stores them (snapshot.py, format 4)."""

    __slots__ = ("_compress", "_many", "decompress", "raw")

    def __init__(self, d: zstandard.ZstdCompressionDict) -> None:
        z = zstandard.ZstdCompressor(level=LEVEL, dict_data=d, write_checksum=False, write_dict_id=False)
        self._compress = z.compress
        self._many = z.multi_compress_to_buffer
        self.decompress = zstandard.ZstdDecompressor(dict_data=d).decompress
        self.raw: bytes = d.as_bytes()

    @classmethod
    def trained(cls, samples: list[bytes | bytearray | memoryview]) -> Codec:
        """A dictionary trained on ``samples`` (raises ``zstandard.ZstdError`` when they are
        too few or too uniform to train on)."""
        return cls(zstandard.train_dictionary(DICT_BYTES, samples, level=LEVEL))

    @classmethod
    def of_bytes(cls, raw: bytes) -> Codec:
        """The codec of a dictionary's stored bytes (``raw``); raises ``zstandard.ZstdError``
        when they are not a zstd dictionary."""
        d = zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_FULLDICT)
        d.precompute_compress(level=LEVEL)  # checks the bytes
        return cls(d)

    def compress(self, data: bytes) -> bytes:
        # a tight copy: zstandard's result keeps its worst-case buffer allocated (1.4 KB of
        # RSS for a 0.2 KB frame of a pod, measured), as orjson's does (see pack)
        return _tight(self._compress(data))

    def compress_many(self, data: list[bytes | bytearray | memoryview]) -> list[bytes]:
        """``compress`` of each, in one call on both cores (2 us a pod instead of 3.8 us)."""
        col = self._many(data, threads=2)
        return [col[i].tobytes() for i in range(len(col))]


class Notes:
    """The conditions of a packed table's resting values, the one owner of them (issue 17).

    Most values of a table stand in one condition (139,932 of the large profile's 164,128
    pods are ``Running``): so the notes keep that one as ``usual`` and, by id, only the
    conditions other than it, and the ids whose condition is not known (a value stored
    without one). An id of the table is then known as ``odd.get(id, usual)`` unless it is
    unknown (a dict ``id -> condition`` per table was 15.6 MiB at the full large profile, by
    tracemalloc; at 300k events the pods' notes take 0.40 MiB instead of 0.92, the tasks'
    alike). ``usual`` is the first condition noted, a restore's most common, and another
    once it stands for more of the table (:meth:`settle`, at each pack).

    The notes answer only for ids of their table, resting (a hot id's dict is asked instead:
    its note may be old)."""

    __slots__ = ("usual", "_odd", "_unknown", "_check_at")

    def __init__(self) -> None:
        #: the condition of every noted id not in ``_odd`` (None: nothing noted yet)
        self.usual: str | None = None
        self._odd: dict[str, str] = {}
        self._unknown: set[str] = set()
        #: ``_odd``'s size at which :meth:`settle` may count it again
        self._check_at = 0

    def get(self, id: str) -> str | None:
        """The noted condition of ``id`` (an id of the table), None when not known."""
        if id in self._unknown:
            return None
        return self._odd.get(id, self.usual)

    def note(self, id: str, c: str) -> None:
        if self.usual is None:
            self.usual = c
        if c == self.usual:
            self._odd.pop(id, None)
        else:
            self._odd[id] = c
        self._unknown.discard(id)

    def note_many(self, ids: Iterable[str], conds: Iterable[str]) -> None:
        note = self.note
        for id, c in zip(ids, conds, strict=True):
            note(id, c)

    def ids_maybe(self, c: str) -> set[str]:
        """When ``c`` is not ``usual``: the ids that may stand in it, those noted in it and those
        of unknown condition (every other id is noted in another)."""
        return {id for id, x in self._odd.items() if x == c} | self._unknown

    def forget(self, id: str) -> None:
        """``id``'s value changed: its condition is not known until noted again."""
        self._odd.pop(id, None)
        self._unknown.add(id)

    def drop(self, id: str) -> None:
        """``id`` left the table."""
        self._odd.pop(id, None)
        self._unknown.discard(id)

    def clear(self) -> None:
        self.usual = None
        self._odd.clear()
        self._unknown.clear()
        self._check_at = 0

    def copy(self) -> Notes:
        new = Notes()
        new.usual, new._odd, new._unknown, new._check_at = (
            self.usual, self._odd.copy(), self._unknown.copy(), self._check_at)
        return new

    def restore(self, ids: list[str], conds: list[str]) -> None:
        """Fill empty notes with a condition for each of ``ids``: the most common is ``usual``."""
        if not ids:
            return
        usual = Counter(conds).most_common(1)[0][0]
        self.usual = usual
        self._odd = {id: c for id, c in zip(ids, conds, strict=True) if c != usual}

    def settle(self, ids: Iterable[str], n: int) -> None:
        """Make another condition ``usual`` when more of the table's ``n`` ids (``ids``, its
        keys) stand in it than in ``usual``: checked when over half are odd, and then only
        once the odd ones have doubled since the last check (so it costs O(1) a note)."""
        odd = self._odd
        if len(odd) * 2 <= n or len(odd) < self._check_at:
            return
        self._check_at = 2 * len(odd)
        top, count = Counter(odd.values()).most_common(1)[0]
        if count <= n - len(odd) - len(self._unknown):
            return
        was, unknown = self.usual, self._unknown
        for id in ids:
            if id not in odd and id not in unknown:
                odd[id] = was  # type: ignore[assignment]  # (usual is set once anything is odd)
        self._odd = {id: c for id, c in odd.items() if c != top}
        self.usual = top
        self._check_at = 2 * len(self._odd)

    def complete(self, n: int) -> bool:
        """Whether the condition of every one of the table's ``n`` ids is known."""
        return not self._unknown and (self.usual is not None or len(self._odd) == n)

    def counts(self, n: int) -> Counter[str] | None:
        """How many of the table's ``n`` ids stand in each condition, when every one is known."""
        if not self.complete(n):
            return None
        out = Counter(self._odd.values())
        rest = n - len(self._odd)
        if rest:
            out[self.usual] += rest  # type: ignore[index]  # (complete: usual is set)
        return out

    def __len__(self) -> int:
        """How many ids are odd (what the notes hold by id)."""
        return len(self._odd)


class PackedTable(dict[str, Any]):
    """``id -> entity`` whose values rest as (compressed) canonical bytes; see the module docstring."""

    __slots__ = ("_hot", "keep", "codec", "frames", "_train_at", "notes", "_origin", "_written",
                 "__weakref__")

    def __init__(self, data: Iterable[tuple[str, Any]] | dict[str, Any] | None = None, *,
                 keep: bool = True, codec: Codec | None = None) -> None:
        super().__init__()
        #: ids whose value is a dict now (read or set since the last pack)
        self._hot: set[str] = set()
        #: reads keep the decoded dict in the table (False: a read-only table)
        self.keep = keep
        #: the dictionary values rest compressed with (None: not trained yet; values are plain)
        self.codec = codec
        #: whether a pack compresses what it encodes once there is a dictionary (False: a read's
        #: short-lived fork, :func:`share`; its changes rest as plain canonical bytes)
        self.frames = True
        self._train_at = TRAIN_AT
        #: the conditions of its values at rest, where known (hot ids: ask the dict)
        self.notes = Notes()
        #: a table made by :func:`share`: (a weak reference to) the table it began as a copy of,
        #: through any number of shares, and every id written since (hot ids: once packed), so
        #: what it does not share with that table is known without comparing every value
        #: (sizing.estimate_bytes; 60-90 ms at the large profile's 1.5M events, twice a warm
        #: API read). None: not a copy, or changed whole (trained).
        self._origin: weakref.ref[PackedTable] | None = None
        self._written: set[str] | None = None
        if data:
            self.update(data)

    def resting_codec(self) -> Codec | None:
        """The codec what this table packs (and a delta brings it, delta.py) rests compressed
        with; None when such values rest as plain canonical bytes: no dictionary yet, or a read's
        plain fork (``frames``, :func:`share`)."""
        return self.codec if self.frames else None

    def _decode(self, v: bytes) -> Any:
        if v[0] != _JSON:
            v = self.codec.decompress(v)  # type: ignore[union-attr]  # compressed => trained
        return _loads(v)

    # -- reads that may keep the dict (the fold's) --------------------------

    def _kept(self, key: str, v: Any) -> Any:
        """``v`` (the stored value of ``key``) as a dict, kept in the table if this one keeps."""
        if type(v) is bytes:
            v = self._decode(v)
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
        self.notes.forget(key)
        if type(value) is not bytes:
            self._hot.add(key)
        elif self._written is not None:
            self._written.add(key)

    def put_many(self, items: list[tuple[str, bytes]], conditions: list[str] | None = None) -> None:
        """Store canonical bytes as they rest (compressed once the table has a dictionary:
        all in one call), e.g. a format-3 snapshot's lines, with their values' ``conditions``
        when known (one per item); the table trains when it is big enough."""
        if self._written is not None:
            self._written.update(k for k, _ in items)
        if conditions is not None:
            self.notes.note_many([k for k, _ in items], conditions)
        else:
            for k, _ in items:
                self.notes.forget(k)
        c = self.codec
        if c is None:
            put = dict.__setitem__
            for k, v in items:
                put(self, k, v)
            if dict.__len__(self) >= self._train_at:
                train(self)
            return
        if not items:  # (zstandard refuses to compress no values)
            return
        put = dict.__setitem__
        values: list[bytes | bytearray | memoryview] = [v for _, v in items]
        for (k, _), packed in zip(items, c.compress_many(values), strict=True):
            put(self, k, packed)

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._hot.discard(key)
        self.notes.drop(key)

    def pop(self, key: str, *default: Any) -> Any:
        v = dict.pop(self, key, _MISSING)
        if v is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        self._hot.discard(key)
        self.notes.drop(key)
        return self._decode(v) if type(v) is bytes else v

    def popitem(self) -> tuple[str, Any]:
        k, v = dict.popitem(self)
        self._hot.discard(k)
        self.notes.drop(k)
        return k, (self._decode(v) if type(v) is bytes else v)

    def clear(self) -> None:
        dict.clear(self)
        self._hot.clear()
        self.notes.clear()

    # -- reads for readers (nothing kept) -------------------------------------

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for v in dict.values(self):
            yield self._decode(v) if type(v) is bytes else v

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for k, v in dict.items(self):
            yield k, (self._decode(v) if type(v) is bytes else v)

    def copy(self) -> PackedTable:
        return share(self)

    def __reduce__(self) -> Any:
        return (dict, (dict(self.items()),))

    def __repr__(self) -> str:
        return (f"<PackedTable {len(self)} entities, {len(self._hot)} unpacked, "
                f"{'compressed' if self.codec else 'plain'}>")

    @property
    def hot_count(self) -> int:
        return len(self._hot)


def pack(table: dict[str, Any], *, train_now: bool = False) -> int:
    """Encode the hot values of a packed table back to bytes; returns how many. Other tables: 0.
    ``train_now``: then train the dictionary if the table is big enough (only the fold's
    :func:`pack_tables` does, at the same events whatever the fold began from: a snapshot
    holds the dictionary, so where the table trained shows in its bytes).

    Call it only between events (a handler may hold a hot dict while it runs)."""
    if type(table) is not PackedTable:
        return 0
    hot = table._hot
    n = 0
    if hot:
        get, put = dict.get, dict.__setitem__
        c = table.resting_codec()
        # resting plain, a copy: orjson's own result keeps its whole output buffer allocated
        # (8 KiB of RSS for a 1.3 KB pod, measured); a join of two parts is tight
        squeeze = _tight if c is None else c.compress
        note = table.notes.note
        for k in hot:
            v = get(table, k)
            if v is not None and type(v) is not bytes:
                put(table, k, squeeze(_dumps(v, option=_SORT)))
                note(k, _name(condition(v)))
                n += 1
        if table._written is not None:
            table._written |= hot
        hot.clear()
        table.notes.settle(dict.keys(table), dict.__len__(table))
    if train_now and table.codec is None and dict.__len__(table) >= table._train_at:
        train(table)
    return n


def rest_value(v: Any) -> tuple[str, bytes]:
    """A value's condition and canonical bytes as an untrained table rests them (a trained
    one may hold them so beside its frames: :func:`resting_items` compresses them)."""
    return _name(condition(v)), _tight(_dumps(v, option=_SORT))


def _tight(data: bytes) -> bytes:
    return b"".join((data, b""))


def train(table: PackedTable) -> bool:
    """Train the table's dictionary on the values of its first :data:`TRAIN_SAMPLES` ids in
    sorted order (not in the order they came in: a state loaded from a snapshot trains as the
    fold it came from would) and compress every value at rest with it (once; a table too
    uniform or too small to train tries again at twice the size). Returns whether it has
    one now."""
    if table.codec is not None:
        return True
    get = dict.__getitem__
    first = (get(table, k) for k in sorted(dict.keys(table)))
    samples: list[bytes | bytearray | memoryview] = [
        v for v in islice(first, TRAIN_SAMPLES) if type(v) is bytes]
    try:
        codec = Codec.trained(samples)
    except zstandard.ZstdError:
        table._train_at *= 2
        return False
    table.codec = codec
    table._origin = table._written = None  # every value changes: none shared any more
    plain = [(k, v) for k, v in dict.items(table) if type(v) is bytes]
    values: list[bytes | bytearray | memoryview] = [v for _, v in plain]
    put = dict.__setitem__
    for (k, _), packed in zip(plain, codec.compress_many(values), strict=True):
        put(table, k, packed)
    return True


def share(table: PackedTable, *, keep: bool = True, plain: bool = False) -> PackedTable:
    """A new table with the same values, sharing their bytes and the codec (the table is
    packed first: bytes are immutable, so sharing them is the copy-on-write of a fork).

    ``plain``: the new table's own changes rest as plain canonical bytes, not compressed
    (``frames`` False; a copy of such a table keeps it; a delta applied onto it rests its values
    so too, delta.py): for a read's fork, which folds a few thousand records after a delta. Most
    of what it saves is the delta's values: the records after a delta change those again, and
    each was decompressed before it was decoded (a first read into a delta range 0.86 / 0.78 of
    its apply and fold at the simulator's scale / full size, for +14-18 % of the delta state's
    own memory; BENCHMARKS.md, issue 17). Its bytes are the same to every reader: a value says
    which form it rests in, and snapshots compress plain ones."""
    pack(table)
    new = PackedTable(keep=keep, codec=table.codec)
    new.frames = table.frames and not plain
    dict.update(new, table)
    new._train_at = table._train_at
    new.notes = table.notes.copy()
    if table._written is None:
        new._origin, new._written = weakref.ref(table), set()
    else:
        new._origin, new._written = table._origin, table._written.copy()
    return new


def written_since(table: PackedTable, origin: dict[str, Any]) -> set[str] | None:
    """The ids whose values ``table`` may hold apart from ``origin``'s (written or decoded since it
    began as a copy of ``origin``, :func:`share`), or None when that is not known (``table`` is
    not a copy of ``origin``, or changed whole since)."""
    ref = table._origin
    if ref is None or ref() is not origin or table._written is None:
        return None
    return table._written | table._hot


def pack_tables(tables: dict[str, dict[str, Any]]) -> None:
    """:func:`pack` every table of :data:`PACKED_KINDS` (``apply`` calls it between events)."""
    for kind in PACKED_KINDS:
        pack(tables[kind], train_now=True)


def _canonical(table: dict[str, Any], v: Any) -> bytes:
    """The canonical bytes of a stored value: a dict encoded, plain bytes as they are, a
    compressed frame decompressed with the table's dictionary."""
    if type(v) is not bytes:
        return _dumps(v, option=_SORT)
    return v if v[0] == _JSON else table.codec.decompress(v)  # type: ignore[attr-defined]


def value_of(table: dict[str, Any], key: str) -> Any:
    """``table[key]`` for a reader (None when absent): a resting value decoded without being
    kept, so the next :func:`pack` does not encode it again; a hot or plain one as it is
    (live: do not mutate it)."""
    v = dict.get(table, key)
    if type(v) is bytes and type(table) is PackedTable:
        return table._decode(v)
    return v


def same_at_rest(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    """True when ``a[key]`` and ``b[key]`` are provably the same value without decoding either:
    the same object, or equal stored bytes of two packed tables that rest values alike (plain
    canonical bytes, or frames of one dictionary: compressing is deterministic). False says
    nothing: compare their canonical bytes (:func:`packed_bytes`)."""
    x, y = dict.get(a, key), dict.get(b, key)
    if x is None or y is None:
        return False
    if x is y:
        return True
    if type(x) is not bytes or type(y) is not bytes or type(a) is not PackedTable or type(b) is not PackedTable:
        return False
    if x[0] == _JSON or y[0] == _JSON:  # plain canonical bytes on either side: equal only if both are
        return x == y
    ca, cb = a.codec, b.codec
    return ca is not None and cb is not None and (ca is cb or ca.raw == cb.raw) and x == y


def packed_bytes(table: dict[str, Any], key: str) -> bytes | None:
    """The canonical bytes of ``table[key]`` (None when absent), encoding a hot or plain value."""
    v = dict.get(table, key)
    return None if v is None else _canonical(table, v)


def bytes_and_value(table: dict[str, Any], key: str, *, value: bool = True) -> tuple[bytes | None, Any]:
    """``(packed_bytes(table, key), value_of(table, key))`` from one read of the stored value:
    a resting one is decompressed once and decoded from those bytes (only when ``value``: else
    None for it), a hot or plain one encoded once and given as it is (live: do not mutate it).
    ``(None, None)`` when absent."""
    v = dict.get(table, key)
    if v is None:
        return None, None
    if type(v) is not bytes:
        return _dumps(v, option=_SORT), v
    data = v if v[0] == _JSON else table.codec.decompress(v)  # type: ignore[attr-defined]
    return data, (_loads(data) if value else None)


def bytes_and_condition(table: dict[str, Any], key: str) -> tuple[bytes, str] | None:
    """The canonical bytes of ``table[key]`` and its value's condition (None when absent): a
    resting value's condition from the table's notes, decoded only when they do not know it;
    a hot or plain value encoded. What a delta writes of an upserted value (delta.py)."""
    v = dict.get(table, key)
    if v is None:
        return None
    if type(v) is not bytes:
        return _dumps(v, option=_SORT), _name(condition(v))
    data = v if v[0] == _JSON else table.codec.decompress(v)  # type: ignore[attr-defined]
    c = table.notes.get(key) if type(table) is PackedTable else None
    return data, (_name(condition(_loads(data))) if c is None else c)


def raw_items(table: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every ``(id, value)`` from the table's storage, decoded but not kept: the fold's own
    rebuilds (indexes after a load) read through it, not through a fork's copy-on-read."""
    if type(table) is PackedTable:
        decode = table._decode
        for k, v in dict.items(table):
            yield k, (decode(v) if type(v) is bytes else v)
    else:
        yield from dict.items(table)


def canonical_items(table: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Every ``(id, canonical bytes)`` of the table, in id order (what a snapshot writes). A
    lazy table's hot values are encoded, not packed: the fold would decode them again."""
    if getattr(table, "_train_at", None) != NEVER:
        pack(table)
    get = dict.__getitem__
    for k in sorted(dict.keys(table)):
        yield k, _canonical(table, get(table, k))


def resting_items(table: PackedTable) -> tuple[list[str], list[bytes]]:
    """The table's ids in sorted order and each value as it rests (a frame of the table's
    codec, or canonical bytes while it has none): what a format-4 snapshot writes. Hot values
    are packed first, and any resting uncompressed beside a codec compressed, so a state
    gives the same bytes however its values came to rest."""
    pack(table)
    ids = sorted(dict.keys(table))
    get = dict.__getitem__
    return ids, as_resting(table, [get(table, k) for k in ids])


def as_resting(table: PackedTable, values: list[bytes]) -> list[bytes]:
    """``values`` (the packed table's, as stored) with any resting uncompressed beside a codec
    compressed, as a snapshot writes them (changed in place and returned)."""
    c = table.codec
    if c is not None:
        plain = [i for i, v in enumerate(values) if v[0] == _JSON]
        if plain:
            for i, packed in zip(plain, c.compress_many([values[i] for i in plain]), strict=True):
                values[i] = packed
    return values


def restore(table: PackedTable, ids: list[str], values: list[bytes], conds: list[str],
            codec: Codec | None, train_at: int) -> None:
    """Fill an empty table with values as :func:`resting_items` gave them (frames of ``codec``,
    or canonical bytes), their conditions (as :func:`note_conditions` gives them), and when it
    trains: no training, no compression, and no training later than the fold the values came
    from would."""
    table.codec = codec
    table._train_at = train_at
    table._origin = table._written = None
    dict.update(table, zip(ids, values, strict=True))
    table.notes.clear()
    table.notes.restore(ids, conds)


def conditions(table: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every ``(id, condition of its value)`` of the table, in no particular order. A packed
    table decodes only the values whose condition it does not know (and then notes it)."""
    if type(table) is not PackedTable:
        for k, v in dict.items(table):
            yield k, condition(v)
        return
    yield from _conditions(table, dict.keys(table))


def _conditions(table: PackedTable, ids: Iterable[str]) -> Iterator[tuple[str, str]]:
    notes, hot, decode, get = table.notes, table._hot, table._decode, dict.__getitem__
    for k in ids:
        v = get(table, k)
        if k in hot or type(v) is not bytes:
            yield k, condition(v)
            continue
        c = notes.get(k)
        if c is None:
            c = _name(condition(decode(v)))
            notes.note(k, c)
        yield k, c


def ids_in(table: dict[str, Any], cond: str) -> list[str]:
    """The ids of the table's values whose condition is ``cond``, in the table's order. A packed
    table reads them off its notes when ``cond`` is not its usual condition: only the ids
    noted in it, the hot ones and those of unknown condition are looked at (the outstanding
    offers of a lazy table: 13 of 10,013 at the simulator's scale, none of the rest decoded)."""
    if type(table) is not PackedTable:
        return [k for k, v in dict.items(table) if condition(v) == cond]
    notes = table.notes
    if notes.usual is None or notes.usual == cond:
        return [k for k, c in _conditions(table, dict.keys(table)) if c == cond]
    maybe = notes.ids_maybe(cond) | table._hot
    if not maybe:
        return []
    # (in the table's order: what the readers built from it before, e.g. an agent's offers summed)
    return [k for k, c in _conditions(table, filter(maybe.__contains__, dict.keys(table))) if c == cond]


def condition_counts(table: dict[str, Any]) -> Counter[str]:
    """How many values of the table stand in each condition: counted from the notes alone
    when every value rests with its condition known (0.02 s instead of 0.5 s for 315k)."""
    if type(table) is PackedTable and not table._hot:
        counts = table.notes.counts(dict.__len__(table))
        if counts is not None:
            return counts
    return Counter(c for _, c in conditions(table))


#: one str object per condition name (a table holds one reference per value, not a copy)
_NAMES: dict[str, str] = {}


def _name(c: str) -> str:
    return _NAMES.setdefault(c, c)


def note_conditions(names: list[str]) -> list[str]:
    """``names`` (conditions read from bytes, e.g. a snapshot's lines) as the shared objects."""
    return [_name(c) for c in names]


def decoded(table: PackedTable, stored: Any) -> Any:
    """A value as the table stores it (what ``dict.items(table)`` gives: bytes at rest, a dict
    when hot) as a dict, nothing kept. Readers that remember what they derived from a value
    at rest compare the stored bytes object by identity: the table replaces it when the
    value changes (kmevents/monitor/rules.py)."""
    return table._decode(stored) if type(stored) is bytes else stored
