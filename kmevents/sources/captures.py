"""Reading captured source data from files, in the forms real captures take (``kmevents import``).

Every reader tolerates what capture tools add or do:

- **gzip**: a file starting with the gzip magic is decompressed (``--audit-log-compress``,
  ``curl ... | gzip``), whatever its name;
- **HTTP headers**: a capture made with ``curl -i`` / ``curl -D -`` starts with the
  response's status line and headers (several blocks when redirects were followed:
  the last one is the answer); they are split off and kept (a Mesos master's ``Date``
  header is the capture time on the master's clock; ``Mesos-Stream-Id`` names a stream);
- **JSON lines or documents** (:func:`json_values`): one JSON value per line (an audit
  log, ``curl ...?watch=1``), or one or more pretty-printed documents one after another
  (``kubectl get -o json``, ``kubectl get -w -o json``). Which one is decided by the first
  non-blank line: when it is a whole JSON value, the file is JSON lines and every line is
  one record (a line that is not JSON is one record that failed, and the next line is
  read); else the file is a sequence of documents, and a document that does not parse
  ends the file there (the rest is one failed record: there is no line to resynchronise on);
- **RecordIO** (:func:`recordio_frames`): ``<length>\\n<bytes>`` frames with their byte
  offsets; a bad length prefix or a frame cut short (the capture was stopped mid-record)
  is reported with the bytes from there on, which cannot be read further.

A capture's time (:func:`capture_time`), for sources whose records carry none (the
``/master/state`` poller stamps what it sees with its own clock): the ``Date`` header of
the response when the capture kept it (clock ``master``: libprocess stamps every
response), else ``--captured-at``, else a time in the file's name (epoch seconds, or
``YYYYmmddTHHMMSS`` in any common spelling, read as UTC), else the file's modification
time (clock ``adapter``: the capturing machine's).

No parsing of the records themselves happens here: that is the parsers' job.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kmevents.errors import UsageError

GZIP_MAGIC = b"\x1f\x8b"
#: Longest header block split off a capture (anything longer is not a header).
MAX_HEADER_BYTES = 64 * 1024


@dataclass
class Capture:
    """One captured file: its bytes (decompressed, headers split off) and what the headers said."""

    path: Path
    body: bytes
    status: str | None = None
    """The HTTP status line when the capture kept the headers (``HTTP/1.1 200 OK``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    header_lines: int = 0
    """Lines before the body (so that line numbers stay those of the file)."""


def expand(paths: list[str]) -> list[tuple[str, Path]]:
    """``(the argument it came from, file)`` for each path; a directory gives its files, sorted by name
    (hidden files, and the ``*.quarantine.jsonl`` of an earlier dry run, left out)."""
    out: list[tuple[str, Path]] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and not f.name.endswith(".quarantine.jsonl"))
            if not files:
                raise UsageError(f"{arg} is an empty directory", hint="give the files or the directory that holds them")
            out.extend((arg, f) for f in files)
        elif p.is_file():
            out.append((arg, p))
        else:
            raise UsageError(f"cannot read {arg}: no such file or directory", hint="check the path")
    return out


