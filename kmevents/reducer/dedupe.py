"""The dedupe window's keys as fixed-size digests, and their encoding in snapshots and deltas.

apply.py step 4 remembers every applied event's ``dedupe_key`` (``event_id`` when it has
none) for the last W to 2W distinct keys (``Retention.dedupe_window``, W = 100,000 by
default). Kept as strings, 2W keys of a large cluster (87 characters on average) take
~34 MiB and every snapshot carries them as text. So the window holds each key's
:func:`digest` instead: the first 8 bytes of its BLAKE2b hash as an unsigned 64-bit int,
the same in every process and on every machine (Python's own ``hash`` of a str is salted
per process, so it cannot be written to a snapshot). Measured at 200,000 keys of the
large simulator profile (issue 17, BENCHMARKS.md): the sets take 14.8 MiB instead of
33.8 MiB; the digest costs ~0.5 µs a key (xxh3 from PyPI would take 0.1 µs, which
is ~1 % of the fold's ~40 µs an event: not worth a dependency).

Collisions. Two distinct keys with one digest make the later event a false ``duplicate``
(annotated with its key, never dropped silently; the entity rules behind the window
would have let it through). For a new key, the chance that its digest equals one of the
at most 2W in the window is at most 2W / 2^64: 1.1e-14 for W = 100,000, so about one
false duplicate in 10^14 events; over a billion events, 1.1e-5. The birthday bound for
any two of the 2W keys held at once to share a digest is (2W)^2 / 2^65 = 1.1e-9.

Encoding (snapshot.py's ``"dedupe"``, delta.py's): a set is the base64 text of its
digests sorted and packed as big-endian uint64s (:func:`encode`), so the same set always
gives the same bytes. At 200,000 keys: 2.0 MiB, against 3.9 MiB as a JSON list of
ints (which JavaScript readers would also round past 2^53) and 17.2 MiB as the keys;
about the same once zstd-compressed (1.5 MiB), and as fast to load.

Reducer version 4 stored the keys themselves (sorted lists of str): :func:`decode`
hashes them, so its snapshots and deltas load into the same window a version-5 fold
keeps.
"""

from __future__ import annotations

import array
import base64
import binascii
import heapq
import itertools
import operator
import sys
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from hashlib import blake2b
from struct import Struct
from typing import Any, Final

#: The last reducer version whose snapshots and deltas hold the dedupe keys as text.
TEXT_KEYS_VERSION: Final = 4

_U64: Final = Struct(">Q")
_BIG_ENDIAN: Final = sys.byteorder == "big"


#: BLAKE2b with an 8-byte digest and nothing hashed yet: :func:`digest` copies it, which is
#: ~0.14 µs faster a key than making a new hash object with ``digest_size=8`` (issue 17)
BLAKE2B_8: Final = blake2b(digest_size=8)
#: the digest's bytes as an int: ``unpack(b)[0]``
UNPACK_U64: Final = _U64.unpack


def digest(key: str) -> int:
    """The window's form of a dedupe key: BLAKE2b's first 8 bytes, big-endian, as an int
    in [0, 2^64). Stable across processes, machines and Python versions. (apply.py inlines it.)"""
    h = BLAKE2B_8.copy()
    h.update(key.encode())
    return UNPACK_U64(h.digest())[0]


def _bitmap(n: int) -> tuple[bytearray, int]:
    """A zeroed bitmap of >= 16 bits a digest for ``n`` digests, and its mask."""
    mask = _mask(n)
    return bytearray((mask + 1) >> 3), mask


def _mask(n: int) -> int:
    """The mask of :func:`_bitmap`'s bitmap for ``n`` digests (its size in bits, less one)."""
    return (1 << max(12, (16 * n).bit_length())) - 1


def _stored_bitmap(bits: bytes, window: int) -> tuple[bytearray, int]:
    """A stored bitmap (:func:`half_bits`) as a half keeps it, and its mask; ValueError when it is
    not the size :func:`_bitmap` gives the window."""
    mask = _mask(window)
    if len(bits) != (mask + 1) >> 3:
        raise ValueError(f"the dedupe bitmap is {len(bits)} bytes, not the window's {(mask + 1) >> 3}")
    return bytearray(bits), mask


