"""The archive format: one cluster's records, portable, readable with no server running.

Layout of a ``.kmarch`` file (format 2)::

    b"KMEVARCH\\x01"                     magic
    uint32_be n, n bytes of JSON        the header (below), uncompressed: readable at a glance
    record frames                       zstd frames of whole records, each up to ~4 MiB of
                                        record bytes; every record is:
        int64_be offset                 original offset in the cluster's partition
        int64_be timestamp              original log-append time, ms
        int32_be key length             -1: no key
        int32_be value length           -1: no value
        key bytes, value bytes          exactly as stored in Kafka
    snapshots                           the folded state at some offsets (zstd), optional

The header (JSON object, sorted keys)::

    format            "kmevents.archive/2"
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
    frames            [[first offset, stored length], ...]: the record frames in file
                      order, so a read from offset N starts at the frame holding N
    snapshots         [{offset, chain, reducer_version, bytes, stored_bytes, codec}, ...]:
                      the snapshots after the frames, in this order (``bytes`` the
                      canonical state's size, ``stored_bytes`` what the file holds,
                      ``chain`` the chain head at ``offset``, checked at export)

A point-in-time read from archives alone starts at the newest snapshot at or
before its target and decompresses only the frames after it, so its cost does
not grow with the archive's length (DESIGN.md rule 7). Format 1 (one zstd
stream, no frames, no snapshots; kmevents before 2026-11-27) is still read.

Record bytes are never re-encoded, so the chain recomputed from an archive
equals the chain over the topic (DESIGN.md rule 6). Writing goes to temporary
files that are joined under the final name when complete: a half-written
archive never carries the final name.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard
from kmevents.replay.records import LogRecord

from kmevents import chain
from kmevents.errors import CheckFailed, UsageError
from kmevents.reducer import REDUCER_VERSION, SnapshotError
from kmevents.store import snapshots as snapshot_codec
from kmevents.timespec import iso_of_ms

MAGIC = b"KMEVARCH\x01"
FORMAT = "kmevents.archive/2"
FORMAT_1 = "kmevents.archive/1"
SUFFIX = ".kmarch"
_REC = struct.Struct(">qqii")
_READ_CHUNK = 4 * 1024 * 1024
#: Record bytes per frame: the granularity of a seek (a read from offset N
#: decompresses at most this much before N).
FRAME_BYTES = _READ_CHUNK
#: Records per batch of :func:`iter_batches`: a fold holds one beside its state (20,000
#: records of the large profile were ~35 MiB of a whole-log rebuild's peak RSS; 2,048 were
#: ~4 MiB at the quick size, where 512 lower the peak by 3.7 MiB and 256 by 0.7 more; a
#: frame is decoded 256 KiB at a time). Per batch the replay engine only takes the dirty
#: set and yields to the event loop.
BATCH = 512
#: Decompressed bytes read from a record frame at a time (:func:`iter_batches`).
_FRAME_PIECE = 256 * 1024


class ArchiveError(CheckFailed):
    """A file that is not a complete kmevents archive (or is damaged)."""


class ArchiveWriter:
    """Write one archive: ``add`` records in offset order, ``add_snapshot`` states, then ``close(covers_to)``.

    ``chain_head_start`` is the chain head before ``covers_from`` (genesis
    when the archive starts at the beginning of the log). ``heads_at``: offsets
    whose chain head ``heads`` keeps as the records pass (to check a snapshot's
    chain before adding it).
    """

    def __init__(self, path: str | Path, *, cluster: str, partition: int, topic: str,
                 covers_from: int, chain_head_start: str | None = chain.GENESIS, level: int = 3,
                 filtered: dict[str, Any] | None = None, heads_at: set[int] | frozenset[int] = frozenset(),
                 frame_bytes: int = FRAME_BYTES) -> None:
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
        #: the chain head after the records written so far, as its 32 bytes (None: not followed)
        self._head = None if chain_head_start is None else bytes.fromhex(chain_head_start)
        self.heads_at = heads_at
        self.frame_bytes = frame_bytes
        self.heads: dict[int, str | None] = {}
        self.count = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.versions: dict[str, set[int]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.level = level
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._tmp_paths: list[Path] = []
        self._raw = self._tmp(".records-")
        self._snaps = self._tmp(".snapshots-")
        self.frames: list[list[int]] = []
        self.snapshots: list[dict[str, Any]] = []
        self._buf: list[bytes] = []
        self._buffered = 0
        self._frame_first: int | None = None

    @property
    def head(self) -> str | None:
        """The chain head after the records written so far (hex), None when not followed."""
        return None if self._head is None else self._head.hex()

    def _tmp(self, prefix: str) -> Any:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=self.path.parent)
        self._tmp_paths.append(Path(tmp))
        return os.fdopen(fd, "wb")

    def add(self, rec: LogRecord) -> None:
        if self.last_offset is not None and rec.offset <= self.last_offset:
            raise UsageError(f"archive records must ascend: {rec.offset} after {self.last_offset}")
        k, v = rec.key, rec.value
        if self._frame_first is None:
            self._frame_first = rec.offset
        self._buf.append(_REC.pack(rec.offset, rec.timestamp, -1 if k is None else len(k),
                                   -1 if v is None else len(v)))
        if k:
            self._buf.append(k)
        if v:
            self._buf.append(v)
        self._buffered += 24 + len(k or b"") + len(v or b"")
        if self._buffered >= self.frame_bytes:
            self._flush()
        if self._head is not None:
            self._head = chain.link_bytes(self._head, k, v)
        if rec.offset in self.heads_at:
            self.heads[rec.offset] = self.head
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
        """End the current frame (records are never split across frames)."""
        if self._buf:
            frame = self._cctx.compress(b"".join(self._buf))
            self._raw.write(frame)
            assert self._frame_first is not None
            self.frames.append([self._frame_first, len(frame)])
            self._buf, self._buffered, self._frame_first = [], 0, None

    def add_snapshot(self, state_bytes: bytes, *, offset: int, chain_head: str, reducer_version: int,
                     max_occurred_at: str | None = None) -> None:
        """Keep a snapshot (``ClusterState.to_snapshot`` bytes) of the state after ``offset``.

        Snapshots must ascend by offset and lie in the archive's range; the
        caller checks ``chain_head`` against the records (see ``heads_at``).
        ``max_occurred_at``: the state's, when known (the index entry's): kept in the header,
        a reader placing a time among the snapshots need not load it (``Snapshots.best``).
        """
        if self.snapshots and offset <= self.snapshots[-1]["offset"]:
            raise UsageError(f"archive snapshots must ascend: {offset} after {self.snapshots[-1]['offset']}")
        if "filtered" in self.meta:
            raise UsageError("a filtered archive carries no snapshots (they hold every namespace)")
        stored = snapshot_codec.compress(state_bytes, self.level)
        self._snaps.write(stored)
        self.snapshots.append({"offset": offset, "chain": chain_head, "reducer_version": reducer_version,
                               "bytes": len(state_bytes), "stored_bytes": len(stored), "codec": snapshot_codec.CODEC,
                               **({"max_occurred_at": max_occurred_at} if max_occurred_at else {})})

    def close(self, covers_to: int | None = None) -> dict[str, Any]:
        """Finish the file; ``covers_to`` defaults to the last record's offset. Returns the header."""
        self._flush()
        self._raw.close()
        self._snaps.close()
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
            "frames": self.frames,
            "snapshots": self.snapshots,
        }
        hbytes = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        fd, final_tmp = tempfile.mkstemp(prefix=".archive-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(MAGIC + len(hbytes).to_bytes(4, "big") + hbytes)
                for part in self._tmp_paths:
                    with open(part, "rb") as body:
                        while True:
                            chunk = body.read(_READ_CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
            os.replace(final_tmp, self.path)
        finally:
            self._drop_tmp()
            Path(final_tmp).unlink(missing_ok=True)
        return header

    def _drop_tmp(self) -> None:
        for part in self._tmp_paths:
            part.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the half-written records (Ctrl-C): nothing appears under the final name."""
        try:
            self._raw.close()
            self._snaps.close()
        finally:
            self._drop_tmp()


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
    if header.get("format") not in (FORMAT, FORMAT_1):
        raise ArchiveError(f"{path}: unsupported archive format {header.get('format')!r}",
                           hint=f"this kmevents reads {FORMAT_1} and {FORMAT}; a newer kmevents wrote it")
    return header


def _parse(buf: bytes, pos: int, out: list[LogRecord]) -> int:
    """Append the whole records of ``buf[pos:]`` to ``out``; return where the first incomplete one starts."""
    unpack = _REC.unpack_from
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
    return pos


def iter_batches(path: str | Path, *, batch: int = BATCH, start: int | None = None) -> Iterator[list[LogRecord]]:
    """The archive's records in batches (lists), in offset order.

    ``start``: skip the frames wholly before it (format 2); the first batch may
    still begin before ``start`` (callers filter by offset).
    """
    with open(path, "rb") as f:
        header = _header(f, path)
        if header["format"] == FORMAT_1:
            yield from _iter_stream(f, path, batch)
            return
        frames = header.get("frames") or []
        first = 0
        if start is not None:
            while first + 1 < len(frames) and frames[first + 1][0] <= start:
                first += 1
        f.seek(sum(length for _, length in frames[:first]), os.SEEK_CUR)
        dctx = zstandard.ZstdDecompressor()
        out: list[LogRecord] = []
        for _, length in frames[first:]:
            data = f.read(length)
            if len(data) != length:
                raise ArchiveError(f"{path}: archive ends inside a record frame (truncated file)",
                                   hint="export it again from the topic or an earlier copy")
            # decompressed a piece at a time: a whole frame's ~4 MiB and its ~3,300 records
            # parsed at once were ~10 MiB of a whole-log rebuild's peak RSS (issue 17)
            try:
                size = zstandard.frame_content_size(data)
            except zstandard.ZstdError as exc:
                raise ArchiveError(f"{path}: damaged archive frame: {exc}") from None
            reader = dctx.stream_reader(data, read_size=len(data))
            buf = b""
            pos = got = 0
            while True:
                try:
                    chunk = reader.read(_FRAME_PIECE)
                except zstandard.ZstdError as exc:
                    raise ArchiveError(f"{path}: damaged archive frame: {exc}") from None
                if not chunk:
                    break
                got += len(chunk)
                buf = buf[pos:] + chunk if pos < len(buf) else chunk
                pos = _parse(buf, 0, out)
                while len(out) >= batch:
                    yield out[:batch]
                    out = out[batch:]
            del data, reader
            if size >= 0 and got != size:  # (a cut frame reads short, without an error)
                raise ArchiveError(f"{path}: damaged archive frame: {got} of its {size} bytes")
            if pos != len(buf):
                raise ArchiveError(f"{path}: damaged archive frame: it ends inside a record")
        if out:
            yield out


def _iter_stream(f: Any, path: str | Path, batch: int) -> Iterator[list[LogRecord]]:
    """Format 1: the records as one zstd stream."""
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
            pos = _parse(buf, 0, out)
            while len(out) >= batch:
                yield out[:batch]
                out = out[batch:]
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"{path}: damaged archive body: {exc}") from None
    if pos != len(buf):
        raise ArchiveError(f"{path}: archive ends inside a record (truncated file)",
                           hint="export it again from the topic or an earlier copy")
    if out:
        yield out


def read_snapshot(path: str | Path, index: int) -> bytes:
    """The canonical bytes of the archive's ``index``-th snapshot (header ``snapshots``)."""
    data, meta = read_stored_snapshot(path, index)
    try:
        return snapshot_codec.decompress(data, meta["codec"], int(meta["bytes"]))
    except SnapshotError as exc:
        raise ArchiveError(f"{path}: damaged snapshot #{index}: {exc.message}") from None


def read_stored_snapshot(path: str | Path, index: int) -> tuple[bytes, dict[str, Any]]:
    """The archive's ``index``-th snapshot as stored (compressed) and its header entry."""
    f, meta = open_stored_snapshot(path, index)
    with f:
        data = f.read(int(meta["stored_bytes"]))
    return data, meta


def open_stored_snapshot(path: str | Path, index: int) -> tuple[IO[bytes], dict[str, Any]]:
    """The archive opened at its ``index``-th snapshot as stored (compressed), and the
    snapshot's header entry: a reader that ends after the snapshot's ``stored_bytes``
    (:class:`_Slice`); the caller closes it. A loader then never holds the compressed
    snapshot whole (42 MiB at the large profile)."""
    f = open(path, "rb")  # noqa: SIM115  (the caller closes it)
    try:
        header = _header(f, path)
        snaps = header.get("snapshots") or []
        if not 0 <= index < len(snaps):
            raise ArchiveError(f"{path}: no snapshot #{index} (it has {len(snaps)})")
        skip = sum(length for _, length in header.get("frames") or []) + \
            sum(int(s["stored_bytes"]) for s in snaps[:index])
        start = f.seek(skip, os.SEEK_CUR)
        meta = snaps[index]
        if os.fstat(f.fileno()).st_size < start + int(meta["stored_bytes"]):
            raise ArchiveError(f"{path}: archive ends inside snapshot #{index} (truncated file)")
        if meta.get("codec") != snapshot_codec.CODEC:
            raise ArchiveError(f"{path}: snapshot #{index} has unknown codec {meta.get('codec')!r}")
    except BaseException:
        f.close()
        raise
    return _Slice(f, int(meta["stored_bytes"])), meta  # type: ignore[return-value]  # a binary reader


class _Slice(io.RawIOBase):
    """The next ``n`` bytes of a file, then its end (a zstd reader fed the rest of the
    archive would read on into it and fail there, not stop at its frame's end)."""

    def __init__(self, f: IO[bytes], n: int) -> None:
        super().__init__()
        self._f, self._left = f, n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(b)[:n])  # type: ignore[attr-defined]
        self._left -= got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


def segment_name(cluster: str, first: int, last: int) -> str:
    """File name of a ``--follow`` segment; sorts by offset."""
    return f"{cluster}-{first:020d}-{last:020d}{SUFFIX}"