def read_capture(path: Path) -> Capture:
    """The whole file (gunzipped), HTTP headers split off (see the module docstring)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions") from None
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UsageError(f"{path} looks gzip-compressed but cannot be decompressed: {exc}",
                             hint="check that the file is whole (a capture still being written is cut short)") from None
    return split_headers(path, data)


def split_headers(path: Path, data: bytes) -> Capture:
    """Split ``curl -i`` header blocks (``HTTP/x status`` up to an empty line) off ``data``."""
    cap = Capture(path, data)
    pos = 0
    while data.startswith(b"HTTP/", pos):
        end = data.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
        sep = 4
        if end < 0:
            end, sep = data.find(b"\n\n", pos, pos + MAX_HEADER_BYTES), 2
        if end < 0:
            break
        block = data[pos:end].decode("latin-1").splitlines()
        cap.status, cap.headers = block[0].strip(), {}
        for line in block[1:]:
            name, colon, value = line.partition(":")
            if colon:
                cap.headers[name.strip().lower()] = value.strip()
        cap.header_lines += data.count(b"\n", pos, end + sep)
        pos = end + sep
    cap.body = data[pos:]
    return cap


@dataclass
class Value:
    """One JSON value read from a file: ``obj`` when it parsed, else ``error``; ``raw`` its bytes."""

    obj: Any
    raw: bytes
    line: int
    """The file line it starts on (from 1)."""
    error: str | None = None


def json_values(cap: Capture) -> Iterator[Value]:
    """The JSON values of a capture's body, JSON lines or documents (see the module docstring)."""
    body = cap.body
    lines = body.split(b"\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return
    base = cap.header_lines + 1
    try:
        orjson.loads(lines[first])
        one_per_line = True
    except orjson.JSONDecodeError:
        one_per_line = False
    if one_per_line:
        for i, ln in enumerate(lines):
            if not ln.strip():
                continue
            try:
                yield Value(orjson.loads(ln), ln.rstrip(b"\r"), base + i)
            except orjson.JSONDecodeError as exc:
                yield Value(None, ln.rstrip(b"\r"), base + i, f"line is not JSON: {exc}")
        return
    try:
        yield Value(orjson.loads(body), body, base + first)
        return
    except orjson.JSONDecodeError:
        pass
    yield from _documents(body.decode("utf-8", "surrogateescape"), base)


def _documents(text: str, base: int) -> Iterator[Value]:
    """Pretty-printed JSON documents one after another (``kubectl get -w -o json``)."""
    decoder = json.JSONDecoder()
    pos, line = 0, base
    n = len(text)
    while True:
        start = pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= n:
            return
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            rest = text[pos:].encode("utf-8", "surrogateescape")
            yield Value(None, rest, line, f"document is not JSON: {exc.msg} at line {base - 1 + text.count(chr(10), 0, exc.pos) + 1}"
                                        "; the rest of the file cannot be read")
            return
        yield Value(obj, text[pos:end].encode("utf-8", "surrogateescape"), line)
        line += text.count("\n", pos, end)
        pos = end


@dataclass
class Frame:
    """One RecordIO frame: ``record`` and its byte ``offset`` in the body, or an ``error`` and
    the bytes from ``offset`` on (``raw``), which cannot be read further."""

    offset: int
    record: bytes | None
    error: str | None = None
    raw: bytes = b""


def recordio_frames(body: bytes) -> Iterator[Frame]:
    """``<length>\\n<bytes>`` frames of a captured Mesos stream, with their offsets."""
    pos, n = 0, len(body)
    while pos < n:
        nl = body.find(b"\n", pos, pos + 22)
        if nl >= 0 and not body[pos:nl].strip():  # a blank line between frames
            pos = nl + 1
            continue
        if nl < 0:
            rest = body[pos:]
            if not rest.strip():
                return
            if rest.strip().isdigit() and len(rest) <= 21:
                yield Frame(pos, None, f"the capture ends inside a length prefix ({rest.strip().decode()!r})", rest)
            else:
                yield Frame(pos, None, f"no RecordIO length prefix at byte {pos}: {rest[:20]!r}", rest)
            return
        head = body[pos:nl].strip()
        if not head.isdigit():
            yield Frame(pos, None, f"RecordIO length prefix is not a number at byte {pos}: {head[:20]!r}", body[pos:])
            return
        size, start = int(head), nl + 1
        if start + size > n:
            yield Frame(pos, None, f"the capture ends inside a record: {size:,} bytes announced at byte {pos}, "
                                   f"{n - start:,} present (the capture was stopped mid-record)", body[pos:])
            return
        yield Frame(pos, body[start:start + size])
        pos = start + size


# ---- capture times ---------------------------------------------------------------------

_EPOCH_IN_NAME = re.compile(r"(?<!\d)(1\d{9})(?:\.(\d{1,6}))?(?!\d)")
_DATE_IN_NAME = re.compile(
    r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})[T_\-.]?(\d{2})[:\-]?(\d{2})[:\-]?(\d{2})(?:[.,](\d{1,6}))?(?!\d)")


def time_in_name(name: str) -> float | None:
    """Epoch seconds of a time written in a file name (``state-1436367900.json``,
    ``state-20150708T150500Z.json``, ``state.2015-07-08_15-05-00.json``), read as UTC; None when none."""
    m = _DATE_IN_NAME.search(name)
    if m:
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        try:
            when = dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC)
        except ValueError:
            when = None
        if when is not None and 1990 <= y <= 2100:
            return when.timestamp() + float("0." + (m.group(7) or "0"))
    m = _EPOCH_IN_NAME.search(name)
    if m:
        return int(m.group(1)) + float("0." + (m.group(2) or "0"))
    return None


def http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP ``Date`` header (``Wed, 08 Jul 2015 15:05:00 GMT``), None if unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass(frozen=True)
class CaptureTime:
    """When a capture was taken, which clock says so, and how it was found."""

    seconds: float
    clock: str
    """``master`` (the response's ``Date`` header), else ``adapter``."""
    how: str
    """``Date header``, ``--captured-at``, ``file name``, ``modification time``."""


def capture_time(cap: Capture, captured_at: float | None = None) -> CaptureTime:
    """The capture's time, by the order in the module docstring."""
    date = cap.headers.get("date")
    if date is not None and (t := http_date(date)) is not None:
        return CaptureTime(t, "master", "Date header")
    if captured_at is not None:
        return CaptureTime(captured_at, "adapter", "--captured-at")
    if (t := time_in_name(cap.path.name)) is not None:
        return CaptureTime(t, "adapter", "file name")
    return CaptureTime(cap.path.stat().st_mtime, "adapter", "modification time")