def _ascending(a: array.array[int]) -> bool:
    """Whether ``a``'s digests are strictly ascending (sorted and distinct), as :func:`encode` writes them."""
    return all(map(operator.lt, a, itertools.islice(a, 1, None)))


def _mark(bits: bytearray, mask: int, digests: Iterable[int]) -> None:
    for d in digests:
        i = d & mask
        bits[i >> 3] |= 1 << (i & 7)


def _in_runs(runs: list[array.array[int]], d: int) -> bool:
    """Whether ``d`` is in one of the sorted ``runs`` (after their bitmap said it may be: the
    callers test the bit inline, the fold asks for every event)."""
    for a in runs:
        j = bisect_left(a, d)
        if j < len(a) and a[j] == d:
            return True
    return False


def _equal(mine: Digests | Recent, other: object) -> bool:
    """``==`` of a :class:`Digests` or :class:`Recent`: the same digests as ``other`` (either, or a set)."""
    if isinstance(other, (Digests, Recent)):
        return len(other) == len(mine) and mine.sorted_array() == other.sorted_array()
    if isinstance(other, (set, frozenset)):
        return len(other) == len(mine) and other.issuperset(mine)  # (at C speed: verify compares ~100,000)
    return NotImplemented


class Digests:
    """The window's old half, which the fold only reads until it replaces it whole (apply.py's
    rotation): its digests as sorted arrays of uint64 (8 bytes each; one, or the runs of the
    :class:`Recent` it was) behind a bitmap of their low bits, instead of a set of int objects
    (~74 bytes each: 7.4 MiB of the 100,000 digests' 14.8 MiB in the window, issue 17).
    ``d in old`` reads one bit for most digests not in it (1 in ~16 passes it and is looked up
    by bisection). Compares equal to a set of the same digests; ``old - s`` is a set.

    ``bits`` and ``mask`` are read by apply.py, which tests a digest's bit inline (``i = d &
    mask``; bit ``i & 7`` of byte ``i >> 3``) and asks ``in`` only when it is set: most events
    are new, and a method call per event cost more than the test (issue 17)."""

    __slots__ = ("_runs", "_n", "bits", "mask")

    def __init__(self, digests: Iterable[int]) -> None:
        a = array.array("Q", sorted(digests))
        self.bits, self.mask = _bitmap(len(a))
        _mark(self.bits, self.mask, a)
        self._runs = [a]
        self._n = len(a)

    @classmethod
    def _of(cls, runs: list[array.array[int]], bits: bytearray, mask: int) -> Digests:
        """Over sorted ``runs`` of distinct digests (none in two runs), ``bits`` marking them all."""
        new = cls.__new__(cls)
        new._runs, new.bits, new.mask = runs, bits, mask
        new._n = sum(map(len, runs))
        return new

    def __contains__(self, d: object) -> bool:
        if type(d) is not int:
            return False
        i = d & self.mask
        return self.bits[i >> 3] >> (i & 7) & 1 == 1 and _in_runs(self._runs, d)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[int]:
        """In no particular order (as a set's)."""
        return itertools.chain.from_iterable(self._runs)

    def __sub__(self, other: Iterable[int]) -> set[int]:
        return set(self).difference(other)

    def __eq__(self, other: object) -> bool:
        return _equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def sorted_array(self) -> array.array[int]:
        """A copy of the digests as a sorted ``array('Q')``."""
        runs = self._runs
        return array.array("Q", runs[0] if len(runs) == 1 else heapq.merge(*runs))

    def __repr__(self) -> str:
        return f"<Digests {self._n}>"


