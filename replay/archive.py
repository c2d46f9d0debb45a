"""The archive format: one cluster's records, portable, readable with no server running.

Layout of a ``.kmarch`` file::

    b"KMEVARCH\\x01"                     magic and format version
    uint32_be n, n bytes of JSON        the header (below), uncompressed: readable at a glance
    zstd stream of records, each:
        int64_be offset                 original offset in the cluster's partition
        int64_be timestamp              original log-append time, ms
        int32_be key length             -1: no key
        int32_be value length           -1: no value
        key bytes, value bytes          exactly as stored in Kafka

The header (JSON object, sorted keys)::

    format            "kmevents.archive/1"
    cluster, partition, topic          where the records were read
    covers_from, covers_to             the archive holds EVERY record of the cluster
                                       with covers_from <= offset <= covers_to
    count, first_offset, last_offset   the records actually in it
    chain_head_start                   chain head before covers_from (genesis at 0)
    chain_head_end                     chain head after the last record
    first_recorded_at, last_recorded_at
    schema_versions                    {event type: [schema versions seen]}
    reducer_version                    the reducer of the exporting kmevents
    created_at

Record bytes are never re-encoded, so the chain recomputed from an archive
equals the chain over the topic (DESIGN.md rule 6). Writing goes to a
temporary file that is renamed into place when complete: a half-written
archive never carries the final name.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import zstandard
from kmevents.replay.records import LogRecord
from kmevents.replay.timespec import iso_of_ms

from kmevents import chain
from kmevents.errors import CheckFailed, UsageError
from kmevents.reducer import REDUCER_VERSION

MAGIC = b"KMEVARCH\x01"
FORMAT = "kmevents.archive/1"
SUFFIX = ".kmarch"
_REC = struct.Struct(">qqii")
_READ_CHUNK = 4 * 1024 * 1024


class ArchiveError(CheckFailed):
    """A file that is not a complete kmevents archive (or is damaged)."""


class ArchiveWriter:
    """Write one archive: ``add`` records in offset order, then ``close(covers_to)``.

    ``chain_head_start`` is the chain head before ``covers_from`` (genesis
    when the archive starts at the beginning of the log).
    """

    def __init__(self, path: str | Path, *, cluster: str, partition: int, topic: str,
                 covers_from: int, chain_head_start: str | None = chain.GENESIS, level: int = 3,
                 filtered: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = {
            "format": FORMAT, "cluster": cluster, "partition": partition, "topic": topic,
            "covers_from": covers_from, "chain_head_start": chain_head_start,
        }
        if filtered is not None:
            # Records were left out (what a token may not see): the chain cannot be
            # followed through this archive alone, so it carries no chain heads.
            self.meta["filtered"] = filtered
            self.meta["chain_head_start"] = chain_head_start = None
        self.head = chain_head_start
        self.count = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.versions: dict[str, set[int]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".records-", dir=self.path.parent)
        self._tmp_path = Path(tmp)
        self._raw = os.fdopen(fd, "wb")
        self._z = zstandard.ZstdCompressor(level=level).stream_writer(self._raw, closefd=False)
        self._buf: list[bytes] = []
        self._buffered = 0

    def add(self, rec: LogRecord) -> None:
        if self.last_offset is not None and rec.offset <= self.last_offset:
            raise UsageError(f"archive records must ascend: {rec.offset} after {self.last_offset}")
        k, v = rec.key, rec.value
        self._buf.append(_REC.pack(rec.offset, rec.timestamp, -1 if k is None else len(k),
                                   -1 if v is None else len(v)))
        if k:
            self._buf.append(k)
        if v:
            self._buf.append(v)
        self._buffered += 24 + len(k or b"") + len(v or b"")
        if self._buffered >= _READ_CHUNK:
            self._flush()
        if self.head is not None:
            self.head = chain.link(self.head, k, v)
        if self.first_offset is None:
            self.first_offset, self.first_ts = rec.offset, rec.timestamp
        self.last_offset, self.last_ts = rec.offset, rec.timestamp
        self.count += 1
        try:
            ev = orjson.loads(v or b"")
            self.versions.setdefault(str(ev.get("type")), set()).add(ev.get("schema_version"))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            self.versions.setdefault("<undecodable>", set())

    def _flush(self) -> None:
        if self._buf:
            self._z.write(b"".join(self._buf))
            self._buf, self._buffered = [], 0

    def close(self, covers_to: int | None = None) -> dict[str, Any]:
        """Finish the file; ``covers_to`` defaults to the last record's offset. Returns the header."""
        self._flush()
        self._z.close()
        self._raw.close()
        header = {
            **self.meta,
            "covers_to": covers_to if covers_to is not None else (self.last_offset if self.last_offset is not None
                                                                  else self.meta["covers_from"] - 1),
            "count": self.count, "first_offset": self.first_offset, "last_offset": self.last_offset,
            "chain_head_end": self.head,
            "first_recorded_at": iso_of_ms(self.first_ts) if self.first_ts is not None else None,
            "last_recorded_at": iso_of_ms(self.last_ts) if self.last_ts is not None else None,
            "schema_versions": {t: sorted(x for x in vs if x is not None) for t, vs in sorted(self.versions.items())},
            "reducer_version": REDUCER_VERSION,
            "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        hbytes = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        fd, final_tmp = tempfile.mkstemp(prefix=".archive-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(self._tmp_path, "rb") as body:
                out.write(MAGIC + len(hbytes).to_bytes(4, "big") + hbytes)
                while True:
                    chunk = body.read(_READ_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
            os.replace(final_tmp, self.path)
        finally:
            self._tmp_path.unlink(missing_ok=True)
            Path(final_tmp).unlink(missing_ok=True)
        return header

    def abort(self) -> None:
        """Drop the half-written records (Ctrl-C): nothing appears under the final name."""
        try:
            self._z.close()
            self._raw.close()
        finally:
            self._tmp_path.unlink(missing_ok=True)


def write(path: str | Path, records: list[LogRecord], **meta: Any) -> dict[str, Any]:
    """Write ``records`` as one archive (see :class:`ArchiveWriter` for ``meta``)."""
    covers_to = meta.pop("covers_to", None)
    w = ArchiveWriter(path, **meta)
    for r in records:
        w.add(r)
    return w.close(covers_to)


def read_header(path: str | Path) -> dict[str, Any]:
    """The header of an archive (no decompression)."""
    with open(path, "rb") as f:
        return _header(f, path)


def _header(f: Any, path: str | Path) -> dict[str, Any]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise ArchiveError(f"{path}: not a kmevents archive (bad magic {magic[:9]!r})",
                           hint="archives are written by `kmevents archive export`")
    n = int.from_bytes(f.read(4), "big")
    try:
        header: dict[str, Any] = orjson.loads(f.read(n))
    except orjson.JSONDecodeError as exc:
        raise ArchiveError(f"{path}: damaged archive header: {exc}") from None
    if header.get("format") != FORMAT:
        raise ArchiveError(f"{path}: unsupported archive format {header.get('format')!r}",
                           hint=f"this kmevents reads {FORMAT}")
    return header


def iter_batches(path: str | Path, *, batch: int = 20_000) -> Iterator[list[LogRecord]]:
    """The archive's records in batches (lists), in offset order."""
    unpack = _REC.unpack_from
    with open(path, "rb") as f:
        _header(f, path)
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=1 << 20)
        buf = b""
        pos = 0
        out: list[LogRecord] = []
        try:
            while True:
                chunk = reader.read(_READ_CHUNK)
                if not chunk:
                    break
                buf = buf[pos:] + chunk
                pos = 0
                end = len(buf)
                while pos + 24 <= end:
                    off, ts, kl, vl = unpack(buf, pos)
                    p = pos + 24
                    need = p + max(kl, 0) + max(vl, 0)
                    if need > end:
                        break
                    key = None if kl < 0 else buf[p:p + kl]
                    p += max(kl, 0)
                    value = None if vl < 0 else buf[p:p + vl]
                    out.append(LogRecord(off, ts, key, value))
                    pos = need
                    if len(out) >= batch:
                        yield out
                        out = []
        except zstandard.ZstdError as exc:
            raise ArchiveError(f"{path}: damaged archive body: {exc}") from None
        if pos != len(buf):
            raise ArchiveError(f"{path}: archive ends inside a record (truncated file)",
                               hint="export it again from the topic or an earlier copy")
        if out:
            yield out


def segment_name(cluster: str, first: int, last: int) -> str:
    """File name of a ``--follow`` segment; sorts by offset."""
    return f"{cluster}-{first:020d}-{last:020d}{SUFFIX}"
