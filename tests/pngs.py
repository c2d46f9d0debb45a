"""Just enough PNG for the screenshot tests: read Chromium's screenshots (8-bit RGB/RGBA, not
interlaced) into rows of pixels, count colours in a region, and write a crop to look at."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Image:
    width: int
    height: int
    rows: list[bytes]  # RGB, 3 bytes a pixel

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        r = self.rows[y]
        return r[3 * x], r[3 * x + 1], r[3 * x + 2]

    def count(self, colour: tuple[int, int, int], *, box: tuple[int, int, int, int] | None = None,
              tolerance: int = 24) -> int:
        """Pixels within ``tolerance`` (per channel) of ``colour`` in ``box`` (x0, y0, x1, y1; default all)."""
        x0, y0, x1, y1 = box or (0, 0, self.width, self.height)
        n = 0
        for y in range(max(0, y0), min(self.height, y1)):
            row = self.rows[y]
            for x in range(max(0, x0), min(self.width, x1)):
                i = 3 * x
                if (abs(row[i] - colour[0]) <= tolerance and abs(row[i + 1] - colour[1]) <= tolerance
                        and abs(row[i + 2] - colour[2]) <= tolerance):
                    n += 1
        return n

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> Image:
        return Image(x1 - x0, y1 - y0, [r[3 * x0:3 * x1] for r in self.rows[y0:y1]])

    def save(self, path: Path) -> None:
        raw = b"".join(b"\x00" + r for r in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        path.write_bytes(SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read(path: Path) -> Image:
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"{path}: only 8-bit RGB/RGBA, not interlaced (depth {depth}, colour {colour})")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
        if channels == 4:
            rows.append(bytes(v for j in range(width) for v in line[4 * j:4 * j + 3]))
        else:
            rows.append(bytes(line))
    return Image(width, height, rows)