class Recent:
    """The window's new half once it holds :attr:`SPILL` digests (apply.py; before, a set): the
    newest fewer than ``SPILL`` as a set, the earlier ones as sorted runs of ``SPILL`` uint64s
    (the last of a half loaded as written, or of a delta's added digests, may be shorter:
    :meth:`of_sorted`, :meth:`with_added`; no two runs share a digest), all of them behind one
    bitmap sized for the window, as :class:`Digests` keeps them. A set
    of 100,000 digests is ~7.9 MiB (its table 4 MiB, the ints 40 bytes each) and the half
    grows to the window's size before each rotation, where a whole-log rebuild may well end
    (96,490 at the large profile's 1.5M events): this is ~2 MiB (issue 17). A rotation makes
    the old half of its runs (:meth:`frozen`), sorting nothing again. Set-like: ``in``,
    ``add``, ``len``, iteration (in no order), ``-`` and ``|`` (sets), equal to a set of the
    same digests.

    The bitmap marks the set's digests too (as they are added), so a digest whose bit is
    clear is in neither part: apply.py tests the bit inline, as for :class:`Digests`, and asks
    ``in`` only when it is set (~1 in 40 new digests on average over a half's growth)."""

    __slots__ = ("_set", "_runs", "_in_runs", "bits", "mask")

    #: digests held as a set before they move into a sorted run (512 KiB of set table, 640 KiB
    #: of ints at most)
    SPILL = 16_384

    def __init__(self, digests: Iterable[int], window: int) -> None:
        """``digests``: the half so far; ``window``: the most it will hold (the bitmap's size)."""
        self.bits, self.mask = _bitmap(window)
        self._runs: list[array.array[int]] = []
        self._in_runs = 0
        self._set = set(digests)
        _mark(self.bits, self.mask, self._set)
        while len(self._set) >= self.SPILL:
            self._spill()

    @classmethod
    def of_sorted(cls, a: array.array[int], window: int, bits: bytes | None = None) -> Recent:
        """Over ``a``, distinct digests in ascending order (as :func:`encode` writes them): its
        slices of ``SPILL`` as the runs, nothing sorted (:func:`decode_half`). ``bits``: their
        bitmap as :func:`half_bits` gives it (a format-6 snapshot's), taken instead of marking
        each digest."""
        new = cls.__new__(cls)
        if bits is None:
            new.bits, new.mask = _bitmap(window)
            _mark(new.bits, new.mask, a)
        else:
            new.bits, new.mask = _stored_bitmap(bits, window)
        step = cls.SPILL
        new._runs = [a[i:i + step] for i in range(0, len(a), step)]
        new._in_runs = len(a)
        new._set = set()
        return new

    def with_added(self, digests: Iterable[int]) -> Recent:
        """A copy that holds ``digests`` too: a delta's digests added since its base, applied to
        the base's half (delta.py) at the cost of the added ones, not of the whole half (``half
        | added`` made a set of it all, which the fold's next event made a Recent again).

        ``digests`` as a delta writes them (an ``array('Q')``, ascending, none in this half: the
        fold adds only digests the window lacks) become runs of their own, as a loaded half's
        do (:meth:`of_sorted`): no set of them made, nothing sorted (the dedupe part of a delta's
        apply 10 ms instead of 14 at the simulator's scale, and the fold after it has no set of
        up to 16,384 to copy into each fork and sort at its next spill; BENCHMARKS.md). Any
        others are added one by one."""
        if type(digests) is array.array:
            new = self._with_runs(digests)
            if new is not None:
                return new
        new = self.copy()
        bits, mask, runs, held = new.bits, new.mask, new._runs, new._set
        fresh = []
        for d in set(digests).difference(held):
            i = d & mask
            j, b = i >> 3, 1 << (i & 7)
            if bits[j] & b and _in_runs(runs, d):
                continue
            bits[j] |= b
            fresh.append(d)
        held.update(fresh)
        while len(new._set) >= self.SPILL:
            new._spill()
        return new

    def _with_runs(self, a: array.array[int]) -> Recent | None:
        """:meth:`with_added`'s copy for ``a`` ascending and disjoint from this half (checked as
        each is marked), with ``a``'s slices of ``SPILL`` as further runs; None when ``a`` is
        not so (then the general path, from this half again)."""
        new = self.copy()
        bits, mask, runs, held = new.bits, new.mask, new._runs, new._set
        prev = -1
        for d in a:
            if d <= prev:
                return None
            i = d & mask
            j, b = i >> 3, 1 << (i & 7)
            if bits[j] & b and (d in held or _in_runs(runs, d)):
                return None
            bits[j] |= b
            prev = d
        step = self.SPILL
        runs += [a[i:i + step] for i in range(0, len(a), step)]
        new._in_runs += len(a)
        return new

    def _spill(self) -> None:
        """The set's digests (its first SPILL when it holds more) into a sorted run (marked already)."""
        s = self._set
        if len(s) > self.SPILL:  # (a whole set given at once: its first SPILL digests)
            part = set(itertools.islice(s, self.SPILL))
            s -= part
        else:
            part, self._set = s, set()
        a = array.array("Q", sorted(part))
        self._runs.append(a)
        self._in_runs += len(a)

    def __contains__(self, d: object) -> bool:
        if type(d) is not int:
            return False
        i = d & self.mask
        return self.bits[i >> 3] >> (i & 7) & 1 == 1 and (d in self._set or _in_runs(self._runs, d))

    def add_new(self, d: int) -> int:
        """Add ``d``, which the caller knows is not in it (the fold checked the whole window);
        returns how many it holds now (the fold's rotation test, without a ``len`` call)."""
        s = self._set
        s.add(d)
        i = d & self.mask
        self.bits[i >> 3] |= 1 << (i & 7)
        if len(s) < self.SPILL:
            return self._in_runs + len(s)
        self._spill()
        return self._in_runs

    def add(self, d: int) -> None:
        if d not in self:
            self.add_new(d)

    def __len__(self) -> int:
        return self._in_runs + len(self._set)

    def __iter__(self) -> Iterator[int]:
        """In no particular order (as a set's)."""
        return itertools.chain(itertools.chain.from_iterable(self._runs), self._set)

    def __sub__(self, other: Iterable[int]) -> set[int]:
        return set(self).difference(other)

    def __or__(self, other: Iterable[int]) -> set[int]:
        return set(self).union(other)

    def __eq__(self, other: object) -> bool:
        return _equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Recent:
        new = Recent.__new__(Recent)
        new._set, new._runs, new._in_runs = set(self._set), list(self._runs), self._in_runs  # runs never change
        new.bits, new.mask = bytearray(self.bits), self.mask
        return new

    def frozen(self) -> Digests:
        """Its digests as the window's old half; this one is not used again (they share the bitmap)."""
        if self._set:
            a = array.array("Q", sorted(self._set))
            self._runs.append(a)
            self._in_runs += len(a)
            self._set = set()
        return Digests._of(self._runs, self.bits, self.mask)

    def sorted_array(self) -> array.array[int]:
        """A copy of the digests as a sorted ``array('Q')`` (merged: no int object for each at once)."""
        return array.array("Q", heapq.merge(*self._runs, sorted(self._set)))

    def __repr__(self) -> str:
        return f"<Recent {len(self)}>"


