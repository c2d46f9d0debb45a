"""kmevents.checksum: the CRC-32 stored sections carry, whichever library computes it."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from kmevents import checksum


@given(st.binary(max_size=4096), st.binary(max_size=4096), st.integers(min_value=0, max_value=2**32 - 1))
def test_same_as_zlib_and_continues(a: bytes, b: bytes, start: int) -> None:
    # stored snapshots and deltas written with zlib's crc32 must check the same, and the loaders
    # continue a CRC part by part
    assert checksum.crc32(a) == zlib.crc32(a)
    assert checksum.crc32(a, start) == zlib.crc32(a, start)
    assert checksum.crc32(b, checksum.crc32(a)) == zlib.crc32(a + b)


def test_bytes_like_inputs() -> None:
    data = bytes(range(256)) * 64
    view = memoryview(data)[100:9000]
    assert checksum.crc32(view, 7) == zlib.crc32(view, 7)
    assert checksum.crc32(bytearray(data)) == zlib.crc32(data)
    assert checksum.crc32(b"") == 0


def test_isal_is_what_an_install_uses() -> None:
    # isal is a dependency (pyproject.toml): an install without it is slower for every snapshot
    assert checksum.BACKEND == "isal"
