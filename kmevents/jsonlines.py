"""Reading JSON-lines files robustly: every line is accounted for, none stops the rest.

``read(path_or_dash)`` yields one :class:`Line` per non-blank line with either
the decoded object or a precise reason it could not be decoded: not UTF-8,
not JSON, a truncated last line (no newline at end of file and not JSON),
or longer than ``max_line_bytes``. ``-`` reads standard input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

DEFAULT_MAX_LINE_BYTES = 1024 * 1024


@dataclass
class Line:
    number: int
    obj: Any = None
    error: str | None = None
    raw_size: int = 0


def _open(path: str | Path) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115 - closed by read()


def read(path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Line]:
    f = _open(path)
    try:
        number = 0
        while True:
            raw = f.readline(max_line_bytes + 1)
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                # Skip the rest of the over-long line without holding it in memory.
                size = len(raw)
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(1024 * 1024)
                    size += len(raw)
                yield Line(number, error=f"line is {size:,} bytes, over the limit of {max_line_bytes:,} "
                                        "(raise --max-line-bytes)", raw_size=size)
                continue
            truncated = not raw.endswith(b"\n")
            body = raw.strip()
            if not body:
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Line(number, error=f"not UTF-8 (byte {exc.start})", raw_size=len(raw))
                continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                why = "truncated last line (no newline at end of file)" if truncated else f"not JSON: {exc}"
                yield Line(number, error=why, raw_size=len(raw))
                continue
            yield Line(number, obj=obj, raw_size=len(raw))
    finally:
        if f is not sys.stdin.buffer:
            f.close()