def added_since(now: set[int] | Digests | Recent, then: set[int] | Recent) -> set[int]:
    """``now - then``, where ``then`` is an earlier copy (:meth:`Recent.copy`) of the window's
    new half and ``now`` that half since, or (one rotation later) the old half it became: a
    delta's digests added since its base (delta.py). ``then``'s runs are ``now``'s first ones
    (a run never changes; a spill or a rotation's :meth:`Recent.frozen` appends one), so only
    ``now``'s later runs and its set are read, less ``then``'s set, not every digest of
    ``now``, up to the window's size (~10 ms of each delta at the large profile, which a
    ``verify`` checks ~300 of). A set difference when they do not share their runs so."""
    if type(then) is Recent and type(now) in (Recent, Digests):
        k = len(then._runs)
        runs = now._runs  # type: ignore[union-attr]
        if len(runs) >= k and all(a is b for a, b in zip(runs, then._runs, strict=False)):
            later = itertools.chain.from_iterable(itertools.islice(runs, k, None))
            rest = itertools.chain(later, now._set) if type(now) is Recent else later
            return set(rest).difference(then._set)
    return set(now).difference(then)


def encode(digests: set[int] | Digests | Recent) -> str:
    """Canonical text of a set of digests: sorted, packed big-endian uint64, base64."""
    a = digests.sorted_array() if isinstance(digests, (Digests, Recent)) else array.array("Q", sorted(digests))
    if not _BIG_ENDIAN:
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def decode(value: Any, version: int) -> set[int]:
    """The set :func:`encode` wrote, or (``version`` 4 and before) a list of dedupe keys,
    hashed. Raises ValueError when ``value`` is neither."""
    got = decode_added(value, version)
    return got if type(got) is set else set(got)


