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


def digest(key: str) -> int:
    """The window's form of a dedupe key: BLAKE2b's first 8 bytes, big-endian, as an int
    in [0, 2^64). Stable across processes, machines and Python versions."""
    return _U64.unpack(blake2b(key.encode(), digest_size=8).digest())[0]


class Digests:
    """The window's old half, which the fold only reads until it replaces it whole (apply.py's
    rotation): its digests as one sorted array of uint64 (8 bytes each) behind a bitmap of
    their low bits, instead of a set of int objects (~74 bytes each: 7.4 MiB of the 100,000
    digests' 14.8 MiB in the window, issue 17). ``d in old`` reads one bit for most digests
    not in it (1 in ~16 passes it and is looked up by bisection). Compares equal to a set of
    the same digests; ``old - s`` is a set."""

    __slots__ = ("_a", "_bits", "_mask")

    def __init__(self, digests: Iterable[int]) -> None:
        self._a = a = array.array("Q", sorted(digests))
        n_bits = 1 << max(12, (16 * len(a)).bit_length())  # >= 16 bits a digest
        self._mask = mask = n_bits - 1
        self._bits = bits = bytearray(n_bits >> 3)
        for d in a:
            i = d & mask
            bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, d: object) -> bool:
        if type(d) is not int:
            return False
        i = d & self._mask
        if not self._bits[i >> 3] >> (i & 7) & 1:
            return False
        a = self._a
        j = bisect_left(a, d)
        return j < len(a) and a[j] == d

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[int]:
        return iter(self._a)

    def __sub__(self, other: Iterable[int]) -> set[int]:
        return set(self._a).difference(other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Digests):
            return self._a == other._a
        if isinstance(other, (set, frozenset)):
            return len(other) == len(self._a) and all(d in other for d in self._a)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def sorted_array(self) -> array.array[int]:
        """A copy of the digests as a sorted ``array('Q')``."""
        return array.array("Q", self._a)

    def __repr__(self) -> str:
        return f"<Digests {len(self._a)}>"


def encode(digests: set[int] | Digests) -> str:
    """Canonical text of a set of digests: sorted, packed big-endian uint64, base64."""
    a = digests.sorted_array() if type(digests) is Digests else array.array("Q", sorted(digests))
    if not _BIG_ENDIAN:
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def decode(value: Any, version: int) -> set[int]:
    """The set :func:`encode` wrote, or (``version`` 4 and before) a list of dedupe keys,
    hashed. Raises ValueError when ``value`` is neither."""
    if version <= TEXT_KEYS_VERSION:
        if type(value) is not list or not all(type(k) is str for k in value):
            raise ValueError(f"dedupe keys of reducer version {version} must be a list of str")
        return {digest(k) for k in value}
    if type(value) is not str:
        raise ValueError(f"dedupe digests must be base64 text, not {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ValueError(f"dedupe digests are not base64: {e}") from None
    if len(raw) % 8:
        raise ValueError(f"dedupe digests are {len(raw)} bytes, not a multiple of 8")
    a = array.array("Q", raw)
    if not _BIG_ENDIAN:
        a.byteswap()
    return set(a)
