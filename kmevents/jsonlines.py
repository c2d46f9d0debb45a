"""Reading JSON-lines files robustly: every line is accounted for, none stops the rest.

``read(path_or_dash)`` yields one :class:`Line` per non-blank line with either
the decoded object or a precise reason it could not be decoded: not UTF-8,
not JSON, a key written twice in one object, nested deeper than an event can
be stored, a truncated last line (no newline at end of file and not JSON), or
longer than ``max_line_bytes``. ``-`` reads standard input.

Repeated keys: orjson (like most parsers) keeps the last of ``{"type": "a",
"type": "b"}`` without a word, so a producer's bug would be written as if
meant. :func:`repeated_keys` finds them at almost no cost for the usual line
(see its docstring); ``POST /v1/events`` uses it too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
#: Deepest nesting orjson writes (and so the deepest an event can be stored).
MAX_DEPTH: Final = 254

Path_ = tuple[str | int, ...]
"""Where an object sits in a document: keys and list indexes."""


class _Pairs(list[tuple[str, Any]]):
    """An object as the standard library read it, every pair kept (``object_pairs_hook``)."""


def repeated_keys(raw: bytes | str, parsed: Any) -> list[tuple[Path_, str]]:
    """Every key written twice in one object of the JSON text ``raw``, as ``(path of the object, key)``.

    ``parsed`` is orjson's reading of ``raw``. Cheap when there is none (one
    ``orjson.dumps`` and two byte counts, ~3 us for a 1 KB event): when
    ``raw`` holds no backslash, its strings hold no escapes, so orjson writes
    every string of ``parsed`` exactly as ``raw`` has it; a colon is either a
    key's or inside a string, and numbers, ``true``, ``null`` and whitespace
    have none. So ``parsed`` written again has as many colons as ``raw``
    unless parsing dropped pairs, and each dropped pair took at least its
    key's colon with it. Worked example: ``{"t":"a:b","t":"c"}`` has 3 colons,
    orjson's ``{"t":"c"}`` 1. Otherwise (a repeat, or a backslash: a few lines
    in a thousand) ``raw`` is read again with the standard library, keeping
    every pair, to name the keys. Raises ``ValueError`` when ``parsed`` nests
    deeper than ``MAX_DEPTH``: no event can be stored so.
    """
    try:
        written = orjson.dumps(parsed)
    except orjson.JSONEncodeError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep; an event cannot be stored so") from None
    colons = written.count(b":")
    if isinstance(raw, bytes):
        plain = b"\\" not in raw and raw.count(b":") == colons
    else:
        plain = "\\" not in raw and raw.count(":") == colons
    if plain:
        return []
    try:
        tree = json.loads(raw, object_pairs_hook=_Pairs)
    except ValueError:  # what orjson read and the standard library does not (a lone surrogate): cannot tell
        return []
    found: list[tuple[Path_, str]] = []
    stack: list[tuple[Path_, Any]] = [((), tree)]
    while stack:  # depth first, in document order; no recursion
        path, node = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _ in node:
                if key in seen and (path, key) not in found:
                    found.append((path, key))
                seen.add(key)
            stack.extend(((*path, key), value) for key, value in reversed(node))
        elif isinstance(node, list):
            stack.extend(((*path, i), value) for i, value in reversed(list(enumerate(node))))
    return found


def repeats_reason(repeats: list[tuple[Path_, str]], where: str) -> str:
    """The refusal of an event with repeated keys: ``duplicate key 'type' in event at line 12: ...``."""
    shown = ", ".join(f"{key!r}" + (f" (in {'.'.join(map(str, path))})" if path else "")
                      for path, key in repeats[:3])
    more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
    noun = "key" if len(repeats) == 1 else "keys"
    return (f"duplicate {noun} {shown}{more} in event {where}: JSON parsers keep only one of the values "
            "(which one depends on the parser), so the event is refused; send each key once")


def loads(raw: bytes | str, where: str) -> Any:
    """One JSON document (an event) from ``raw``; ``ValueError`` with the reason when it is not
    JSON, repeats a key or nests too deep. ``where`` (``at line 12``) goes into the reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    repeats = repeated_keys(raw, obj)
    if repeats:
        raise ValueError(repeats_reason(repeats, where))
    return obj


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
                obj = loads(text, f"at line {number}")
            except ValueError as exc:
                why = str(exc)
                if truncated and why.startswith("not JSON"):
                    why = "truncated last line (no newline at end of file)"
                yield Line(number, error=why, raw_size=len(raw))
                continue
            yield Line(number, obj=obj, raw_size=len(raw))
    finally:
        if f is not sys.stdin.buffer:
            f.close()
