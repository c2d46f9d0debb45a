"""CRC-32 of stored snapshots' and deltas' values (the ``crc`` of a section's line).

The same checksum as :func:`zlib.crc32` (the polynomial of zlib, gzip and PNG: stored bytes do not
change), computed by ISA-L's carry-less-multiply code (the ``isal`` package) where it is installed.
Measured here: 8 ms for 100 MiB against zlib's 44 ms when the bytes are not in the CPU's caches
(``verify`` checking a full snapshot's ~100 MB of values in one call: ~36 ms of each of its 73
full checks at the large profile), 1.7 ms against 16 ms over a snapshot load's 76 MiB read in
1 MiB parts (BENCHMARKS.md). Without ``isal`` (a platform it has no wheel for) zlib's is used:
slower, never different.

``crc32(data, value=0)``: the CRC of ``data`` (any bytes-like object) continued from ``value``,
so ``crc32(b, crc32(a)) == crc32(a + b)``.
"""

from __future__ import annotations

try:
    from isal.isal_zlib import crc32

    BACKEND = "isal"
except ImportError:  # pragma: no cover - platforms without an isal wheel
    from zlib import crc32

    BACKEND = "zlib"

__all__ = ["BACKEND", "crc32"]