def decode_added(value: Any, version: int) -> set[int] | array.array[int]:
    """A delta's digests added since its base, for :meth:`Recent.with_added`: as written (an
    ``array('Q')``, ascending when :func:`encode` wrote it), or (``version`` 4 and before) the
    keys' digests as a set. Raises ValueError as :func:`decode` does."""
    if version <= TEXT_KEYS_VERSION:
        return _hashed_keys(value, version)
    return _digests(value)


def decode_half(value: Any, version: int, window: int, bits: bytes | None = None) -> set[int] | Recent:
    """The window's new half :func:`encode` wrote, as the fold keeps it: a set below
    :attr:`Recent.SPILL` digests, else a :class:`Recent` over the sorted digests as written
    (cut into runs, none sorted again). A set of that size became a Recent at the first event a
    fold applied after the load anyway, sorting it again (~0.1 s at 100,000 digests, a quarter
    of a warm read's fold after a delta at the simulator's scale; BENCHMARKS.md, "The dedupe
    window's new half as it was written"). ``bits``: its bitmap (:func:`half_bits`), a
    format-6 snapshot's, taken instead of marking. Raises ValueError as :func:`decode` does,
    or for a bitmap not of the window's size."""
    if version <= TEXT_KEYS_VERSION:
        keys = _hashed_keys(value, version)
        return Recent(keys, window) if len(keys) >= Recent.SPILL else keys
    a = _digests(value)
    if len(a) < Recent.SPILL:
        return set(a)
    if not _ascending(a):
        # not as encode writes it (sorted, distinct): what a set makes of it, as decode's
        if bits is not None:
            raise ValueError("the dedupe window's new half is not sorted and distinct beside its bitmap")
        return Recent(set(a), window)
    return Recent.of_sorted(a, window, bits)


def half_bits(half: set[int] | Digests | Recent, window: int) -> bytes | None:
    """The bitmap a format-6 snapshot stores beside a half of at least :attr:`Recent.SPILL`
    digests (None for fewer: such a half loads as a set): a window-sized bitmap (``_bitmap``)
    marking exactly its digests. A :class:`Recent`'s, and the :class:`Digests` a rotation made
    of one, are that bitmap already (a half only ever gains digests, each marked as it comes),
    so it is copied, not marked again (~10 ms a half at the simulator's scale)."""
    if len(half) < Recent.SPILL:
        return None
    if isinstance(half, (Digests, Recent)) and half.mask == _mask(window):
        return bytes(half.bits)
    bits, mask = _bitmap(window)
    _mark(bits, mask, half)
    return bytes(bits)


def decode_old_half(value: Any, version: int, window: int, bits: bytes | None = None) -> set[int] | Digests:
    """The window's old half :func:`encode` wrote: with its bitmap (``bits``, :func:`half_bits`,
    a format-6 snapshot's) a :class:`Digests` over the digests as written, nothing marked or
    sorted; else a set (:func:`decode`). Raises ValueError as :func:`decode` does, or for a
    bitmap not of the window's size."""
    if bits is None or version <= TEXT_KEYS_VERSION:
        return decode(value, version)
    a = _digests(value)
    if not _ascending(a):
        raise ValueError("the dedupe window's old half is not sorted and distinct beside its bitmap")
    return Digests._of([a], *_stored_bitmap(bits, window))


def _hashed_keys(value: Any, version: int) -> set[int]:
    if type(value) is not list or not all(type(k) is str for k in value):
        raise ValueError(f"dedupe keys of reducer version {version} must be a list of str")
    return {digest(k) for k in value}


def decode_bits(value: Any) -> bytes | None:
    """A stored bitmap's text (:func:`half_bits`, base64; None: none stored) as its bytes. Raises
    ValueError when it is not base64 text."""
    return None if value is None else _base64(value, "a dedupe bitmap", "is")


def _base64(value: Any, what: str, verb: str) -> bytes:
    if type(value) is not str:
        raise ValueError(f"{what} must be base64 text, not {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ValueError(f"{what} {verb} not base64: {e}") from None


def _digests(value: Any) -> array.array[int]:
    raw = _base64(value, "dedupe digests", "are")
    if len(raw) % 8:
        raise ValueError(f"dedupe digests are {len(raw)} bytes, not a multiple of 8")
    a = array.array("Q", raw)
    if not _BIG_ENDIAN:
        a.byteswap()
    return a
